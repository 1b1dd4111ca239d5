"""calico_routes through real Ansible inside network namespaces this module builds (documentation
and benchmark addresses only) and deletes: check mode reports the drift and leaves the table
byte-identical, a real run repairs it and verifies, a second run changes nothing, a bad map or
an oversized plan fails before any change, and source_routes makes the peers' lookups leave
from the Calico IP without touching the default route. Needs root and iproute2.

Node i of the fleets here: IP 192.0.2.(10+i), block 198.18.i.0/26, tunnel address 198.18.i.0;
the node under test is node1.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _contract

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
NODES = 4
TUNNEL = {"ipip": "tunl0", "vxlan": "vxlan.calico", "bgp": None}


def run(*args, input=None, check=True):
    res = subprocess.run(args, input=input, capture_output=True, text=True, check=False, timeout=120)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {res.returncode}: {res.stderr}{res.stdout}")
    return res


def node_ip(i):
    return f"192.0.2.{10 + i}"


def block(i):
    return f"198.18.{i}.0/26"


def tunnel_address(i):
    return f"198.18.{i}.0"


def fact(mode, ip, blocks, tunnel=None):
    """The parts of a calico_node fact expected_map reads: mode, identity, local blocks."""
    return {"calico": {"mode": mode, "tunnel": {"address": tunnel} if tunnel else None, "local_blocks": blocks,
                       "vxlan": {"local": ip} if mode == "vxlan" else None},
            "bird": {"router_id": ip if mode != "vxlan" else None}}


def fleet_map(mode, nodes=NODES, **kwargs):
    facts = {f"node{i}": fact(mode, node_ip(i), [block(i)], tunnel_address(i) if TUNNEL[mode] else None)
             for i in range(1, nodes + 1)}
    return _contract.expected_map(facts, **kwargs)


def calico_route(mode, i):
    """Node i's block as Calico routes it on another node (calico_internals §2.3)."""
    if mode == "ipip":
        return f"{block(i)} via {node_ip(i)} dev tunl0 proto bird onlink"
    if mode == "vxlan":
        return f"{block(i)} via {tunnel_address(i)} dev vxlan.calico onlink"
    return f"{block(i)} via {node_ip(i)} dev eth0 proto bird"


class Node:
    """One network namespace shaped as a Calico node: eth0 on the underlay (its peer end stays in
    the namespace), a default route via 192.0.2.1, a workload, and the mode's tunnel device."""

    def __init__(self, tmp_path):
        self.ns = f"ndrt-{uuid.uuid4().hex[:10]}"
        self.tmp = tmp_path
        run("ip", "netns", "add", self.ns)
        # No IPv6 link-local addresses appearing later: the table changes only when we change it.
        run("ip", "netns", "exec", self.ns, "sysctl", "-qw", "net.ipv6.conf.all.addr_gen_mode=1",
            "net.ipv6.conf.default.addr_gen_mode=1")

    def delete(self):
        run("ip", "netns", "delete", self.ns, check=False)

    def batch(self, text):
        run("ip", "-n", self.ns, "-batch", "-", input="\n".join(line.strip() for line in text.strip().splitlines()))

    def underlay(self, *addresses, default="192.0.2.1"):
        self.batch(f"""
            link set lo up
            link add eth0 type veth peer name eth0p
            link set eth0 up
            link set eth0p up
            link add cali1234567890a type veth peer name calip
            link set cali1234567890a up
            link set calip up
            {chr(10).join(f"addr add {a} dev eth0" for a in addresses)}
            {f"route add default via {default} dev eth0" if default else ""}
        """)

    def calico(self, mode, own=1, peers=tuple(range(2, NODES + 1))):
        """A healthy node `own` in `mode`: tunnel device, blackhole, workload, peers' block routes."""
        tunnel = TUNNEL[mode]
        lines = []
        if tunnel:
            # This kernel has no ipip: a vxlan device named tunl0 carries the same onlink routes.
            vni = 4096 if mode == "vxlan" else 1
            lines += [f"link add {tunnel} type vxlan id {vni} dstport 4789 local {node_ip(own)} dev eth0",
                      f"link set {tunnel} up", f"addr add {tunnel_address(own)}/32 dev {tunnel}"]
        blackhole_proto = "80" if mode == "vxlan" else "bird"
        lines += [f"route add blackhole {block(own)} proto {blackhole_proto}",
                  f"route add 198.18.{own}.5/32 dev cali1234567890a scope link"]
        lines += [f"route add {calico_route(mode, i)}" for i in peers]
        self.batch("\n".join(lines))

    def table(self):
        """Every route of every table, with details: what check mode must leave byte-identical."""
        return (run("ip", "-n", self.ns, "-d", "route", "show", "table", "all").stdout
                + run("ip", "-n", self.ns, "-d", "-6", "route", "show", "table", "all").stdout)

    def routes(self, *selector):
        out = run("ip", "-n", self.ns, "route", "show", *selector).stdout
        return [line.strip() for line in out.splitlines()]

    def route_get(self, dst):
        return run("ip", "-n", self.ns, "route", "get", dst).stdout.splitlines()[0].strip()

    def module(self, check=False, diff=False, **args):
        """Run netdoctor.calico.calico_routes with args in this namespace; returns its result."""
        playbook = self.tmp / f"play-{uuid.uuid4().hex[:6]}.yml"
        task = {"name": "calico_routes", "netdoctor.calico.calico_routes": args, "check_mode": check, "diff": diff}
        playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        res = subprocess.run(["ip", "netns", "exec", self.ns, str(PLAYBOOK), "-c", "local", "-i", "localhost,",
                              "-e", f"ansible_python_interpreter={PYTHON}", str(playbook)],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)
        try:
            out = json.loads(res.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"ansible-playbook exited {res.returncode}:\n{res.stdout}\n{res.stderr}") from None
        return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.fixture
