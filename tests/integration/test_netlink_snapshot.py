"""_netlink.snapshot() and route_get() against iproute2, field by field, on a network namespace
this module creates (documentation addresses only) and deletes. Needs root."""

import glob
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _netlink as nl

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("bridge"),
                                reason="needs root and iproute2")

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"

# Each line is one `ip -n NS ...` command (split on spaces); the links come up after the link lines.
SETUP = """
link add eth0 type veth peer name eth0peer
link add br0 type bridge
link set eth0peer master br0
link add tunl0 type veth peer name tunl0peer
link add cali1234567890a type veth peer name calipeer
link add vxlan.calico type vxlan id 4096 dstport 4789 local 192.0.2.11 dev eth0
link set vxlan.calico mtu 1450
addr add 192.0.2.11/24 dev eth0
addr add 192.0.2.99/24 dev eth0
addr add 198.51.100.11/24 dev br0 noprefixroute
addr add 198.18.1.1/32 dev tunl0
addr add 198.18.1.64/32 dev vxlan.calico
addr add 2001:db8::11/64 dev eth0 nodad
route add default via 192.0.2.1 dev eth0
route add blackhole 198.18.1.0/26 proto bird
route add 198.18.2.0/26 via 192.0.2.12 dev tunl0 proto bird onlink
route add 198.18.1.5/32 dev cali1234567890a scope link proto boot
route add 198.18.3.0/26 proto bird nexthop via 192.0.2.12 dev eth0 weight 1 nexthop via 192.0.2.13 dev eth0 weight 2
route add 198.18.4.0/26 via 192.0.2.14 dev eth0 proto 80 onlink
route add 198.18.5.0/26 via 198.18.5.0 dev vxlan.calico onlink proto boot
route add 203.0.113.0/24 via 192.0.2.1 dev eth0 metric 100 src 192.0.2.11 proto static
route add unreachable 198.18.6.0/26
route add prohibit 198.18.7.0/26
route add 198.18.8.0/26 dev eth0 table 100
-6 route add 2001:db8:1::/64 via 2001:db8::1 dev eth0 proto bird
-6 route add blackhole 2001:db8:2::/48 proto 80
rule add from 198.18.0.0/16 lookup 100 priority 100
rule add fwmark 0x10 iif eth0 lookup 100 priority 101
rule add to 203.0.113.0/24 oif tunl0 lookup 1000 priority 102
-6 rule add from 2001:db8:3::/48 lookup 100 priority 100
neigh add 198.18.5.0 lladdr 66:aa:bb:cc:dd:ee dev vxlan.calico nud permanent
neigh add 192.0.2.77 lladdr 52:54:00:00:00:77 dev eth0 nud noarp
-6 neigh add 2001:db8::12 lladdr 52:54:00:00:00:12 dev eth0 nud stale
"""
LINKS = ("lo", "eth0", "eth0peer", "br0", "tunl0", "tunl0peer", "cali1234567890a", "calipeer", "vxlan.calico")


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def netns():
    name = f"ndnl-{uuid.uuid4().hex[:10]}"
    run("ip", "netns", "add", name)
    try:
        # No automatic link-local addresses and no DAD: addresses stay as programmed.
        run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.addr_gen_mode=1",
            "net.ipv6.conf.default.addr_gen_mode=1", "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0")
        lines = SETUP.strip().splitlines()
        links_end = next((i for i, line in enumerate(lines) if line.startswith("addr ")), len(lines))
        for line in lines[:links_end]:
            run("ip", "-n", name, *line.split())
        for link in LINKS:
            run("ip", "-n", name, "link", "set", link, "up")
        for line in lines[links_end:]:
            run("ip", "-n", name, *line.split())
        for mac, dst in (("66:aa:bb:cc:dd:ee", "192.0.2.12"), ("00:00:00:00:00:00", "192.0.2.13")):
            run("ip", "netns", "exec", name, "bridge", "fdb", "append", mac, "dev", "vxlan.calico", "dst", dst,
                "self", "permanent")
        yield name
    finally:
        run("ip", "netns", "del", name)


def ip_json(ns, *args):
    return json.loads(run("ip", "-n", ns, "-j", *args) or "[]")


def _rt_names(table):
    """iproute2's name -> number table (rt_protos, rt_tables) as ip uses it."""
    names = {}
    for path in [f"/etc/iproute2/{table}", f"/usr/share/iproute2/{table}",
                 *sorted(glob.glob(f"/etc/iproute2/{table}.d/*.conf"))]:
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2:
                    names[fields[1]] = int(fields[0], 0)
    return names


def number(value, names):
    return names[value] if value in names else int(value, 0)


@pytest.fixture(scope="module")
def snap(netns):
    return nl.snapshot(netns)


@pytest.fixture(scope="module")
def index(snap):
    return {link["name"]: link["index"] for link in snap["links"]}


