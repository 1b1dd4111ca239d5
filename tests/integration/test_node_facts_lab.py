"""calico_node_facts on the namespace lab (tests/lab/labctl), over real SSH, checked against what
`labctl nodes` says about each node.

One 3-node lab (2 pods per node) per mode with --extra-nic, and a bgp lab with one NIC (so
calico-node uses first-found) and NetworkManager running (--nm), each shared by the tests that
run on it and gathered once healthy.
Faults go on node3 (labctl's default); "the peer" of a peer fault is node1; each fault test
heals before it ends. A fault runs in the modes where it shows differently in the facts.
Also here, without a lab: ansible-doc renders the module, and a Python without pyroute2 fails
naming the interpreter and the pyroute2 it needs.
"""

import contextlib
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from ansible_collections.netdoctor.calico.plugins.modules import calico_node_facts

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
MODULE = "netdoctor.calico.calico_node_facts"
SEVERE = ("critical", "warning")

# name, mode, extra NIC, NetworkManager running with Calico's calico.conf on every node
LABS = {"bgp-nm": ("nfb", "bgp", False, True), "bgp-extra": ("nfbx", "bgp", True, False),
        "vxlan-extra": ("nfvx", "vxlan", True, False), "ipip-extra": ("nfix", "ipip", True, False)}
EXTRA = ("bgp-extra", "vxlan-extra", "ipip-extra")
# How Calico routes another node's block in each mode: device and protocol.
REMOTE = {"bgp": ("eth0", "bird"), "ipip": ("tunl0", "felix"), "vxlan": ("vxlan.calico", "boot")}
BLACKHOLE_PROTOCOL = {"bgp": 12, "ipip": 80, "vxlan": 80}
TUNNEL_MTU = {"ipip": 1480, "vxlan": 1450}
CALICO_NM_SPECS = ["interface-name:cali*", "interface-name:tunl*", "interface-name:vxlan.calico",
                   "interface-name:vxlan-v6.calico", "interface-name:wireguard.cali", "interface-name:wg-v6.cali"]
TUNNEL_EXCLUDED = {"tunl0": "excluded by ^tunl.*", "vxlan.calico": r"excluded by ^vxlan\.calico.*"}
# seed 004: a NIC added after install; a documentation address, inside the node only.
ADDED_NIC, ADDED_PEER, ADDED_ADDRESS = "ens19", "ens19p", "203.0.113.12/24"


def on_labs(*configs):
    """The labs a test runs on (default: all)."""
    def mark(test):
        test.labs = configs
        return test
    return mark


def pytest_generate_tests(metafunc):
    # One lab per config, shared (module scope) by every test that runs on it.
    if "config" in metafunc.fixturenames:
        metafunc.parametrize("config", list(getattr(metafunc.function, "labs", LABS)), scope="module")


class Env:
    """A lab, its nodes as labctl reports them and the facts gathered on the healthy lab."""

    def __init__(self, lab):
        self.lab, self.mode = lab, lab.mode
        self.nodes = {n["name"]: n for n in lab.nodes()}
        self.facts = gather(lab)


@pytest.fixture(scope="module")
def env(config, lab_factory, lab_report):
    name, mode, extra_nic, nm = LABS[config]
    lab = lab_factory(name, mode=mode, nodes=3, pods_per_node=2, extra_nic=extra_nic, nm=nm)
    lab_report(f"lab-up-3 ({config}): {lab.up_seconds:.2f} s")
    yield Env(lab)
    lab.down()


# ---------------------------------------------------------------- helpers