def make_node(tmp_path):
    made = []

    def make():
        node = Node(tmp_path)
        made.append(node)
        return node

    yield make
    for node in made:
        node.delete()


# --- route repair, every mode -----------------------------------------------------------------

STALE = {  # seed 001 case 1 for each mode, added by hand (no proto: boot) unless BIRD's
    "ipip": "198.18.2.0/26 via 198.18.2.0 dev tunl0 onlink",             # via an address of the block itself
    "vxlan": "198.18.2.0/26 via 192.0.2.12 dev vxlan.calico onlink",      # the node IP instead of its VTEP
    "bgp": "198.18.2.0/26 via 192.0.2.61 dev eth0 proto bird",            # BIRD persisted the owner's former IP
}
ORPHAN = {
    "ipip": "198.18.9.0/26 via 192.0.2.19 dev tunl0 proto bird onlink",
    "vxlan": "198.18.9.0/26 via 198.18.9.0 dev vxlan.calico onlink",
    "bgp": "198.18.9.0/26 via 192.0.2.19 dev eth0 proto bird",
}
# Not Calico's: left alone whatever the map says.
FOREIGN = ["198.18.4.16/28 via 192.0.2.1 dev eth0 proto static", "203.0.113.0/24 via 192.0.2.1 dev eth0 proto static"]


def broken_node(make_node, mode):
    node = make_node()
    node.underlay("192.0.2.11/24")
    node.calico(mode)
    node.batch(f"""
        route replace {STALE[mode]}
        route del {block(3)}
        route add {ORPHAN[mode]}
        {chr(10).join("route add " + r for r in FOREIGN)}
    """)
    return node


@pytest.mark.parametrize("mode", ["ipip", "vxlan", "bgp"])
def test_check_mode_reports_the_drift_and_changes_nothing(make_node, mode):
    node = broken_node(make_node, mode)
    before = node.table()
    result = node.module(check=True, diff=True, expected_map=fleet_map(mode), host="node1")
    assert node.table() == before
    assert result["changed"] is True and not result.get("failed"), result
    drift = result["drift"]
    assert [(d["kind"], d["dst"], d["owner"]) for d in drift["drift"]] == [
        ("missing", block(3), "node3"), ("orphan", "198.18.9.0/26", None),
        ("shadow", "198.18.4.16/28", "node4"), ("wrong_next_hop", block(2), "node2")]
    assert (drift["checked"], drift["ok"]) == (3, 1)
    assert [a["dst"] for a in result["actions"]["replace"]] == [block(2)]
    assert [a["dst"] for a in result["actions"]["add"]] == [block(3)]
    assert [a["dst"] for a in result["actions"]["delete"]] == ["198.18.9.0/26"]
    assert result["skipped_actions"] == [] and result["blocked"] is None and result["verified"] is None
    # The diff is the affected routes only, as `ip route` prints them.
    assert result["diff"]["before"].splitlines() == [STALE[mode], ORPHAN[mode]]
    # route_drift plans native BGP routes without a device: the kernel resolves the next hop.
    written = [calico_route(mode, i).replace(" dev eth0", "") for i in (2, 3)]
    assert result["diff"]["after"].splitlines() == written
    # What the audit ships to fleet_audit: route_drift's result, unchanged.
    # VXLAN adds the neighbour and FDB entries the node must hold for its peers.
    assert set(drift) == {"host", "mode", "checked", "ok", "unverified", "counts", "drift", "actions",
                          *(["l2_actions"] if mode == "vxlan" else [])}