def test_links_match_ip(netns, snap, index):
    expected = []
    for link in ip_json(netns, "-d", "link", "show"):
        info = link.get("linkinfo", {})
        data = info.get("info_data") if info.get("info_kind") == "vxlan" else None
        expected.append({
            "index": link["ifindex"], "name": link["ifname"], "kind": info.get("info_kind"),
            "up": "UP" in link["flags"], "operstate": link["operstate"], "mtu": link["mtu"],
            "mac": link.get("address") if link.get("link_type") in ("ether", "loopback") else None,
            "master": index.get(link.get("master")), "link": link.get("link_index") or index.get(link.get("link")),
            "vxlan": data and {"vni": data["id"], "port": data["port"],
                               "local": data.get("local") or data.get("local6"), "link": index.get(data.get("link"))},
        })
    assert snap["links"] == expected
    by_name = {link["name"]: link for link in snap["links"]}
    assert by_name["vxlan.calico"]["vxlan"] == {"vni": 4096, "port": 4789, "local": "192.0.2.11",
                                                "link": index["eth0"]}
    assert (by_name["eth0peer"]["master"], by_name["eth0"]["link"]) == (index["br0"], index["eth0peer"])
    assert {by_name[n]["kind"] for n in ("eth0", "br0", "vxlan.calico")} == {"veth", "bridge", "vxlan"}


ADDRESS_FLAG_KEYS = {"secondary": "secondary", "temporary": "temporary", "nodad": "nodad",
                     "optimistic": "optimistic", "dadfailed": "dadfailed", "home": "homeaddress",
                     "deprecated": "deprecated", "tentative": "tentative", "mngtmpaddr": "managetempaddr",
                     "noprefixroute": "noprefixroute", "autojoin": "mcautojoin", "stable-privacy": "stableprivacy"}


def test_addresses_match_ip_in_kernel_order(netns, snap):
    scopes = {"global": "global", "link": "link", "host": "host", "site": "site"}
    for link in ip_json(netns, "addr", "show"):
        expected = [{
            "index": link["ifindex"], "family": 4 if a["family"] == "inet" else 6, "address": a["local"],
            "prefixlen": a["prefixlen"], "scope": scopes.get(a["scope"], a["scope"]),
            "flags": sorted([name for key, name in ADDRESS_FLAG_KEYS.items() if a.get(key)]
                            + ([] if a.get("dynamic") else ["permanent"])),
            "label": a.get("label"),
        } for a in link["addr_info"]]
        got = [dict(a, flags=sorted(a["flags"])) for a in snap["addresses"] if a["index"] == link["ifindex"]]
        assert got == expected, link["ifname"]
    eth0 = [(a["address"], a["flags"]) for a in snap["addresses"] if a["label"] == "eth0" or a["address"] ==
            "2001:db8::11"]
    assert eth0 == [("192.0.2.11", ["permanent"]), ("192.0.2.99", ["secondary", "permanent"]),
                    ("2001:db8::11", ["nodad", "permanent"])]


def _ip_routes(netns, family, index):
    protos = _rt_names("rt_protos")
    scopes = {"global": "universe"}
    routes = []
    for r in ip_json(netns, "-d", f"-{family}", "route", "show", "table", "main"):
        dst = r["dst"]
        if dst != "default" and "/" not in dst:
            dst += "/32" if family == 4 else "/128"
        hops = r.get("nexthops")
        routes.append({
            "family": family, "dst": dst, "type": r["type"], "protocol": number(r["protocol"], protos),
            "scope": scopes.get(r["scope"], r["scope"]), "gateway": r.get("gateway"),
            "oif": index.get(r.get("dev")), "dev": r.get("dev"), "metric": r.get("metric"),
            "prefsrc": r.get("prefsrc"), "onlink": "onlink" in r["flags"],
            "multipath": hops and [{"gateway": h.get("gateway"), "oif": index[h["dev"]], "dev": h["dev"],
                                    "onlink": "onlink" in h["flags"], "weight": h["weight"]} for h in hops],
        })
    return routes


def test_routes_match_ip(netns, snap, index):
    assert snap["routes"] == _ip_routes(netns, 4, index) + _ip_routes(netns, 6, index)
    shapes = {r["dst"]: r for r in snap["routes"]}
    assert (shapes["198.18.1.0/26"]["type"], shapes["198.18.1.0/26"]["protocol"]) == ("blackhole", 12)
    tunnel = shapes["198.18.2.0/26"]
    assert (tunnel["gateway"], tunnel["dev"], tunnel["onlink"], tunnel["protocol"]) == ("192.0.2.12", "tunl0", True, 12)
    workload = shapes["198.18.1.5/32"]
    assert (workload["dev"], workload["scope"], workload["protocol"]) == ("cali1234567890a", "link", 3)
    assert [hop["weight"] for hop in shapes["198.18.3.0/26"]["multipath"]] == [1, 2]
    assert (shapes["198.18.4.0/26"]["protocol"], shapes["198.18.4.0/26"]["onlink"]) == (80, True)
    assert (shapes["203.0.113.0/24"]["metric"], shapes["203.0.113.0/24"]["prefsrc"]) == (100, "192.0.2.11")
    assert shapes["2001:db8:2::/48"]["type"] == "blackhole"
    assert "198.18.8.0/26" not in shapes  # table 100