def gather(lab, **args):
    """Run the module on every node; {host: calico_node fact}. Every node also gets its intended
    IP, the Calico IPs of the whole lab as peer_ips and two extra methods to replay."""
    nodes = lab.nodes()
    params = {"intended_ip": "{{ calico_intended_ip }}", "peer_ips": [n["calico_ip"] for n in nodes],
              "autodetection_methods": ["first-found", "interface=^eth0$"], **args}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANSIBLE_STDOUT_CALLBACK", "ansible.builtin.json")
        mp.setenv("ANSIBLE_LOAD_CALLBACK_PLUGINS", "1")
        res = lab.ansible("-m", MODULE, "-a", json.dumps(params), check=False)
    try:
        hosts = json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no JSON from ansible (rc {res.returncode}):\n{res.stdout}\n{res.stderr}") from None
    bad = {h: r.get("msg") for h, r in hosts.items() if r.get("failed") or r.get("unreachable")}
    assert res.returncode == 0 and not bad and sorted(hosts) == sorted(n["name"] for n in nodes), (bad, res.stderr)
    assert not any(r["changed"] for r in hosts.values())
    return {h: r["ansible_facts"]["calico_node"] for h, r in hosts.items()}


def ip_of(cidr):
    return cidr.split("/")[0]


def severe(fact):
    return [(f["id"], f["severity"], f["summary"]) for f in fact["findings"] if f["severity"] in SEVERE]


def result_for(fact, method):
    return next(r for r in fact["autodetection"]["results"] if r["method"] == method)


def remote_route(mode, owner):
    """How Calico routes the owner's block on the other nodes (tests/lab/README.md)."""
    if mode == "bgp":
        return {"gateway": owner["calico_ip"], "dev": "eth0", "onlink": False, "protocol": 12}
    if mode == "ipip":
        return {"gateway": owner["calico_ip"], "dev": "tunl0", "onlink": True, "protocol": 80}
    return {"gateway": owner["tunnel_address"], "dev": "vxlan.calico", "onlink": True, "protocol": 3}


def print_config_unmanaged(lab, node):
    """The effective [keyfile] unmanaged-devices as NetworkManager itself prints it."""
    section, value = None, ""
    for line in lab.exec(node, "NetworkManager", "--print-config").stdout.splitlines():
        if line.startswith("["):
            section = line.strip()
        elif section == "[keyfile]" and line.startswith("unmanaged-devices="):
            value = line.split("=", 1)[1]
    return [spec for spec in value.split(";") if spec]


# ---------------------------------------------------------------- the healthy lab