@pytest.mark.parametrize("mode", ["ipip", "vxlan", "bgp"])
def test_a_real_run_repairs_verifies_and_a_second_run_changes_nothing(make_node, mode):
    node = broken_node(make_node, mode)
    default, workload = node.routes("default"), node.routes("198.18.1.5")
    result = node.module(expected_map=fleet_map(mode), host="node1")
    assert result["changed"] is True and result["verified"] is True, result
    for i in range(2, NODES + 1):
        assert node.routes(block(i)) == [calico_route(mode, i)]  # replaced in place: one route each
    assert node.routes("198.18.9.0/26") == []
    assert node.routes("198.18.4.16/28") == [FOREIGN[0]] and node.routes("203.0.113.0/24") == [FOREIGN[1]]
    assert node.routes("default") == default and node.routes("198.18.1.5") == workload
    assert [d["kind"] for d in result["residual_drift"]] == ["shadow"]  # reported, never Calico's to change

    table = node.table()
    again = node.module(expected_map=fleet_map(mode), host="node1")
    assert again["changed"] is False and again["verified"] is True and again["drift"]["counts"] == {"shadow": 1}
    assert node.table() == table
    assert node.module(check=True, expected_map=fleet_map(mode), host="node1")["changed"] is False


def test_seed_case1_keeps_birds_protocol_and_leaves_foreign_routes_unless_told(make_node):
    node = make_node()
    node.underlay("192.0.2.11/24")
    node.calico("ipip")
    # Seed 001 case 1 by hand on tunl0 (proto boot: Calico's device, so Calico's route), and an
    # admin's static route over node3's block on eth0 (not Calico's).
    node.batch(f"""
        route replace {STALE["ipip"]}
        route replace 198.18.3.0/26 via 192.0.2.1 dev eth0 proto static
    """)
    result = node.module(diff=True, expected_map=fleet_map("ipip"), host="node1")
    assert result["verified"] is True, result
    assert node.routes(block(2)) == [calico_route("ipip", 2)]   # the seed's fix, proto bird onlink
    assert node.routes(block(3)) == ["198.18.3.0/26 via 192.0.2.1 dev eth0 proto static"]
    assert [(s["action"], s["route"]["dst"]) for s in result["skipped_actions"]] == [("replace", block(3))]
    assert "not Calico's (proto static on eth0); touch_foreign is false" in result["skipped_actions"][0]["reason"]
    assert [d["dst"] for d in result["residual_drift"]] == [block(3)]

    result = node.module(expected_map=fleet_map("ipip"), host="node1", touch_foreign=True)
    assert result["changed"] is True and result["verified"] is True, result
    assert node.routes(block(3)) == [calico_route("ipip", 3)]


def test_switches_and_protocols_narrow_the_plan(make_node):
    node = broken_node(make_node, "ipip")
    before = node.table()
    result = node.module(expected_map=fleet_map("ipip"), host="node1", fix_next_hops=False, add_missing=False,
                         remove_orphans=False)
    assert result["changed"] is False and node.table() == before
    assert sorted((s["action"], s["reason"]) for s in result["skipped_actions"]) == [
        ("add", "add_missing is false"), ("delete", "remove_orphans is false"), ("replace", "fix_next_hops is false")]
    # Allowed to act as Felix only: BIRD's routes are out of reach, and so is the hand-made one on tunl0.
    result = node.module(expected_map=fleet_map("ipip"), host="node1", protocols=["felix", "80"])
    assert result["changed"] is False and node.table() == before
    assert {s["action"] for s in result["skipped_actions"]} == {"replace", "add", "delete"}