def test_neighbours_match_ip(netns, snap):
    expected = [{"index": None, "dev": n["dev"], "family": 6 if ":" in n["dst"] else 4, "dst": n["dst"],
                 "lladdr": n.get("lladdr"), "state": [s.lower() for s in n["state"]]}
                for n in ip_json(netns, "neigh", "show", "nud", "all")]
    assert [dict(n, index=None) for n in snap["neighbours"]] == expected
    # The kernel adds its own NOARP entries for the multicast groups it reports (224.0.0.22, ff02::16).
    programmed = {"198.18.5.0": ["permanent"], "192.0.2.77": ["noarp"], "2001:db8::12": ["stale"]}
    assert programmed.items() <= {n["dst"]: n["state"] for n in snap["neighbours"]}.items()


def test_fdb_matches_bridge(netns, snap, index):
    entries = json.loads(run("ip", "netns", "exec", netns, "bridge", "-j", "fdb", "show"))
    expected = [{"index": index[e["ifname"]], "dev": e["ifname"], "lladdr": e["mac"], "dst": e["dst"],
                 "permanent": e["state"] == "permanent"} for e in entries if "dst" in e]
    got = [{k: v for k, v in e.items() if k != "state"} | {"permanent": "permanent" in e["state"]} for e in snap["fdb"]]
    assert got == expected
    assert {(e["lladdr"], e["dst"]) for e in snap["fdb"]} == {
        ("66:aa:bb:cc:dd:ee", "192.0.2.12"), ("00:00:00:00:00:00", "192.0.2.13")}


def test_rules_match_ip(netns, snap):
    tables = _rt_names("rt_tables") | {"local": 255, "main": 254, "default": 253}

    def prefix(rule, key):
        value = rule.get(key)
        if value in (None, "all"):
            return None
        return f"{value}/{rule.get(key + 'len', 32 if family == 4 else 128)}"

    expected = []
    for family in (4, 6):
        for rule in ip_json(netns, f"-{family}", "rule", "show"):
            expected.append({
                "family": family, "priority": rule["priority"], "table": number(rule["table"], tables),
                "src": prefix(rule, "src"), "dst": prefix(rule, "dst"), "iif": rule.get("iif"), "oif": rule.get("oif"),
                "fwmark": int(rule["fwmark"], 16) if "fwmark" in rule else None,
            })
    assert snap["rules"] == expected
    assert {r["priority"]: (r["table"], r["src"], r["dst"], r["iif"], r["oif"], r["fwmark"])
            for r in snap["rules"] if r["family"] == 4 and 100 <= r["priority"] <= 102} == {
        100: (100, "198.18.0.0/16", None, None, None, None), 101: (100, None, None, "eth0", None, 16),
        102: (1000, None, "203.0.113.0/24", None, "tunl0", None)}


@pytest.mark.parametrize("dst", ["198.18.4.5", "198.18.2.9", "203.0.113.7", "192.0.2.11", "198.51.100.20",
                                 "2001:db8:1::5", "2001:db8::12"])
def test_route_get_matches_ip(netns, index, dst):
    (expected,) = ip_json(netns, "route", "get", dst)
    got = nl.route_get(dst, netns)
    tables = {"local": 255, "main": 254}
    assert (got["gateway"], got["dev"], got["oif"], got["prefsrc"], got["table"]) == (
        expected.get("gateway"), expected["dev"], index[expected["dev"]], expected.get("prefsrc"),
        tables[expected.get("table", "main")])


@pytest.mark.parametrize("dst", ["198.18.1.7", "198.18.6.1", "198.18.7.1"])
def test_route_get_without_a_usable_route(netns, dst):
    assert subprocess.run(["ip", "-n", netns, "route", "get", dst], check=False, capture_output=True).returncode != 0
    assert nl.route_get(dst, netns) is None


def test_current_namespace_is_the_default(netns):
    code = ("import json; from ansible_collections.netdoctor.calico.plugins.module_utils import _netlink as nl; "
            "print(json.dumps([nl.snapshot(), nl.route_get('198.18.4.5')]))")
    out = run("ip", "netns", "exec", netns, "env", f"PYTHONPATH={COLLECTIONS}", sys.executable, "-c", code)
    assert json.loads(out) == [nl.snapshot(netns), nl.route_get("198.18.4.5", netns)]


def test_missing_namespace_is_an_error_and_is_not_created():
    name = f"ndnl-missing-{uuid.uuid4().hex[:10]}"
    with pytest.raises(FileNotFoundError):
        nl.snapshot(name)
    assert not os.path.exists(f"/var/run/netns/{name}")
