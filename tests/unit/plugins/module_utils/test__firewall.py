"""BGP through the host firewall (plugins/module_utils/_firewall.py), on real `nft -j list ruleset` output.

fixtures/nft/NAME.json is what nft 1.0.6 lists after NAME.nft (`nft -f`) and/or NAME.iptables
(iptables-nft-restore 1.8.9) were loaded into an empty ruleset in a scratch network namespace;
fixtures/nft/generate.sh regenerates them. Peers are 198.51.100.11-.13/.200 and 2001:db8:100::11/::12.
"""

import json
import os

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _firewall as fw

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nft")
MARK = f'comment "{fw.MARKER}"'
TWO = ["198.51.100.11", "198.51.100.12"]


def doc(name):
    with open(os.path.join(FIXTURES, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def load(name):
    return fw.parse(doc(name))


def plan(rs, peers, local=(), state="present", port=179):
    peers, local = fw.check_params(peers, port, local, state)
    return fw.plan(rs, peers, port, local, state)


def where(records):
    """{(table, chain, handle): certain} of blocking records."""
    return {(r["table"], r["chain"], r["handle"]): r["certain"] for r in records}


def fixed(rs, peers, local=()):
    """Plan, apply in memory, plan again: the second plan's blocking and actions."""
    again = plan(fw.simulate(rs, plan(rs, peers, local)["changes"]), peers, local)
    return again["blocking"], again["actions"]


# --- input -----------------------------------------------------------------------------------------


def test_check_params_sorts_and_dedupes_peers():
    peers, local = fw.check_params(["2001:db8:100::12", "198.51.100.12", " 198.51.100.9 ", "198.51.100.12"], 179,
                                   ["198.51.100.10"])
    assert [str(p) for p in peers] == ["198.51.100.9", "198.51.100.12", "2001:db8:100::12"]
    assert [str(a) for a in local] == ["198.51.100.10"]
    assert fw.check_params([], 179, (), "absent") == ([], [])


@pytest.mark.parametrize(("peers", "port", "local", "message"), [
    (["node2"], 179, [], "peers: 'node2' is not an IP address"),
    (["198.51.100.0/24"], 179, [], "is not an IP address"),
    ([], 179, [], "at least one other node"),
    (["224.0.0.5"], 179, [], "224.0.0.5 is not a node's address"),
    (["198.51.100.11"], 0, [], "port: 0 is not a TCP port"),
    (["198.51.100.11"], 65536, [], "port: 65536"),
    (["198.51.100.11"], 179, ["198.51.100.10", "198.51.100.20"], "at most one IPv4 and one IPv6"),
    (["198.51.100.10"], 179, ["198.51.100.10"], "198.51.100.10 is this node's own address"),
])
def test_bad_params_are_rejected(peers, port, local, message):
    with pytest.raises(ValueError, match=message):
        fw.check_params(peers, port, local)


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as exc:
        fw.check_params(["node2", "198.51.100.11"], 0)
    assert "'node2'" in str(exc.value) and "port: 0" in str(exc.value) and "198.51.100.11" not in str(exc.value)


# --- parsing and the packets -----------------------------------------------------------------------


def test_parse_indexes_chains_rules_and_sets():
    rs = load("named_set")
    chain = rs["chains"][("inet", "fw", "input")]
    assert (chain["hook"], chain["type"], chain["policy"]) == ("input", "filter", "accept")
    assert [r["handle"] for r in chain["rules"]] == [4, 5]
    assert rs["sets"][("inet", "fw", "blocked")] == [
        "198.51.100.12", {"prefix": {"addr": "198.51.100.128", "len": 25}}]


def test_packets_of_a_session():
    peers, local = fw.check_params(["198.51.100.11"], 179, ["198.51.100.10"])
    pkts = fw.packets(peers, 179, local)
    assert [(p["hook"], p["what"], p["fields"]["ct state"][1]) for p in pkts] == [
        ("input", "from 198.51.100.11 to port 179", "new"),
        ("input", "from 198.51.100.11 port 179 (answer)", "established"),
        ("output", "to 198.51.100.11 port 179", "new"),
        ("output", "to 198.51.100.11 from port 179 (answer)", "established")]
    assert pkts[0]["daddr"] == pkts[2]["saddr"] == ("ip4", 3325256714, 3325256714)
    assert (pkts[0]["dport"], pkts[0]["sport"]) == (("n", 179, 179), fw.EPHEMERAL)


# --- evaluation and plans on each ruleset ------------------------------------------------------------


def test_debian_default_ruleset_lets_bgp_through():
    result = plan(load("debian_default"), [*TWO, "2001:db8:100::12"])
    assert result == {"blocking": [], "changes": [], "actions": []}


def test_drops_of_one_peer_are_found_and_fixed():
    rs = load("peer_drop")
    result = plan(rs, [*TWO, "2001:db8:100::12"])
    # the forward chain's drop (handle 8) is not on the way of this node's own BGP packets
    assert where(result["blocking"]) == {("filter", "input", 6): True, ("filter", "input", 7): True,
                                         ("filter", "output", 9): True}
    assert {r["handle"]: r["packets"] for r in result["blocking"]} == {
        6: ["from 198.51.100.12 to port 179"], 7: ["from 2001:db8:100::12 to port 179"],
        9: ["to 198.51.100.12 port 179"]}
    assert result["blocking"][0]["rule"] == "ip saddr 198.51.100.12 tcp dport 179 counter drop"
    assert result["actions"] == [
        f"insert rule inet filter input ip6 saddr 2001:db8:100::12 tcp sport 179 accept {MARK}",
        f"insert rule inet filter input ip6 saddr 2001:db8:100::12 tcp dport 179 accept {MARK}",
        f"insert rule inet filter input ip saddr {{ 198.51.100.11, 198.51.100.12 }} tcp sport 179 accept {MARK}",
        f"insert rule inet filter input ip saddr {{ 198.51.100.11, 198.51.100.12 }} tcp dport 179 accept {MARK}",
        f"insert rule inet filter output ip6 daddr 2001:db8:100::12 tcp sport 179 accept {MARK}",
        f"insert rule inet filter output ip6 daddr 2001:db8:100::12 tcp dport 179 accept {MARK}",
        f"insert rule inet filter output ip daddr {{ 198.51.100.11, 198.51.100.12 }} tcp sport 179 accept {MARK}",
        f"insert rule inet filter output ip daddr {{ 198.51.100.11, 198.51.100.12 }} tcp dport 179 accept {MARK}"]
    assert fixed(rs, [*TWO, "2001:db8:100::12"]) == ([], [])


def test_peers_nothing_drops_need_nothing():
    assert plan(load("peer_drop"), ["198.51.100.11", "2001:db8:100::11"])["actions"] == []


def test_policy_drop_chain_is_fixed_by_the_insert():
    rs = load("policy_drop")
    result = plan(rs, TWO)
    # the limit makes the reject a may-drop; then the policy drops for certain
    assert where(result["blocking"]) == {("filter", "input", 11): False, ("filter", "input", None): True}
    # answers are established connections: "ct state { established, related } accept" lets them in
    assert {p for r in result["blocking"] for p in r["packets"]} == {
        "from 198.51.100.11 to port 179", "from 198.51.100.12 to port 179"}
    assert [c["chain"] for c in result["changes"]] == ["input"]
    after = fw.simulate(rs, result["changes"])
    assert [r["handle"] for r in after["chains"][("inet", "filter", "input")]["rules"]][:3] == [None, None, 4]
    assert fixed(rs, TWO) == ([], [])


def test_iptables_nft_user_chain_drop_gets_one_rule_per_peer():
    rs = load("iptables_nft")
    result = plan(rs, TWO)
    [record] = result["blocking"]
    assert (record["table"], record["chain"], record["base_chain"], record["handle"]) == (
        "filter", "BGP-BLOCK", "INPUT", 9)
    # -m conntrack is an xt match nft cannot show: the accept before the jump may apply
    assert record["certain"] is False
    assert record["rule"] == 'tcp dport 179 xt match "comment" counter drop'
    # no anonymous set: iptables-nft-save would print these rules without their address match
    assert result["actions"] == [f"insert rule ip filter INPUT ip saddr {peer} tcp {port} 179 accept {MARK}"
                                 for peer in reversed(TWO) for port in ("sport", "dport")]
    assert fixed(rs, TWO) == ([], [])


def test_felix_tables_and_chains_are_ignored():
    assert plan(load("felix"), [*TWO, "2001:db8:100::12"]) == {"blocking": [], "changes": [], "actions": []}
    # the same rules under other names drop BGP: the exception is what keeps them out
    renamed = json.loads(json.dumps(doc("felix")).replace('"calico"', '"other"').replace('"cali-', '"felix-'))
    assert where(plan(fw.parse(renamed), TWO)["blocking"]) == {
        ("other", "filter-cali-INPUT", 4): True, ("other", "filter-OUTPUT", None): True,
        ("filter", "felix-INPUT", 8): True, ("filter", "felix-OUTPUT", 9): True}


def test_named_sets_are_resolved():
    rs = load("named_set")
    peers = ["198.51.100.11", "198.51.100.12", "198.51.100.200", "2001:db8:100::11", "2001:db8:100::12"]
    result = plan(rs, peers)
    assert {r["handle"]: r["packets"] for r in result["blocking"]} == {
        4: ["from 198.51.100.12 to port 179", "from 198.51.100.12 port 179 (answer)",
            "from 198.51.100.200 to port 179", "from 198.51.100.200 port 179 (answer)"],
        5: ["from 2001:db8:100::12 to port 179"]}
    assert fixed(rs, peers) == ([], [])


def test_ipv6_peers_in_inet_ip_and_ip6_tables():
    # the reject is in an ip table: IPv6 packets never go through it
    assert plan(load("reject"), ["2001:db8:100::11"])["actions"] == []
    result = plan(load("reject"), ["198.51.100.11", "2001:db8:100::11"], local=["198.51.100.10"])
    assert [a.split(" accept")[0] for a in result["actions"]] == [
        "insert rule ip guard out ip daddr 198.51.100.11 tcp sport 179",
        "insert rule ip guard out ip daddr 198.51.100.11 tcp dport 179"]
    assert result["blocking"][0]["rule"] == "ip daddr 198.51.100.0/24 tcp dport 179 reject with tcp reset"
    inet = {"family": "inet", "hook": "input", "chain": "input"}
    peers, _local = fw.check_params(["2001:db8:100::11", "198.51.100.11"], 179)
    assert [fw.render_rule(r) for r in fw.our_rules(inet, peers, 1790)] == [
        f"ip saddr 198.51.100.11 tcp dport 1790 accept {MARK}", f"ip saddr 198.51.100.11 tcp sport 1790 accept {MARK}",
        f"ip6 saddr 2001:db8:100::11 tcp dport 1790 accept {MARK}",
        f"ip6 saddr 2001:db8:100::11 tcp sport 1790 accept {MARK}"]


@pytest.mark.parametrize(("local", "blocked"), [([], False), (["198.51.100.10"], None), (["198.51.100.20"], True)])
def test_local_address_decides_rules_on_it(local, blocked):
    # inbound: "ip daddr != 198.51.100.10 tcp dport 179 drop"
    records = where(plan(load("reject"), ["198.51.100.11"], local=local)["blocking"])
    assert records.get(("guard", "inbound", 4)) is blocked


def test_unknown_matches_are_flagged_uncertain():
    rs = load("unknown")
    result = plan(rs, ["198.51.100.11"])
    # mark and limit accepts may let BGP in, the iifname drop may drop it: nothing is certain
    assert where(result["blocking"]) == {("edge", "input", 5): False, ("edge", "input", None): False}
    # the route chain only sets a mark
    assert [c["chain"] for c in result["changes"]] == ["input"]
    assert fixed(rs, ["198.51.100.11"]) == ([], [])


def test_verdict_maps_jumps_and_concatenations():
    rs = load("vmap")
    peers = ["198.51.100.11", "198.51.100.12", "198.51.100.13", "2001:db8:100::11", "2001:db8:100::12"]
    records = plan(rs, peers)["blocking"]
    # 179 : jump bgp_in, which accepts .11, .13 and ::11; established answers pass the ct state vmap
    assert {(r["chain"], r["handle"], r["certain"], tuple(r["packets"])) for r in records} == {
        ("input", None, True, ("from 198.51.100.12 to port 179", "from 2001:db8:100::12 to port 179")),
        ("output", 12, True, ("to 198.51.100.13 port 179",))}
    assert records[1]["rule"] == "ip daddr . tcp dport { 198.51.100.13 . 179 } drop"
    assert fw.render_rule(rs["chains"][("inet", "fw", "input")]["rules"][0]) == \
        "ct state vmap { invalid : drop, established : accept, related : accept }"
    assert fixed(rs, peers) == ([], [])


# --- our own rules ---------------------------------------------------------------------------------


def test_rules_already_in_place_change_nothing():
    rs = load("ours_present")
    assert plan(rs, TWO) == {"blocking": [], "changes": [], "actions": []}
    # the fixture holds exactly what the module writes
    plain = plan(load("iptables_nft"), TWO)["actions"] + plan(load("policy_drop"), TWO)["actions"]
    with open(os.path.join(FIXTURES, "ours_present.nft"), encoding="utf-8") as f:
        text = f.read()
    assert all(a.split(" ", 5)[5] in text for a in plain)


def test_another_peer_set_replaces_the_rules():
    rs = load("ours_present")
    result = plan(rs, [*TWO, "198.51.100.13"])
    assert {(c["chain"], tuple(c["delete"]), len(c["insert"])) for c in result["changes"]} == {
        ("input", (4, 6), 2), ("INPUT", (4, 5, 6, 7), 6)}
    assert result["actions"][:2] == ["delete rule inet filter input handle 4", "delete rule inet filter input handle 6"]


def test_stale_and_misplaced_rules():
    result = plan(load("stale_ours"), TWO)
    assert {(c["table"], c["chain"], tuple(c["delete"]), len(c["insert"])) for c in result["changes"]} == {
        ("filter", "input", (4, 6), 0),    # nothing drops BGP there
        ("filter", "output", (8, 10), 2),  # other peers
        ("guard", "out", (4, 6), 2)}       # below the reject
    # as it is, the misplaced rules come too late and the stale ones name other peers
    assert where(result["blocking"]) == {("filter", "output", 11): True, ("guard", "out", 2): True}


@pytest.mark.parametrize("name", ["ours_present", "stale_ours"])
def test_absent_deletes_every_rule_of_ours_and_nothing_else(name):
    rs = load(name)
    result = plan(rs, [], state="absent")
    ours = {(k[2], r["handle"]) for k, c in rs["chains"].items() for r in c["rules"] if r["comment"] == fw.MARKER}
    assert {(c["chain"], h) for c in result["changes"] for h in c["delete"]} == ours
    assert not any(c["insert"] for c in result["changes"])
    assert result["blocking"] == []
    after = fw.simulate(rs, result["changes"])
    assert plan(after, [], state="absent")["changes"] == []


def test_diff_text_and_before_rules():
    rs = load("peer_drop")
    changes = plan(rs, ["198.51.100.12"])["changes"]
    assert fw.chains_text(rs, changes) == (
        "table inet filter chain input  # type filter hook input priority 0 policy accept\n"
        "\tiif lo accept\n\ttcp dport 22 accept\n\tip saddr 198.51.100.12 tcp dport 179 counter drop\n"
        "\tip6 saddr 2001:db8:100::12 tcp dport 179 drop\n"
        "table inet filter chain output  # type filter hook output priority 0 policy accept\n"
        "\tip daddr 198.51.100.12 tcp dport 179 drop\n")
    assert fw.chains_text(fw.simulate(rs, changes), changes).splitlines()[1] == \
        f"\tip saddr 198.51.100.12 tcp dport 179 accept {MARK}"
    assert [(r["chain"], r["handle"]) for r in fw.chain_rules(rs, changes)] == [
        ("input", 4), ("input", 5), ("input", 6), ("input", 7), ("output", 9)]


def test_blocking_by_peer_is_the_facts_view():
    found = fw.blocking_by_peer(doc("peer_drop"), ["198.51.100.12", "198.51.100.11"], local=["198.51.100.10"])
    assert list(found) == ["198.51.100.11", "198.51.100.12"]
    assert found["198.51.100.11"] == []
    assert {(r["chain"], r["handle"]) for r in found["198.51.100.12"]} == {("input", 6), ("output", 9)}
    with pytest.raises(ValueError, match="'bird' is not an IP address"):
        fw.blocking_by_peer(doc("peer_drop"), ["bird"])