# --- safety -------------------------------------------------------------------------------------

def _bad_maps():
    good = fleet_map("ipip")
    wrong_hop = json.loads(json.dumps(good))
    wrong_hop["blocks"][block(2)]["next_hop"] = "192.0.2.61"
    bad_cidr = json.loads(json.dumps(good))
    bad_cidr["blocks"]["198.18.2.1/26"] = bad_cidr["blocks"].pop(block(2))
    return [
        ({**good, "mode": "ipipx"}, {}, "unknown mode 'ipipx'"),
        (good, {"host": "node9"}, "host 'node9' is not a node of expected_map (nodes: node1, node2, node3, node4)"),
        (wrong_hop, {}, "next_hop '192.0.2.61' is not owner node2's ip '192.0.2.12'"),
        (bad_cidr, {}, "'198.18.2.1/26' is not a network in CIDR form"),
        ({k: v for k, v in good.items() if k != "blocks"}, {}, "expected_map has no blocks"),
        (good, {"protocols": ["bird", "birds"]}, "unknown route protocol 'birds'"),
    ]


@pytest.mark.parametrize(("expected", "args", "message"), _bad_maps())
def test_a_bad_map_fails_before_any_change(make_node, expected, args, message):
    node = broken_node(make_node, "ipip")
    before = node.table()
    result = node.module(expected_map=expected, **{"host": "node1", **args})
    assert result.get("failed") is True and message in result["msg"], result
    assert node.table() == before


def test_more_deletes_than_max_deletes_is_refused_unless_forced(make_node):
    node = make_node()
    node.underlay("192.0.2.11/24")
    node.calico("ipip")
    node.batch("\n".join(f"route add 198.18.{100 + k}.0/26 via 192.0.2.19 dev tunl0 proto bird onlink"
                         for k in range(6)))
    before = node.table()
    result = node.module(expected_map=fleet_map("ipip"), host="node1", max_deletes=5)
    assert result.get("failed") is True and node.table() == before
    assert result["msg"].startswith("nothing was changed: the plan deletes 6 routes, more than max_deletes=5")
    assert result["changed"] is False
    checked = node.module(check=True, expected_map=fleet_map("ipip"), host="node1", max_deletes=5)
    assert not checked.get("failed") and checked["changed"] is True and "max_deletes=5" in checked["blocked"]
    assert any("would refuse" in w for w in checked["warnings"]) and node.table() == before
    # Default bound: 10% of the Calico routes, at least 50.
    assert checked["max_deletes"] == 5 and node.module(check=True, expected_map=fleet_map("ipip"),
                                                       host="node1")["max_deletes"] == 50
    result = node.module(expected_map=fleet_map("ipip"), host="node1", max_deletes=5, force=True)
    assert result["verified"] is True and len(result["actions"]["delete"]) == 6
    assert not any("198.18.10" in line for line in node.routes())


def test_what_the_kernel_refuses_is_named_and_fails_the_run(make_node):
    node = broken_node(make_node, "ipip")
    node.batch("link set tunl0 down")  # the kernel drops tunl0's routes and refuses new ones on it
    result = node.module(expected_map=fleet_map("ipip"), host="node1")
    assert result.get("failed") is True and result["verified"] is False
    assert result["msg"].startswith("the kernel refused some changes: add 198.18.2.0/26 via 192.0.2.12 dev tunl0 "
                                    "proto bird onlink: ")
    assert len(result["not_applied"]) == NODES - 1 and all("tunl0" in line for line in result["not_applied"])
    assert [d["kind"] for d in result["residual_drift"]].count("missing") == NODES - 1


def test_orphans_stay_while_the_map_is_incomplete(make_node):
    node = broken_node(make_node, "ipip")
    facts = {f"node{i}": fact("ipip", node_ip(i), [block(i)], tunnel_address(i)) for i in range(1, NODES + 1)}
    facts["node5"] = None  # gave no facts: its blocks are unknown
    result = node.module(expected_map=_contract.expected_map(facts), host="node1")
    assert result["verified"] is True and result["actions"]["delete"] == []
    assert node.routes("198.18.9.0/26") == [ORPHAN["ipip"]]


