"""The namespace lab itself (tests/lab/labctl): shapes, identity, SSH, faults, clean-up.

One 3-node lab per mode (2 pods per node, --extra-nic) is shared by the tests of that mode;
every fault test heals before it ends. Faults go on node3 (labctl's default, the last node);
"the peer" of a peer fault is node1.
"""

import hashlib
import json
import os
import re
import subprocess
import time

import pytest

pytestmark = pytest.mark.lab

LABCTL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lab", "labctl")
LAB_NAMES = {"bgp": "tbgp", "vxlan": "tvxlan", "ipip": "tipip"}
FAULTS = ["nm-unmanaged-missing", "nm-unmanaged-overridden", "autodetect-wrong-nic",
          "stale-route", "missing-route", "src-asym", "rp-filter-strict", "no-ip-forward",
          "proxy-arp-off", "bgp-peer-down"]
NODE_KEYS = {"name", "hostname", "namespace", "pid", "underlay", "extra", "calico_ip",
             "intended_ip", "asn", "blocks", "tunnel_device", "tunnel_address", "vxlan_mac",
             "autodetection_method", "calico_node", "processes", "pods"}
CALICO_NM_LIST = ("interface-name:cali*;interface-name:tunl*;interface-name:vxlan.calico;"
                  "interface-name:vxlan-v6.calico;interface-name:wireguard.cali;"
                  "interface-name:wg-v6.cali")


@pytest.fixture(scope="module", params=["bgp", "vxlan", "ipip"])
def mode_lab(request, lab_factory, lab_report):
    mode = request.param
    lab = lab_factory(LAB_NAMES[mode], mode=mode, nodes=3, pods_per_node=2, extra_nic=True)
    lab_report(f"lab-up-3 ({mode}): {lab.up_seconds:.2f} s")
    yield lab
    lab.down()


# ---------------------------------------------------------------- helpers

def ip_json(lab, target, *args):
    out = lab.exec(target, "ip", "-j", "-d", *args).stdout.strip()
    return json.loads(out) if out else []


def route_of(lab, node, dst):
    routes = ip_json(lab, node, "route", "show", dst)
    return routes[0] if routes else None


def bird(lab, node, command):
    return lab.exec(node, "birdc", "-s", "/var/run/calico/bird.ctl", *command.split()).stdout


def sessions(lab, node):
    """{protocol: info} of the node's BGP protocols, read through its own control socket."""
    out = {}
    for line in bird(lab, node, "show protocols").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "BGP":
            out[parts[0]] = parts[5] if len(parts) > 5 else parts[3]
    return out


def mesh_name(ip):
    return "Mesh_" + ip.replace(".", "_")


def environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return dict(kv.split("=", 1) for kv in fh.read().decode().split("\0") if "=" in kv)


def healthy_route(lab, node, owner):
    """What Calico programs on `node` for `owner`'s block."""
    if lab.mode == "bgp":
        return {"gateway": owner["calico_ip"], "dev": "eth0", "protocol": "bird"}
    if lab.mode == "ipip":
        return {"gateway": owner["calico_ip"], "dev": "tunl0", "protocol": "80", "flags": ["onlink"]}
    return {"gateway": owner["tunnel_address"], "dev": "vxlan.calico", "protocol": "boot",
            "flags": ["onlink"]}


def assert_route(route, spec):
    assert route is not None, spec
    assert {k: route.get(k) for k in spec} == spec, route


def bird_file_exists_warnings(lab, node):
    path = f"/run/netdoctor-lab/{lab.name}/{node}/bird.log"
    with open(path) as fh:
        return fh.read().count("Netlink: File exists")