def test_facts_match_the_lab(env):
    mode, nodes = env.mode, env.nodes
    dev, proto = REMOTE[mode]
    documented = yaml.safe_load(calico_node_facts.RETURN)["ansible_facts"]["contains"]["calico_node"]["contains"]
    for name, node in nodes.items():
        fact, others = env.facts[name], [n for n in nodes.values() if n["name"] != name]
        assert severe(fact) == [], f"{name}: a healthy lab must be clean"
        assert set(fact) == set(documented)
        assert (fact["schema_version"], fact["hostname"], fact["calico"]["mode"]) == (1, name, mode)
        links = {link["name"]: link for link in fact["links"]}
        assert [f"{a['address']}/{a['prefixlen']}" for a in links["eth0"]["addresses"] if a["family"] == 4] \
            == node["underlay"]
        assert ("eth1" in links) == bool(node["extra"])

        # Local blocks (blackholes) and workloads, as labctl built them.
        assert fact["calico"]["local_blocks"] == node["blocks"]
        assert [(r["type"], r["protocol"]) for r in fact["routes"]["local_blocks"]] \
            == [("blackhole", BLACKHOLE_PROTOCOL[mode])]
        assert sorted(fact["calico"]["workloads"], key=lambda w: w["ip"]) == [
            {"interface": p["interface"], "ip": p["ip"], "proxy_arp": 1, "up": True}
            for p in sorted(node["pods"], key=lambda p: p["ip"])]

        # Tunnel device and address.
        tunnel = fact["calico"]["tunnel"]
        if mode == "bgp":
            assert tunnel is None and node["tunnel_device"] is None
        else:
            assert tunnel == {"device": node["tunnel_device"], "address": node["tunnel_address"],
                              "mtu": TUNNEL_MTU[mode], "up": True}
        vxlan = fact["calico"]["vxlan"]
        if mode == "vxlan":
            assert {k: vxlan[k] for k in ("device", "vni", "port", "local", "parent", "mac")} == {
                "device": "vxlan.calico", "vni": 4096, "port": 4789, "local": node["calico_ip"], "parent": "eth0",
                "mac": node["vxlan_mac"]}
            # Felix's permanent neighbour (peer VTEP -> its MAC) and FDB entry (MAC -> peer node IP).
            assert sorted((n["dst"], n["lladdr"]) for n in vxlan["neighbours"] if "permanent" in n["state"]) \
                == sorted((o["tunnel_address"], o["vxlan_mac"]) for o in others)
            assert sorted((f["lladdr"], f["dst"]) for f in vxlan["fdb"]) \
                == sorted((o["vxlan_mac"], o["calico_ip"]) for o in others)
        else:
            assert vxlan is None

        # Remote block routes: one per other node, on the mode's device, by the mode's owner.
        assert fact["routes"]["remote_blocks"] == {"count": len(others), "by_device": {dev: len(others)},
                                                   "by_protocol": {proto: len(others)}}
        assert fact["routes"]["suspect"] == []

        # BIRD: router id = the registered IP, a mesh session to every other node, Established.
        bird = fact["bird"]
        if mode == "vxlan":
            assert not bird["available"] and bird["peers"] == []
        else:
            assert bird["available"] and bird["error"] is None
            assert bird["router_id"] == node["calico_ip"]
            assert sorted((p["name"], p["address"], p["type"], p["established"], p["source_address"])
                          for p in bird["peers"]) == sorted(
                ("Mesh_" + o["calico_ip"].replace(".", "_"), o["calico_ip"], "node-to-node mesh", True,
                 node["calico_ip"]) for o in others)

        # Identity: node name files and calico-node's environment as the stand-in has it.
        identity = fact["identity"]
        assert (identity["nodename_file"], identity["cni"]["nodename"], identity["cni"]["active"]) == (name, name, True)
        assert identity["hosts_resolves_hostname"] and identity["hosts_addresses"] == [node["calico_ip"]]
        calico_node = identity["calico_node"]
        assert calico_node["pid"] == node["processes"]["calico-node"]
        assert (calico_node["env"]["NODENAME"], calico_node["env"]["IP"]) == (name, "autodetect")
        assert calico_node["env"].get("IP_AUTODETECTION_METHOD") == node["autodetection_method"]

        # The kernel's way to every peer leaves from this node's own underlay IP.
        for other in others:
            assert fact["peer_routes"][other["calico_ip"]] == {"prefsrc": node["calico_ip"], "dev": "eth0",
                                                               "gateway": None}

        # NetworkManager: installed everywhere; where it runs, Calico's drop-in keeps its devices unmanaged.
        nm = fact["network_manager"]
        assert (nm["installed"], nm["running"]) == (True, env.lab.nm)
        if env.lab.nm:
            assert nm["unmanaged_devices"] == print_config_unmanaged(env.lab, name) == CALICO_NM_SPECS
            assert nm["managed_calico_devices"] == [] and "NM001" not in [f["id"] for f in fact["findings"]]
            assert {d["state"] for d in nm["devices"] if d["device"].startswith("cali")} == {"unmanaged"}