# --- SRC001: source routes ---------------------------------------------------------------------

def test_source_routes_make_peers_see_the_calico_ip_and_leave_the_default_route(make_node):
    # The lab's src-asym: a second eth0 address that the subnet route names as source.
    node = make_node()
    node.underlay("192.0.2.11/24", "192.0.2.99/24")
    node.calico("bgp")
    node.batch("route replace 192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.99")
    assert node.route_get("192.0.2.12") == "192.0.2.12 dev eth0 src 192.0.2.99 uid 0"
    default, other = node.routes("default"), node.route_get("203.0.113.5")
    before = node.table()
    args = {"expected_map": fleet_map("bgp"), "host": "node1", "source_routes": True}
    checked = node.module(check=True, diff=True, **args)
    assert node.table() == before
    src = checked["source_routes"]
    assert (src["calico_ip"], src["interface"], src["ok_peers"], src["unresolved"]) == ("192.0.2.11", "eth0", 0, [])
    [net] = src["networks"]
    assert (net["network"], net["action"], net["peer_count"], net["hosts"]) == (
        "192.0.2.0/24", "prepend", 3, ["node2", "node3", "node4"])
    assert net["before"][0] == "192.0.2.12 dev eth0 src 192.0.2.99"
    assert checked["diff"]["after"].splitlines() == [
        "192.0.2.0/24 dev eth0 proto static scope link src 192.0.2.11",
        "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.99"]

    result = node.module(**args)
    assert result["changed"] is True and result["verified"] is True, result
    for i in range(2, NODES + 1):
        assert node.route_get(node_ip(i)) == f"{node_ip(i)} dev eth0 src 192.0.2.11 uid 0"
    assert result["source_routes"]["networks"][0]["after"][0] == "192.0.2.12 dev eth0 src 192.0.2.11"
    assert node.routes("default") == default and node.route_get("203.0.113.5") == other
    # The kernel's own subnet route is still there, behind ours.
    assert node.routes("192.0.2.0/24") == ["192.0.2.0/24 dev eth0 proto static scope link src 192.0.2.11",
                                           "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.99"]
    table = node.table()
    again = node.module(**args)
    assert again["changed"] is False and again["source_routes"]["ok_peers"] == 3 and node.table() == table


def _multi_homed(make_node):
    """Seed 001 case 2's shape: the Calico IP on eth1; node3 sits on eth0's subnet, node4 only the
    default route (via eth0) reaches."""
    node = make_node()
    node.underlay("192.0.2.11/24")
    node.batch("""
        link add eth1 type veth peer name eth1p
        link set eth1 up
        link set eth1p up
        addr add 198.51.100.11/24 dev eth1
    """)
    facts = {"node1": fact("bgp", "198.51.100.11", [block(1)]), "node2": fact("bgp", "198.51.100.12", [block(2)]),
             "node3": fact("bgp", "192.0.2.13", [block(3)]), "node4": fact("bgp", "203.0.113.14", [block(4)])}
    return node, _contract.expected_map(facts)


@pytest.mark.parametrize(("extra", "want"), [
    # No way out by eth1 to them: keep the way out, fix the source only.
    ({}, {"192.0.2.13": "192.0.2.13 dev eth0 src 198.51.100.11 uid 0",
          "203.0.113.14": "203.0.113.14 via 192.0.2.1 dev eth0 src 198.51.100.11 uid 0"}),
    # A router on eth1: both leave by the Calico interface.
    ({"source_route_gateway": "198.51.100.1"},
     {"192.0.2.13": "192.0.2.13 via 198.51.100.1 dev eth1 src 198.51.100.11 uid 0",
      "203.0.113.14": "203.0.113.14 via 198.51.100.1 dev eth1 src 198.51.100.11 uid 0"}),
])
def test_source_routes_on_a_multi_homed_node(make_node, extra, want):
    node, expected = _multi_homed(make_node)
    default = node.routes("default")
    result = node.module(expected_map=expected, host="node1", source_routes=True, add_missing=False, **extra)
    assert result["verified"] is True, result
    src = result["source_routes"]
    assert (src["interface"], src["ok_peers"]) == ("eth1", 1)   # node2 shares eth1's subnet already
    actions = {n["network"]: n["action"] for n in src["networks"]}
    assert actions == {"192.0.2.0/24": "prepend", "203.0.113.14/32": "add"}
    for peer, line in want.items():
        assert node.route_get(peer) == line
    assert node.routes("default") == default
    assert node.module(expected_map=expected, host="node1", source_routes=True, add_missing=False,
                       **extra)["changed"] is False