def poll(pred, timeout=15.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


# ---------------------------------------------------------------- two labs, clean-up, CLI

def test_two_labs_at_once_then_down_leaves_nothing(lab_factory, lab_report):
    a = lab_factory("tsa", mode="bgp", nodes=2, pods_per_node=1)
    b = lab_factory("tsb", mode="vxlan", nodes=2, pods_per_node=1)
    lab_report(f"lab-up-2 (bgp): {a.up_seconds:.2f} s, lab-up-2 (vxlan): {b.up_seconds:.2f} s")
    ra, rb = a.show(), b.show()
    assert ra["slot"] != rb["slot"]
    assert ra["controller_ip"] != rb["controller_ip"]
    for lab in (a, b):
        result = lab.ping()
        assert (result.passed, result.failed) == (2, 0), result.output

    # `up` again on an identical lab is a no-op: same processes.
    b.up()
    assert b.show()["nodes"] == rb["nodes"]
    res = b.labctl("up", "--name", "tsb", "--nodes", "2", "--mode", "bgp", check=False)
    assert res.returncode == 2 and "exists" in res.stderr

    # exec: exit code and stdio pass through; a pod name enters the pod's namespace.
    res = b.exec("node1", "sh", "-c", "hostname; echo err >&2; exit 7", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (7, "node1\n", "err\n")
    pod = rb["nodes"][0]["pods"][0]
    assert f"inet {pod['ip']}/32" in b.exec(pod["name"], "ip", "-4", "addr", "show", "eth0").stdout

    # Faults that do not apply are refused with exit code 2.
    for fault, why in (("bgp-peer-down", "does not apply"), ("autodetect-wrong-nic", "--extra-nic"),
                       ("no-such-fault", "unknown fault")):
        res = b.fault(fault, check=False)
        assert res.returncode == 2 and why in res.stderr, res.stderr
    assert b.show()["faults"] == []

    # down removes namespaces, links, mounts, processes and files; b is untouched.
    pids = [p for n in ra["nodes"] for p in n["processes"].values()]
    assert a.leftovers(pids)                       # the check sees a live lab
    a.labctl("down", "--name", "tsa")
    assert a.leftovers(pids) == []
    a.down()                                       # nothing left: still a success
    assert a.labctl("nodes", "--name", "tsa", check=False).returncode == 1
    result = b.ping()
    assert (result.passed, result.failed) == (2, 0), result.output
    b.down()     # frees its slot for the per-mode labs


def test_bad_arguments_are_usage_errors(lab_factory):
    # Requesting lab_factory skips this where the lab cannot run; no lab is made.
    for args, why in ((["up", "--name", "Bad", "--nodes", "2", "--mode", "bgp"], "must match"),
                      (["up", "--name", "tolong7", "--nodes", "2", "--mode", "bgp"], "must match"),
                      (["up", "--name", "tbad", "--nodes", "51", "--mode", "bgp"], "--nodes"),
                      (["up", "--name", "tbad", "--nodes", "2", "--mode", "bgp",
                        "--pods-per-node", "61"], "--pods-per-node")):
        res = subprocess.run([LABCTL, *args], capture_output=True, text=True, check=False)
        assert res.returncode == 2 and why in res.stderr, res.stderr
    res = subprocess.run([LABCTL, "fault", "--name", "tbad", "stale-route"], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 1 and "no lab named" in res.stderr


# ---------------------------------------------------------------- one lab per mode

def test_healthy_lab_pings_all_pairs(mode_lab):
    result = mode_lab.ping()
    assert (result.passed, result.failed) == (30, 0), result.output


def test_node_records_and_kernel_shapes(mode_lab):
    lab = mode_lab
    record = lab.show()
    k = record["slot"]
    mode = lab.mode
    assert (record["mode"], record["faults"]) == (mode, [])
    assert record["controller_ip"] == f"192.0.2.{64 * k + 1}"
    nodes = record["nodes"]
    assert [n["name"] for n in nodes] == ["node1", "node2", "node3"]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=True).stdout
    for i, n in enumerate(nodes, 1):
        assert set(n) == NODE_KEYS
        ip = f"192.0.2.{64 * k + 10 + i}"
        assert n["underlay"] == [f"{ip}/26"] and n["extra"] == [f"198.51.100.{64 * k + 10 + i}/26"]
        assert n["calico_ip"] == n["intended_ip"] == ip
        assert n["blocks"] == [f"198.18.{64 * k + i}.0/26"] and n["asn"] == 64512
        assert n["hostname"] == n["name"] and n["namespace"] in namespaces
        assert n["autodetection_method"] == "interface=^eth0$"
        assert n["tunnel_device"] == {"bgp": None, "ipip": "tunl0", "vxlan": "vxlan.calico"}[mode]
        assert n["tunnel_address"] == (None if mode == "bgp" else f"198.18.{64 * k + i}.0")
        assert (n["vxlan_mac"] is not None) == (mode == "vxlan")
        assert set(n["processes"]) == {"keeper", "sshd", "calico-node"} | (
            set() if mode == "vxlan" else {"bird"})
        assert n["pid"] == n["processes"]["keeper"]
        for j, pod in enumerate(n["pods"], 1):
            assert pod["ip"] == f"198.18.{64 * k + i}.{j}"
            digest = hashlib.sha1(f"{lab.name}.{pod['name']}".encode()).hexdigest()
            assert pod["interface"] == "cali" + digest[:11]

    node1, others = nodes[0], nodes[1:]
    routes = {r["dst"]: r for r in ip_json(lab, "node1", "route", "show")}
    local = routes[node1["blocks"][0]]
    assert (local["type"], local["protocol"]) == ("blackhole", "bird" if mode == "bgp" else "80")
    for other in others:
        assert_route(routes[other["blocks"][0]], healthy_route(lab, node1, other))
    for pod in node1["pods"]:
        assert_route(routes[pod["ip"]], {"dev": pod["interface"], "protocol": "boot",
                                         "scope": "link"})
        link = ip_json(lab, "node1", "link", "show", pod["interface"])[0]
        assert link["address"] == "ee:ee:ee:ee:ee:ee"
        for key, value in (("conf.{}.proxy_arp", "1"), ("conf.{}.forwarding", "1"),
                           ("conf.{}.route_localnet", "1"), ("neigh.{}.proxy_delay", "0")):
            assert lab.sysctl("node1", "net.ipv4." + key.format(pod["interface"])) == value
        pod_routes = {r["dst"]: r for r in ip_json(lab, pod["name"], "route", "show")}
        assert pod_routes["default"]["gateway"] == "169.254.1.1"
        assert pod_routes["169.254.1.1"]["scope"] == "link"
    assert lab.sysctl("node1", "net.ipv4.ip_forward") == "1"
    links = {link["ifname"]: link for link in ip_json(lab, "node1", "link", "show")}
    assert links["eth1"]["ifindex"] > links["eth0"]["ifindex"]      # what first-found walks

    if mode in ("ipip", "vxlan"):
        dev = node1["tunnel_device"]
        info = links[dev]["linkinfo"]["info_data"]
        addrs = ip_json(lab, "node1", "addr", "show", dev)[0]["addr_info"]
        assert [(a["local"], a["prefixlen"]) for a in addrs if a["family"] == "inet"] == [
            (node1["tunnel_address"], 32)]
        if mode == "vxlan":
            assert (info["id"], info["port"], info["local"], info["learning"]) == (
                4096, 4789, node1["calico_ip"], False)
            assert (links[dev]["mtu"], links[dev]["address"]) == (1450, node1["vxlan_mac"])
        else:
            assert "local" not in info and links[dev]["mtu"] == 1480
        fdb = json.loads(lab.exec("node1", "bridge", "-j", "fdb", "show", "dev", dev).stdout)
        assert sorted(f["dst"] for f in fdb if f.get("dst")) == sorted(o["calico_ip"] for o in others)
        neigh = ip_json(lab, "node1", "neigh", "show", "dev", dev)
        want = [o["tunnel_address"] if mode == "vxlan" else o["calico_ip"] for o in others]
        assert sorted(x["dst"] for x in neigh if "PERMANENT" in x["state"]) == sorted(want)
        ruleset = lab.exec("node1", "nft", "-j", "list", "ruleset").stdout
        elements = next(item["set"]["elem"] for item in json.loads(ruleset)["nftables"]
                        if "set" in item)
        assert sorted(elements) == sorted(n["calico_ip"] for n in nodes)
    if mode in ("bgp", "ipip"):
        assert sessions(lab, "node1") == {mesh_name(o["calico_ip"]): "Established" for o in others}
        assert f"Router ID is {node1['calico_ip']}" in bird(lab, "node1", "show status")


def test_node_identity_files_and_calico_node_env(mode_lab):
    lab = mode_lab
    n = lab.node("node2")
    ip = n["calico_ip"]
    assert lab.sh("node2", "hostname; cat /etc/hostname") == "node2\nnode2\n"
    assert lab.sh("node2", "getent hosts node2").split()[0] == ip
    assert lab.sh("node2", "cat /var/lib/calico/nodename") == "node2"
    conflist = json.loads(lab.sh("node2", "cat /etc/cni/net.d/10-calico.conflist"))
    calico = conflist["plugins"][0]
    assert (calico["type"], calico["nodename"], calico["ipam"]["type"]) == (
        "calico", "node2", "calico-ipam")
    assert calico["log_level"] and calico["mtu"] == {"bgp": 1500, "vxlan": 1450, "ipip": 1480}[lab.mode]
    if lab.mode != "vxlan":
        assert lab.sh("node2", "test -S /var/run/calico/bird.ctl && echo socket") == "socket\n"
    pid = n["processes"]["calico-node"]
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        assert fh.read().split(b"\0")[0] == b"calico-node"
    env = environ(pid)
    assert env["NODENAME"] == "node2" and env["IP"] == "autodetect"
    assert env["IP_AUTODETECTION_METHOD"] == "interface=^eth0$"
    assert env["CALICO_NETWORKING_BACKEND"] == ("vxlan" if lab.mode == "vxlan" else "bird")
    assert env["CALICO_IPV4POOL_CIDR"] == "198.18.0.0/16"
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{n['namespace']}").st_ino
    # The node's files are its own: the machine's stay as they were.
    with open("/etc/hostname") as fh:
        assert fh.read().strip() != "node2"
    assert not os.path.exists("/var/lib/calico")


def test_ansible_reaches_every_node_over_ssh(mode_lab):
    res = mode_lab.ansible("-m", "ansible.builtin.ping")
    assert res.stdout.count("SUCCESS") == 3, res.stdout
    res = mode_lab.ansible("-m", "ansible.builtin.command", "-a", "hostname")
    for name in ("node1", "node2", "node3"):
        assert re.search(rf"^{name} \| CHANGED \| rc=0 >>\n{name}$", res.stdout, re.M), res.stdout


# ---------------------------------------------------------------- faults

def check_nm_unmanaged_missing(lab):
    n = lab.node("node3")
    assert {"nm", "dbus"} <= set(n["processes"])
    assert lab.sh("node3", "nmcli -t -f RUNNING general") == "running\n"
    config = lab.sh("node3", "NetworkManager --print-config")
    assert "unmanaged-devices" not in config
    assert "calico.conf" not in lab.sh("node3", "ls /etc/NetworkManager/conf.d")


def check_nm_unmanaged_overridden(lab):
    assert lab.sh("node3", "nmcli -t -f RUNNING general") == "running\n"
    files = lab.sh("node3", "ls /etc/NetworkManager/conf.d").split()
    assert files == ["calico.conf", "rke2-canal.conf"]
    config = lab.sh("node3", "NetworkManager --print-config")
    assert "unmanaged-devices=interface-name:cali*;interface-name:flannel*\n" in config
    assert CALICO_NM_LIST not in config


def check_autodetect_wrong_nic(lab):
    n3 = lab.node("node3")
    wrong = n3["extra"][0].split("/")[0]
    assert (n3["calico_ip"], n3["intended_ip"]) == (wrong, n3["underlay"][0].split("/")[0])
    assert n3["autodetection_method"] is None
    env = environ(n3["processes"]["calico-node"])
    assert "IP_AUTODETECTION_METHOD" not in env and env["IP"] == "autodetect"
    if lab.mode in ("bgp", "ipip"):
        assert f"Router ID is {wrong}" in bird(lab, "node3", "show status")
        assert sessions(lab, "node1")[mesh_name(wrong)] != "Established"
    if lab.mode in ("ipip", "vxlan"):
        dev = n3["tunnel_device"]
        fdb = json.loads(lab.exec("node1", "bridge", "-j", "fdb", "show", "dev", dev).stdout)
        assert wrong in [f.get("dst") for f in fdb]
    if lab.mode == "vxlan":
        info = ip_json(lab, "node3", "link", "show", "vxlan.calico")[0]["linkinfo"]["info_data"]
        assert (info["local"], info["link"]) == (wrong, "eth1")
    if lab.mode == "ipip":
        assert_route(route_of(lab, "node1", n3["blocks"][0]),
                     {"gateway": wrong, "dev": "tunl0", "protocol": "80"})
    result = lab.ping()
    assert result.failures == lab.pairs_between(["node3"], ["node1", "node2"]), result.output


def check_stale_route(lab):
    n1, n3 = lab.node("node1"), lab.node("node3")
    block = n1["blocks"][0]
    k = lab.show()["slot"]
    if lab.mode == "bgp":       # via an underlay address nobody holds (a node that is gone)
        want = {"gateway": f"192.0.2.{64 * k + 61}", "dev": "eth0", "protocol": "boot"}
    else:                       # seed 001 case 1: via the node's own tunnel address
        want = {"gateway": n3["tunnel_address"], "dev": n3["tunnel_device"], "protocol": "boot",
                "flags": ["onlink"]}
    assert_route(route_of(lab, "node3", block), want)
    if lab.mode == "bgp":
        # BIRD re-asserts its routes at every 2 s scan: its re-add must fail ("File exists")
        # against the alien route, twice, and leave it in place.
        seen = bird_file_exists_warnings(lab, "node3")
        assert poll(lambda: bird_file_exists_warnings(lab, "node3") >= seen + 2)
        assert_route(route_of(lab, "node3", block), want)
    result = lab.ping()
    assert result.failures == lab.pairs_between(["node3"], ["node1"]), result.output
    assert_route(route_of(lab, "node3", block), want)


def check_missing_route(lab):
    assert route_of(lab, "node3", lab.node("node1")["blocks"][0]) is None
    result = lab.ping()
    assert result.failures == lab.pairs_between(["node3"], ["node1"]), result.output


def check_src_asym(lab):
    n3, n1 = lab.node("node3"), lab.node("node1")
    got = ip_json(lab, "node3", "route", "get", n1["calico_ip"])[0]
    assert got["prefsrc"] != n3["calico_ip"]
    eth0 = ip_json(lab, "node3", "addr", "show", "eth0")[0]["addr_info"]
    assert got["prefsrc"] in [a["local"] for a in eth0]
    result = lab.ping()
    if lab.mode == "ipip":
        assert result.failures == lab.pairs_between(["node3"], ["node1", "node2"]), result.output
        rules = lab.exec("node1", "nft", "list", "chain", "ip", "calico", "filter-INPUT").stdout
        assert int(re.search(r"counter packets (\d+)", rules).group(1)) > 0, rules
    else:
        assert result.failures == set(), result.output


def check_rp_filter_strict(lab):
    for key in ("all", "default", "eth0", "eth1"):
        assert lab.sysctl("node3", f"net.ipv4.conf.{key}.rp_filter") == "1"
    assert lab.ping().failures == set()


def check_no_ip_forward(lab):
    assert lab.sysctl("node3", "net.ipv4.ip_forward") == "0"
    result = lab.ping()
    assert result.failures == lab.pairs_between(["node3"], ["node1", "node2", "node3"]), result.output


def check_proxy_arp_off(lab):
    for pod in lab.node("node3")["pods"]:
        assert lab.sysctl("node3", f"net.ipv4.conf.{pod['interface']}.proxy_arp") == "0"
    result = lab.ping()
    assert result.failures == lab.pairs_between(["node3"], ["node1", "node2", "node3"]), result.output


def check_bgp_peer_down(lab):
    n1, n3 = lab.node("node1"), lab.node("node3")
    assert sessions(lab, "node3")[mesh_name(n1["calico_ip"])] != "Established"
    assert sessions(lab, "node1")[mesh_name(n3["calico_ip"])] != "Established"
    assert sessions(lab, "node3")[mesh_name(lab.node("node2")["calico_ip"])] == "Established"
    # The drop is the host's own firewall, not Felix's table.
    assert "tcp dport 179 drop" in lab.exec("node3", "nft", "list", "table", "inet", "filter").stdout
    assert "179" not in lab.exec("node3", "nft", "list", "table", "ip", "calico").stdout
    result = lab.ping()
    if lab.mode == "bgp":
        assert route_of(lab, "node3", n1["blocks"][0]) is None
        assert result.failures == lab.pairs_between(["node3"], ["node1"]), result.output
    else:
        assert result.failures == set(), result.output


CHECKS = {name: globals()["check_" + name.replace("-", "_")] for name in FAULTS}


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_shows_then_heals(mode_lab, fault):
    lab = mode_lab
    if (fault, lab.mode) in (("bgp-peer-down", "vxlan"), ("missing-route", "bgp")):
        res = lab.fault(fault, check=False)
        assert res.returncode == 2 and "does not apply" in res.stderr
        return
    record = lab.fault(fault)
    assert [(f["fault"], f["node"]) for f in record["faults"]] == [(fault, "node3")]
    try:
        CHECKS[fault](lab)
    finally:
        healed = lab.heal()
    assert healed["faults"] == []
    result = lab.ping()
    assert (result.passed, result.failed) == (30, 0), result.output
    n3, n1 = lab.node("node3"), lab.node("node1")
    assert n3["calico_ip"] == n3["intended_ip"]
    assert not {"nm", "dbus"} & set(n3["processes"])
    assert "inet filter" not in lab.exec("node3", "nft", "list", "tables").stdout
    assert_route(route_of(lab, "node3", n1["blocks"][0]), healthy_route(lab, n3, n1))
    assert lab.sysctl("node3", "net.ipv4.ip_forward") == "1"