def test_autodetection_replay(env):
    for name, node in env.nodes.items():
        fact = env.facts[name]
        auto = fact["autodetection"]
        in_use = node["autodetection_method"] or ""
        assert (auto["method_in_use"], auto["intended"]) == (in_use, node["intended_ip"])
        # The method in use predicts what the node registered.
        used = auto["results"][0]
        assert (used["method"], used["valid"], used["interface"]) == (in_use, True, "eth0")
        assert ip_of(used["address"]) == node["calico_ip"]
        assert result_for(fact, "interface=^eth0$")["address"] == node["underlay"][0]

        # first-found: the newest eligible interface wins (eth1, the extra NIC, when there is one);
        # every interface is listed, newest first, each with its reason.
        first = result_for(fact, "first-found")
        winner = "eth1" if node["extra"] else "eth0"
        assert (first["interface"], first["address"]) == (winner, (node["extra"] or node["underlay"])[0])
        assert first["log"] == f"Using autodetected IPv4 address on interface {winner}: {first['address']}"
        walked = [c["index"] for c in first["candidates"]]
        assert walked == sorted(walked, reverse=True)
        assert set(walked) == {link["index"] for link in fact["links"]}
        assert all(c["reason"] for c in first["candidates"])
        taken = [c for c in first["candidates"] if c["taken"]]
        assert [(c["interface"], c["address"]) for c in taken] == [(winner, first["address"])]
        v4 = {c["interface"]: c["reason"] for c in first["candidates"] if ":" not in (c["address"] or "")}
        assert v4["lo"] == "excluded by ^lo"
        assert all(v4[w["interface"]] == "excluded by ^cali.*" for w in fact["calico"]["workloads"])
        if node["tunnel_device"]:
            assert v4[node["tunnel_device"]] == TUNNEL_EXCLUDED[node["tunnel_device"]]
        assert v4[winner] == "taken: first global unicast IPv4 address in walk order"
        if node["extra"]:
            assert v4["eth0"] == "not reached: an earlier address was taken"


# ---------------------------------------------------------------- seed 004: a NIC added at run time

@contextlib.contextmanager
def added_nic(lab, node):
    """A veth pair added to the node at run time, the address on its newer end (the higher ifindex:
    the kernel registers the peer first). Left down: the replay, like calico-node, ignores link state."""
    lab.exec(node, "ip", "link", "add", ADDED_NIC, "type", "veth", "peer", "name", ADDED_PEER)
    try:
        lab.exec(node, "ip", "addr", "add", ADDED_ADDRESS, "dev", ADDED_NIC)
        yield
    finally:
        lab.exec(node, "ip", "link", "del", ADDED_NIC)
    assert ADDED_NIC not in lab.exec(node, "ip", "-o", "link", "show").stdout


def assert_ad002(env, fact, node, registered_ip):
    """first-found now picks the added NIC, not the address calico-node registered (seed 004)."""
    registered = "VXLAN tunnel local address" if env.mode == "vxlan" else "BIRD router id"
    (found,) = [f for f in fact["findings"] if f["id"] == "AD002"]
    assert found["severity"] == "critical"
    assert found["summary"] == (f"first-found on {node} now picks {ADDED_ADDRESS} ({ADDED_NIC}), but the {registered} "
                                f"is {registered_ip}: the node IP changes within 60 s (IP=autodetect re-detects)")
    assert found["evidence"]["candidates"][0] == (f"{ADDED_NIC} {ADDED_ADDRESS}: "
                                                  "taken: first global unicast IPv4 address in walk order")
    assert "IP_AUTODETECTION_METHOD=" in found["remedy"]


def test_added_nic_moves_first_found_not_an_anchored_interface(env):
    with added_nic(env.lab, "node2"):
        # full_routes as well: the down NIC adds no route, and each remote block route is returned
        facts = gather(env.lab, full_routes=True)
    node, fact = env.nodes["node2"], facts["node2"]
    links = {link["name"]: link["index"] for link in fact["links"]}
    assert links[ADDED_NIC] == max(links.values())
    first = result_for(fact, "first-found")
    assert (first["interface"], first["address"]) == (ADDED_NIC, ADDED_ADDRESS)
    assert [(c["interface"], c["taken"]) for c in first["candidates"][:1]] == [(ADDED_NIC, True)]
    assert result_for(fact, "interface=^eth0$")["address"] == node["underlay"][0]
    for name in ("node1", "node3"):
        assert facts[name]["autodetection"] == env.facts[name]["autodetection"]
        assert severe(facts[name]) == []
    for name, other in env.nodes.items():
        want = {o["blocks"][0]: remote_route(env.mode, o) for o in env.nodes.values() if o is not other}
        have = {r["dst"]: {k: r[k] for k in ("gateway", "dev", "onlink", "protocol")}
                for r in facts[name]["routes"]["remote_blocks"]}
        assert have == want, name
    if node["autodetection_method"]:
        # interface=^eth0$ in use: the new NIC changes nothing calico-node would do.
        assert severe(fact) == []
    else:
        # first-found in use: at its next detection calico-node moves to the new NIC.
        assert [(f["id"], f["severity"]) for f in fact["findings"] if f["severity"] in SEVERE] \
            == [("AD002", "critical")]
        assert_ad002(env, fact, "node2", node["calico_ip"])