def test_allow_default_route_puts_a_default_with_the_calico_source_in_front(make_node):
    node, expected = _multi_homed(make_node)
    result = node.module(expected_map=expected, host="node1", source_routes=True, allow_default_route=True,
                         source_route_gateway="198.51.100.1", add_missing=False)
    assert result["verified"] is True, result
    assert node.routes("default") == ["default via 198.51.100.1 dev eth1 proto static src 198.51.100.11",
                                      "default via 192.0.2.1 dev eth0"]
    assert node.route_get("203.0.113.14") == "203.0.113.14 via 198.51.100.1 dev eth1 src 198.51.100.11 uid 0"


def test_source_routes_fail_when_the_calico_ip_is_not_local(make_node):
    node = make_node()
    node.underlay("192.0.2.11/24")
    node.calico("bgp")
    before = node.table()
    expected = fleet_map("bgp")
    expected["nodes"]["node1"]["ip"] = "192.0.2.50"
    expected["blocks"][block(1)]["next_hop"] = "192.0.2.50"
    result = node.module(expected_map=expected, host="node1", source_routes=True)
    assert result.get("failed") is True and node.table() == before
    assert "Calico IP 192.0.2.50 (expected_map) is on no local interface" in result["msg"]


# --- scale --------------------------------------------------------------------------------------

SCALE = 5000


def test_5000_remote_blocks_are_checked_in_well_under_a_second(make_node):
    """A VXLAN node of a 5,001-node fleet (/28 blocks over 198.18.0.0/15): every remote block
    routed via its owner's VTEP address, with one stale and one missing."""
    def blk(i):
        net = 0xC6120000 + 16 * i  # 198.18.0.0 + i * /28
        return f"{net >> 24}.{net >> 16 & 255}.{net >> 8 & 255}.{net & 255}"

    facts = {f"n{i:04d}": fact("vxlan", f"192.0.2.{1 + i % 250}", [f"{blk(i)}/28"], blk(i))
             for i in range(SCALE + 1)}
    expected = _contract.expected_map(facts)
    node = make_node()
    node.underlay("192.0.2.1/24", default=None)
    node.batch(f"""
        link add vxlan.calico type vxlan id 4096 dstport 4789 local 192.0.2.1 dev eth0
        link set vxlan.calico up
        route add blackhole {blk(0)}/28 proto 80
        {chr(10).join(f"route add {blk(i)}/28 via {blk(i)} dev vxlan.calico onlink" for i in range(2, SCALE + 1))}
        route add {blk(1)}/28 via 192.0.2.2 dev vxlan.calico onlink
        route del {blk(77)}/28
    """)
    before = node.table()
    result = node.module(check=True, expected_map=expected, host="n0000")
    assert node.table() == before
    assert (result["drift"]["checked"], result["drift"]["ok"]) == (SCALE, SCALE - 2)
    assert [(d["kind"], d["dst"]) for d in result["drift"]["drift"]] == [
        ("missing", f"{blk(77)}/28"), ("wrong_next_hop", f"{blk(1)}/28")]
    timing = result["timing"]
    print(f"\ncalico_routes check mode, {SCALE} remote blocks: validate {timing['validate'] * 1000:.1f} ms, "
          f"read {timing['read'] * 1000:.1f} ms, plan {timing['plan'] * 1000:.1f} ms", file=sys.stderr)
    assert timing["validate"] + timing["read"] + timing["plan"] < 0.5
    # Only the map's size comes back, not the map: what a node returns stays O(node).
    assert result["invocation"]["module_args"]["expected_map"] == {
        "mode": "vxlan", "complete": True, "block_count": SCALE + 1, "node_count": SCALE + 1}