# ---------------------------------------------------------------- faults, one at a time, healed after each

@contextlib.contextmanager
def faulted(env, fault):
    """Inject the fault on node3, yield (facts, nodes as labctl now reports them), heal."""
    lab = env.lab
    record = lab.fault(fault)
    assert [(f["fault"], f["node"]) for f in record["faults"]] == [(fault, "node3")]
    try:
        yield gather(lab), {n["name"]: n for n in record["nodes"]}
    finally:
        healed = lab.heal()
    assert healed["faults"] == []


def by_node(facts):
    """{node: [(id, severity, peer)]} of the findings of warning or above."""
    return {name: sorted((f["id"], f["severity"], f["peer"]) for f in fact["findings"] if f["severity"] in SEVERE)
            for name, fact in facts.items()}


@on_labs("vxlan-extra")
def test_proxy_arp_off(env):
    with faulted(env, "proxy-arp-off") as (facts, nodes):
        ifaces = sorted(p["interface"] for p in nodes["node3"]["pods"])
        fact = facts["node3"]
        assert {w["interface"]: w["proxy_arp"] for w in fact["calico"]["workloads"]} == dict.fromkeys(ifaces, 0)
        assert by_node(facts) == {"node1": [], "node2": [], "node3": [("SYS001", "critical", None)]}
        (found,) = [f for f in fact["findings"] if f["id"] == "SYS001"]
        assert found["evidence"] == {"proxy_arp": dict.fromkeys(ifaces, 0), "count": len(ifaces)}


@on_labs("bgp-nm")
def test_no_ip_forward(env):
    with faulted(env, "no-ip-forward") as (facts, nodes):
        sysctls = facts["node3"]["sysctls"]
        assert sysctls["net.ipv4.ip_forward"] == 0
        assert {v["forwarding"] for v in sysctls["interfaces"].values()} == {0}
        assert by_node(facts) == {"node1": [], "node2": [], "node3": [("SYS001", "critical", None)]}
        (found,) = [f for f in facts["node3"]["findings"] if f["id"] == "SYS001"]
        assert found["evidence"] == {"net.ipv4.ip_forward": 0}


@on_labs("bgp-nm", "ipip-extra")
def test_bgp_peer_down(env):
    with faulted(env, "bgp-peer-down") as (facts, nodes):
        ip1, ip2, ip3 = (nodes[n]["calico_ip"] for n in ("node1", "node2", "node3"))
        assert {p["address"]: p["established"] for p in facts["node3"]["bird"]["peers"]} == {ip1: False, ip2: True}
        # One of two sessions down: calico-node stays Ready, so a warning.
        assert by_node(facts) == {"node1": [("BGP001", "warning", ip3)], "node2": [],
                                  "node3": [("BGP001", "warning", ip1)]}
        (found,) = [f for f in facts["node3"]["findings"] if f["id"] == "BGP001"]
        assert found["evidence"]["peer"]["name"] == "Mesh_" + ip1.replace(".", "_")
        assert ip1 in found["summary"]
        # The evidence: node3's host firewall (table inet filter) drops the session's packets, both ways;
        # node1's ruleset lets them through.
        drops = found["evidence"]["firewall"]["drops"]
        assert {(d["family"], d["table"], d["chain"]) for d in drops} == {("inet", "filter", "input"),
                                                                          ("inet", "filter", "output")}
        assert f"ip saddr {ip1} tcp dport 179 drop" in [d["rule"] for d in drops]
        assert "repair_bgp_firewall=true" in found["remedy"] and "firewall drops it" in found["summary"]
        (other,) = [f for f in facts["node1"]["findings"] if f["id"] == "BGP001"]
        assert other["evidence"]["firewall"] == {"checked": True, "drops": []}
        # A healthy node never reads the ruleset.
        assert facts["node2"]["firewall"] == {"checked": False, "reason": "no BGP session is down", "peers": [],
                                              "blocking": {}}


@on_labs("bgp-nm")
def test_src_asym(env):
    with faulted(env, "src-asym") as (facts, nodes):
        (record,) = env.lab.show()["faults"]
        # seed 001 case 2: node3's way to its peers now leaves from the second address; the fleet's
        # SRC001 reads this, nothing node-local can tell it is wrong.
        for peer in ("node1", "node2"):
            assert facts["node3"]["peer_routes"][nodes[peer]["calico_ip"]] == {
                "prefsrc": record["address"], "dev": "eth0", "gateway": None}
        assert facts["node1"]["peer_routes"][nodes["node3"]["calico_ip"]]["prefsrc"] == nodes["node1"]["calico_ip"]
        assert by_node(facts) == {"node1": [], "node2": [], "node3": []}


@on_labs("vxlan-extra", "ipip-extra")
def test_stale_route(env):
    with faulted(env, "stale-route") as (facts, nodes):
        n3, block = nodes["node3"], nodes["node1"]["blocks"][0]
        dev = n3["tunnel_device"]
        (suspect,) = facts["node3"]["routes"]["suspect"]
        assert suspect["text"] == f"{block} via {n3['tunnel_address']} dev {dev} onlink"
        assert any(f"inside this node's own block {n3['blocks'][0]}" in r for r in suspect["reasons"])
        assert by_node(facts) == {"node1": [], "node2": [], "node3": [("RT001", "warning", None)]}


def _check_nm(env, facts, nodes, expect_unmanaged):
    assert {name: f["network_manager"]["running"] for name, f in facts.items()} == {
        "node1": False, "node2": False, "node3": True}
    nm = facts["node3"]["network_manager"]
    assert nm["unmanaged_devices"] == print_config_unmanaged(env.lab, "node3") == expect_unmanaged
    assert {d["device"] for d in nm["devices"]} >= {p["interface"] for p in nodes["node3"]["pods"]}
    (found,) = [f for f in facts["node3"]["findings"] if f["id"] == "NM001"]
    assert by_node(facts)["node1"] == by_node(facts)["node2"] == []
    assert [(i, s) for i, s, _p in by_node(facts)["node3"]] == [("NM001", found["severity"])]
    return nm, found


@on_labs("ipip-extra")
def test_nm_unmanaged_missing(env):
    with faulted(env, "nm-unmanaged-missing") as (facts, nodes):
        nm, found = _check_nm(env, facts, nodes, [])
        n3 = nodes["node3"]
        present = sorted([p["interface"] for p in n3["pods"]] + ([n3["tunnel_device"]] if n3["tunnel_device"] else []))
        assert found["severity"] == "critical"
        assert sorted(found["evidence"]["present_links"]) == present
        assert nm["files"] == ["/etc/NetworkManager/NetworkManager.conf"]


@on_labs("bgp-extra", "vxlan-extra")
def test_nm_unmanaged_overridden(env):
    with faulted(env, "nm-unmanaged-overridden") as (facts, nodes):
        nm, found = _check_nm(env, facts, nodes, ["interface-name:cali*", "interface-name:flannel*"])
        n3 = nodes["node3"]
        assert nm["files"] == ["/etc/NetworkManager/NetworkManager.conf", "/etc/NetworkManager/conf.d/calico.conf",
                               "/etc/NetworkManager/conf.d/rke2-canal.conf"]
        assert found["evidence"]["last_replacing_file"] == "/etc/NetworkManager/conf.d/rke2-canal.conf"
        assert "cali*" not in found["evidence"]["managed_calico_devices"]
        # cali* stays unmanaged; what is lost bites now only where a tunnel device exists.
        assert found["severity"] == ("warning" if env.mode == "bgp" else "critical")
        assert found["evidence"]["present_links"] == ([n3["tunnel_device"]] if n3["tunnel_device"] else [])


@on_labs(*EXTRA)
def test_autodetect_wrong_nic(env):
    with faulted(env, "autodetect-wrong-nic") as (facts, nodes):
        n3, fact = nodes["node3"], facts["node3"]
        wrong = n3["extra"][0]
        assert (n3["calico_ip"], n3["autodetection_method"]) == (ip_of(wrong), None)
        assert "IP_AUTODETECTION_METHOD" not in fact["identity"]["calico_node"]["env"]
        used = fact["autodetection"]["results"][0]
        assert (fact["autodetection"]["method_in_use"], used["interface"], used["address"]) == ("", "eth1", wrong)
        if env.mode == "vxlan":
            assert (fact["calico"]["vxlan"]["local"], fact["calico"]["vxlan"]["parent"]) == (ip_of(wrong), "eth1")
            others, mine = [], []
        else:
            assert fact["bird"]["router_id"] == ip_of(wrong)
            others = [("BGP001", "warning", ip_of(wrong))]
            mine = [("BGP001", "critical", nodes[n]["calico_ip"]) for n in ("node1", "node2")]
        assert by_node(facts) == {"node1": others, "node2": others,
                                  "node3": sorted([("AD001", "critical", None), *mine])}
        (found,) = [f for f in fact["findings"] if f["id"] == "AD001"]
        assert (found["evidence"]["predicted"], found["evidence"]["intended"]) == (wrong, n3["intended_ip"])
        assert found["summary"] == f"first-found on node3 picks {wrong} (eth1), not its intended IP {n3['intended_ip']}"
        assert "IP_AUTODETECTION_METHOD=" in found["remedy"]

        # seed 004 on top: a NIC added now would move the node again, away from what it registered.
        with added_nic(env.lab, "node3"):
            fact = gather(env.lab)["node3"]
        assert [(f["id"], f["severity"]) for f in fact["findings"] if f["id"].startswith("AD")] \
            == [("AD001", "critical"), ("AD002", "critical")]
        assert_ad002(env, fact, "node3", ip_of(wrong))


# ---------------------------------------------------------------- no lab: documentation, no pyroute2

def test_ansible_doc_renders_options_and_return_keys():
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    doc = subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), MODULE], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=120, check=False)
    assert doc.returncode == 0 and not doc.stderr.strip(), doc.stderr
    options, returns = doc.stdout.split("OPTIONS", 1)[1].split("RETURN VALUES:", 1)
    for option in calico_node_facts.ARGUMENT_SPEC:
        assert re.search(rf"^- {option}\s", options, re.M), option
    documented = yaml.safe_load(calico_node_facts.RETURN)["ansible_facts"]["contains"]["calico_node"]["contains"]
    for key in ["calico_node", *documented]:
        assert re.search(rf"^\s+- {key}\s", returns, re.M), key
    spec = json.loads(subprocess.run([os.path.join(VENV_BIN, "ansible-doc"), "--json", MODULE], capture_output=True,
                                     text=True, env=env, cwd=REPO, timeout=120, check=True).stdout)
    assert set(spec[MODULE]["doc"]["options"]) == set(calico_node_facts.ARGUMENT_SPEC)


def test_without_pyroute2_fails_naming_the_interpreter_and_the_version_needed(tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # the premise: this interpreter cannot import pyroute2
    assert subprocess.run([python, "-c", "import pyroute2"], capture_output=True, check=False).returncode != 0
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    res = subprocess.run([os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local",
                          "-e", f"ansible_python_interpreter={python}", "-m", MODULE],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=180, check=False)
    result = json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert res.returncode == 2 and result["failed"]
    assert result["msg"].startswith("pyroute2 is not installed for ")
    assert python in result["msg"] and "pyroute2 0.7.2 or newer" in result["msg"]
