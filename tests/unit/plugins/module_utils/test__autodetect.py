"""Replay of calico-node's IP autodetection (plugins/module_utils/_autodetect.py)."""

from __future__ import annotations

import ipaddress

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect as ad
from ansible_collections.netdoctor.calico.tests.unit import iptext
from ansible_collections.netdoctor.calico.tests.unit.fixtures import seeds


def _snap(*links):
    """links: (ifindex, name, ["addr/len", ...], up) -> snapshot; addresses in the order given."""
    snapshot = {"links": [], "addresses": []}
    for index, name, addrs, *rest in links:
        up = rest[0] if rest else True
        snapshot["links"].append({"index": index, "name": name, "kind": None, "up": up,
                                  "operstate": "UP" if up else "DOWN", "mtu": 1500})
        for text in addrs:
            address, prefixlen = text.split("/")
            snapshot["addresses"].append({"index": index, "family": 6 if ":" in address else 4, "address": address,
                                          "prefixlen": int(prefixlen), "scope": "global", "flags": [], "label": name})
    return snapshot


BASIC = _snap((1, "lo", ["127.0.0.1/8", "::1/128"]), (2, "eth0", ["192.0.2.11/24", "fe80::1/64"]),
              (3, "docker0", ["172.17.0.1/16"]))


def _picked(result):
    return result["interface"], result["address"]


# --- ordering and what counts ----------------------------------------------------------------

def test_first_found_walks_links_newest_first():
    snap = _snap((1, "lo", ["127.0.0.1/8"]), (2, "eth0", ["192.0.2.11/24"]), (3, "eth1", ["198.51.100.11/24"]))
    result = ad.autodetect(snap)
    assert _picked(result) == ("eth1", "198.51.100.11/24")
    assert [c["interface"] for c in result["candidates"]] == ["eth1", "eth0", "lo"]
    assert result["candidates"][1]["reason"] == "not reached: an earlier address was taken"
    assert result["log"] == "Using autodetected IPv4 address on interface eth1: 198.51.100.11/24"
    assert result["valid"] and result["error"] is None


def test_links_are_sorted_by_ifindex_whatever_the_list_order():
    snap = _snap((3, "eth1", ["198.51.100.11/24"]), (2, "eth0", ["192.0.2.11/24"]))
    assert ad.autodetect(snap)["interface"] == "eth1"


def test_addresses_of_a_link_in_dump_order_first_global_wins():
    snap = _snap((2, "eth0", ["169.254.3.3/16", "192.0.2.50/32", "192.0.2.11/24"]))
    result = ad.autodetect(snap)
    assert result["address"] == "192.0.2.50/32"  # a keepalived-style /32 VIP counts
    reasons = [c["reason"] for c in result["candidates"]]
    assert reasons == ["not global unicast (link-local)", "taken: first global unicast IPv4 address in walk order",
                       "not reached: an earlier address was taken"]


def test_down_interface_and_vip_interface_are_candidates():
    snap = _snap((2, "eth0", ["192.0.2.11/24"]), (3, "eth1", ["198.51.100.11/24"], False))
    assert ad.autodetect(snap)["interface"] == "eth1"
    vip = _snap((2, "eth0", ["192.0.2.11/24"]), (8, "vip0", ["192.0.2.100/32"]))
    assert _picked(ad.autodetect(vip)) == ("vip0", "192.0.2.100/32")


def test_go_is_global_unicast_semantics():
    for text in ("10.1.2.3", "172.17.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "2001:db8::1"):
        assert ad.is_global_unicast(ipaddress.ip_address(text)), text
    for text in ("0.0.0.0", "127.0.0.1", "169.254.1.1", "224.0.0.1", "255.255.255.255", "::", "::1", "fe80::1",
                 "ff02::1"):
        assert not ad.is_global_unicast(ipaddress.ip_address(text)), text


def test_no_addresses_and_wrong_family_are_explained():
    snap = _snap((2, "eth0", ["fe80::1/64", "2001:db8::11/64"]), (3, "bond0", []))
    result = ad.autodetect(snap)
    assert result["address"] is None
    assert result["error"] == "no valid IPv4 addresses found on the host interfaces"
    assert result["log"] == ("Unable to auto-detect an IPv4 address: no valid IPv4 addresses found on the host "
                             "interfaces")
    assert [(c["interface"], c["reason"]) for c in result["candidates"]] == [
        ("bond0", "no addresses"), ("eth0", "IPv6 address, looking for IPv4"),
        ("eth0", "IPv6 address, looking for IPv4")]


def test_no_interface_left_after_exclusions():
    result = ad.autodetect(_snap((1, "lo", ["127.0.0.1/8"]), (4, "docker0", ["172.17.0.1/16"])))
    assert result["error"] == "no valid host interfaces found"
    assert ad.autodetect({"links": [], "addresses": []})["error"] == "no valid host interfaces found"


def test_ipv6_first_found():
    snap = _snap((2, "eth0", ["192.0.2.11/24", "fe80::1/64", "fd00:10::11/64", "2001:db8::11/64"]))
    result = ad.autodetect(snap, "first-found", 6)
    assert _picked(result) == ("eth0", "fd00:10::11/64")  # ULA is global unicast for Go
    assert result["log"] == "Using autodetected IPv6 address on interface eth0: fd00:10::11/64"
    assert [c["reason"] for c in result["candidates"]][:2] == [
        "IPv4 address, looking for IPv6", "not global unicast (link-local)"]
    assert ad.autodetect(snap, "cidr=2001:db8::/32", 6)["address"] == "2001:db8::11/64"


# --- the version-dependent exclusion list ----------------------------------------------------

@pytest.mark.parametrize(("name", "excluded_324", "excluded_325"), [
    ("wlo1", "lo", None),                        # unanchored "lo" matched wireless NICs
    ("br-3f2a9c1d7e01", None, "^br-.*"),          # Docker user bridges were candidates up to v3.24
    ("podman0", None, "^podman.*"),
    ("mydocker0", "docker.*", None),
    ("kube-dummy-if", "dummy.*", None),
    ("vxlan.calico", "cali.*", "^vxlan\\.calico.*"),   # unanchored "cali.*" matched inside the name
    ("nodelocaldns", "lo", "^nodelocaldns.*"),
    ("bond0.lo", "lo", None),
    ("docker0", "docker.*", "^docker.*"),
    ("eth0", None, None),
])
def test_exclusion_list_by_version(name, excluded_324, excluded_325):
    snap = _snap((2, name, ["10.9.9.9/24"]))
    for version, pattern in (("3.24", excluded_324), ("v3.25.0", excluded_325), (None, excluded_325)):
        result = ad.autodetect(snap, calico_version=version)
        if pattern:
            assert result["address"] is None, (name, version)
            assert result["candidates"][0]["reason"] == f"excluded by {pattern}"
        else:
            assert result["address"] == "10.9.9.9/24", (name, version)


def test_cni_excluded_from_3_15_only():
    snap = _snap((2, "eth0", ["192.0.2.11/24"]), (5, "cni0", ["10.244.1.1/24"]))
    assert ad.autodetect(snap, calico_version="3.14")["interface"] == "cni0"
    assert ad.autodetect(snap, calico_version="3.15")["interface"] == "eth0"
    assert ad.exclusion_list("3.14") == ad.EXCLUDE_UNANCHORED_PRE_3_15
    assert ad.exclusion_list("3.24.5") == ad.EXCLUDE_UNANCHORED
    assert ad.exclusion_list("3.30") == ad.EXCLUDE_ANCHORED == ad.exclusion_list(None)


def test_unparsable_calico_version():
    with pytest.raises(ValueError, match="unparsable Calico version"):
        ad.exclusion_list("latest")


# --- interface= / skip-interface= ------------------------------------------------------------

VLANS = _snap((2, "eth0", ["192.0.2.11/24"]), (3, "eth1", ["198.51.100.11/24"]),
              (5, "eth0.100", ["203.0.113.11/24"]), (9, "veth0x1", ["100.64.0.1/30"]))


def test_interface_regex_is_unanchored():
    result = ad.autodetect(VLANS, "interface=eth0")
    assert _picked(result) == ("veth0x1", "100.64.0.1/30")  # veth0x1 and eth0.100 match too; newest wins
    assert result["log"] == "Using autodetected IPv4 address 100.64.0.1/30 on matching interface veth0x1"
    assert result["candidates"][2] == {"interface": "eth1", "index": 3, "address": None, "taken": False,
                                       "reason": "does not match interface regex [eth0]"}
    assert _picked(ad.autodetect(VLANS, "interface=^eth0$")) == ("eth0", "192.0.2.11/24")


def test_interface_ignores_exclusions_and_takes_a_list():
    assert ad.autodetect(BASIC, "interface=docker0")["interface"] == "docker0"
    assert ad.autodetect(VLANS, "interface=^eth1$ , ^eth0$")["interface"] == "eth1"
    # An empty list entry is the empty regex, which matches every name.
    assert ad.autodetect(BASIC, "interface=")["interface"] == "docker0"


def test_interface_no_match():
    result = ad.autodetect(BASIC, "interface=ib0")
    assert result["address"] is None and result["valid"]
    assert result["log"] == ("Unable to auto-detect an IPv4 address using interface regexes [ib0]: "
                             "no valid host interfaces found")


def test_skip_interface_adds_to_the_defaults_unanchored():
    snap = _snap((2, "eth0", ["192.0.2.11/24"]), (3, "eth10", ["198.51.100.11/24"]), (4, "docker0", ["172.17.0.1/16"]))
    result = ad.autodetect(snap, "skip-interface=eth1")
    assert _picked(result) == ("eth0", "192.0.2.11/24")
    assert [c["reason"] for c in result["candidates"][:2]] == ["excluded by ^docker.*", "excluded by eth1"]
    assert result["log"] == ("Using autodetected IPv4 address on interface eth0: 192.0.2.11/24 while skipping "
                             "matching interfaces")


def test_go_regex_syntax():
    snap = _snap((2, "ETH0", ["192.0.2.11/24"]), (3, "ens3", ["198.51.100.11/24"]))
    assert ad.autodetect(snap, "interface=(?i)eth0")["interface"] == "ETH0"
    assert ad.autodetect(snap, "interface=ens[[:digit:]]\\z")["interface"] == "ens3"
    assert ad.autodetect(snap, "interface=ens{1}3")["interface"] == "ens3"
    # Go keeps (?i) for the rest of the group, across `|`.
    assert ad.go_regex_to_python("x(?i)a|b") == "x(?i:a)|(?i:b)"
    assert ad.autodetect(snap, "interface=^x(?i)y|^ETH0$")["interface"] == "ETH0"
    assert ad.autodetect(snap, "interface=^x(?i)y|^eth0$")["interface"] == "ETH0"


# --- cidr= -----------------------------------------------------------------------------------

def test_cidr_ignores_exclusions_and_keeps_host_bits():
    result = ad.autodetect(BASIC, "cidr=172.16.0.0/12")
    assert _picked(result) == ("docker0", "172.17.0.1/16")
    assert result["log"] == ("Using autodetected IPv4 address 172.17.0.1/16 on interface docker0 matching cidrs "
                             "[172.16.0.0/12]")
    result = ad.autodetect(BASIC, "cidr=10.0.0.0/8 , 192.0.2.77/24")
    assert _picked(result) == ("eth0", "192.0.2.11/24")
    assert result["candidates"][0]["reason"] == "outside cidr [10.0.0.0/8 192.0.2.0/24]"


def test_cidr_no_match():
    result = ad.autodetect(BASIC, "cidr=10.0.0.0/8")
    assert result["address"] is None
    assert result["log"] == ("Unable to auto-detect an IPv4 address using interface cidr [10.0.0.0/8]: "
                             "no valid IPv4 addresses found on the host interfaces")


# --- can-reach= ------------------------------------------------------------------------------

def test_can_reach_uses_the_route_lookup_source_and_all_interfaces():
    result = ad.autodetect(BASIC, "can-reach=172.17.0.2", route_source={"172.17.0.2": "172.17.0.1"})
    assert _picked(result) == ("docker0", "172.17.0.1/16")  # no exclusion list
    assert result["log"] == "Using autodetected IPv4 address 172.17.0.1/16, detected by connecting to 172.17.0.2"
    calls = []

    def lookup(dest, version):
        calls.append((dest, version))
        return "192.0.2.11"

    assert ad.autodetect(BASIC, "can-reach=8.8.8.8", route_source=lookup)["address"] == "192.0.2.11/24"
    assert calls == [("8.8.8.8", 4)]


def test_can_reach_failures():
    result = ad.autodetect(BASIC, "can-reach=8.8.8.8", route_source={"8.8.8.8": "203.0.113.9"})
    assert result["address"] is None
    assert result["error"] == ("autodetected IPv4 address does not match any addresses found on local interfaces: "
                               "203.0.113.9")
    assert "no route-lookup source supplied for 8.8.8.8" in ad.autodetect(BASIC, "can-reach=8.8.8.8")["error"]

    def unreachable(dest, version):
        raise OSError(101, "Network is unreachable")

    result = ad.autodetect(BASIC, "can-reach=203.0.113.1", route_source=unreachable)
    assert result["log"] == ("Unable to auto-detect IPv4 address by connecting to 203.0.113.1: dial udp4 "
                             "203.0.113.1: [Errno 101] Network is unreachable")


# --- kubernetes-internal-ip ------------------------------------------------------------------

def test_kubernetes_internal_ip_takes_the_prefix_from_the_interface():
    result = ad.autodetect(BASIC, "kubernetes-internal-ip", internal_ips=["2001:db8::5", "192.0.2.11", "10.0.0.1"])
    assert _picked(result) == ("eth0", "192.0.2.11/24")
    assert result["log"] == 'Including CIDR information from host interface. CIDR="192.0.2.11/24"'
    # calico-node only checks the prefix of the method string.
    assert ad.autodetect(BASIC, "kubernetes-internal-ipv4", internal_ips="192.0.2.11")["address"] == "192.0.2.11/24"


def test_kubernetes_internal_ip_failures():
    result = ad.autodetect(BASIC, "kubernetes-internal-ip", internal_ips=["203.0.113.5"])
    assert result["address"] is None and result["valid"]
    assert result["error"] == "Unable to parse CIDR 203.0.113.5 : invalid CIDR address: 203.0.113.5"
    assert ad.autodetect(BASIC, "kubernetes-internal-ip")["error"] == (
        "Cannot use method 'kubernetes-internal-ip' when not running on a Kubernetes cluster")
    assert ad.autodetect(BASIC, "kubernetes-internal-ip", internal_ips=[])["error"] == (
        "Unable to parse CIDR  : invalid CIDR address: ")


def test_kubernetes_internal_ip_by_version():
    old = ad.autodetect(BASIC, "kubernetes-internal-ip", calico_version="3.23", internal_ips=["192.0.2.11"])
    assert old["address"] == "192.0.2.0/24"  # v3.22/v3.23 returned the masked network
    assert ad.autodetect(BASIC, "kubernetes-internal-ip", calico_version="3.21", internal_ips=["192.0.2.11"])[
        "error"] == "Invalid IP autodetection method: kubernetes-internal-ip"


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "error"), [
    ("", None), ("first-found", None), ("interface=eth0", None), ("interface=", None),
    ("skip-interface=^br-.*,^virbr.*", None), ("cidr=10.0.0.0/8,192.168.0.0/16", None),
    ("can-reach=8.8.8.8", None), ("can-reach=www.example.com", None), ("kubernetes-internal-ip", None),
    ("eth1", "Invalid IP autodetection method: eth1"),
    ("First-Found", "Invalid IP autodetection method: First-Found"),
    (" first-found", "Invalid IP autodetection method:  first-found"),
    ("interface eth0", "Invalid IP autodetection method: interface eth0"),
    ("cidr=10.0.0.0", 'Invalid CIDR "10.0.0.0" for IP autodetection method: cidr=10.0.0.0'),
    ("cidr=10.0.0.0/33", 'Invalid CIDR "10.0.0.0/33" for IP autodetection method: cidr=10.0.0.0/33'),
    ("cidr=", 'Invalid CIDR "" for IP autodetection method: cidr='),
    ("cidr=10.0.0.0/255.0.0.0", 'Invalid CIDR "10.0.0.0/255.0.0.0" for IP autodetection method: '
                                'cidr=10.0.0.0/255.0.0.0'),
    ("cidr=fe80::/10%eth0", 'Invalid CIDR "fe80::/10%eth0" for IP autodetection method: cidr=fe80::/10%eth0'),
    ("interface=(eth0", "error parsing regexp: missing closing ): `((eth0)`"),
    ("interface=eth(?=0)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
    ("skip-interface=(a)\\1", "error parsing regexp: invalid escape sequence: `\\1` (RE2 has no back-references)"),
    ("interface=eth0*+", "error parsing regexp: invalid nested repetition operator: `*+`"),
    ("interface=e{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
])
def test_validate_method(method, error):
    assert ad.validate_method(method) == error
    result = ad.autodetect(BASIC, method, route_source={"8.8.8.8": "192.0.2.11"}, internal_ips=["192.0.2.11"])
    assert result["valid"] is (error is None)
    if error:
        assert result["error"] == error and result["address"] is None and result["candidates"] == []


def test_methods_newer_than_the_version_are_invalid():
    assert ad.validate_method("cidr=10.0.0.0/8", "3.15") == "Invalid IP autodetection method: cidr=10.0.0.0/8"
    assert ad.validate_method("cidr=10.0.0.0/8", "3.16") is None
    assert ad.validate_method(None) is None


def test_bad_regex_log_names_the_method():
    result = ad.autodetect(BASIC, "interface=(eth0")
    assert result["log"] == ("Unable to auto-detect an IPv4 address using interface regexes [(eth0]: "
                             "error parsing regexp: missing closing ): `((eth0)`")


def test_operator_form():
    assert ad.operator_form("interface=^ens18$") == {"interface": "^ens18$"}
    assert ad.operator_form("skip-interface=^br-.*") == {"skipInterface": "^br-.*"}
    assert ad.operator_form("cidr=10.0.0.0/8, 192.0.2.0/24") == {"cidrs": ["10.0.0.0/8", "192.0.2.0/24"]}
    assert ad.operator_form("can-reach=8.8.8.8") == {"canReach": "8.8.8.8"}
    assert ad.operator_form("kubernetes-internal-ip") == {"kubernetes": "NodeInternalIP"}
    assert ad.operator_form("") == {"firstFound": True}
    with pytest.raises(ValueError):
        ad.operator_form("eth0")


# --- the seeds -------------------------------------------------------------------------------

def test_seed001_case2_nodes_register_what_the_seed_shows():
    """node4 registers 192.168.3.113 (eth1, newer than eth0); node2, without eth1, 192.168.0.111."""
    for version in ("3.15", "3.30"):
        node4 = ad.autodetect(seeds.node4(), calico_version=version)
        assert _picked(node4) == ("eth1", "192.168.3.113/24")
        assert [c["reason"] for c in node4["candidates"][:8]] == (
            ["excluded by cali.*" if version == "3.15" else "excluded by ^cali.*"] * 6
            + ["excluded by tunl.*" if version == "3.15" else "excluded by ^tunl.*",
               "excluded by docker.*" if version == "3.15" else "excluded by ^docker.*"])
        node2 = ad.autodetect(iptext.snapshot(seeds.NODE2_ADDR), calico_version=version)
        assert _picked(node2) == ("eth0", "192.168.0.111/24")


def test_seed002_docker_bridges():
    snap = seeds.seed002()
    old = ad.autodetect(snap, calico_version="3.24")
    # docker0 is excluded by every version; the user-defined Docker bridge is what old versions take.
    assert _picked(old) == ("br-3f2a9c1d7e01", "172.18.0.1/16")
    assert {c["interface"]: c["reason"] for c in old["candidates"]}["docker0"] == "excluded by docker.*"
    new = ad.autodetect(snap, calico_version="3.25")
    assert _picked(new) == ("eth0", "10.0.0.21/24")
    assert {c["interface"]: c["reason"] for c in new["candidates"]}["br-3f2a9c1d7e01"] == "excluded by ^br-.*"
    # The seed's fix, interface=eth.*, works here - and matches veth9a8b7c6 too (no address, skipped).
    fixed = ad.autodetect(snap, "interface=eth.*", calico_version="3.24")
    assert _picked(fixed) == ("eth0", "10.0.0.21/24")
    assert {c["interface"]: c["reason"] for c in fixed["candidates"]}["veth9a8b7c6"] == "no addresses"
    # docker0 is picked only by methods that ignore the exclusion list.
    assert ad.autodetect(snap, "cidr=172.16.0.0/12")["interface"] == "br-3f2a9c1d7e01"
    assert ad.autodetect(snap, "cidr=172.17.0.0/16")["interface"] == "docker0"


def test_seed004_added_nic_flips_first_found():
    before = ad.autodetect(seeds.seed004("k8s-w2", extra_nic=False))
    after = ad.autodetect(seeds.seed004("k8s-w2"))
    assert _picked(before) == ("ens18", "192.168.50.13/24")
    assert _picked(after) == ("ens19", "10.20.30.13/24")
    assert after["candidates"][0]["reason"] == "taken: first global unicast IPv4 address in walk order"
    for method in ("interface=^ens18$", "cidr=192.168.50.0/24"):
        assert ad.autodetect(seeds.seed004("k8s-w2"), method)["address"] == "192.168.50.13/24"
    k8s = ad.autodetect(seeds.seed004("k8s-w2"), "kubernetes-internal-ip", internal_ips=["192.168.50.13"])
    assert k8s["address"] == "192.168.50.13/24"


# --- recommend_method ------------------------------------------------------------------------

def _seed004_fleet(internal_ips=False):
    return [{"host": host, "snapshot": seeds.seed004(host), "intended": f"192.168.50.{octet}",
             **({"internal_ips": [f"192.168.50.{octet}"]} if internal_ips else {})}
            for host, octet in seeds.SEED004_NODES.items()]


def test_recommend_prefers_kubernetes_internal_ip():
    rec = ad.recommend_method(_seed004_fleet(internal_ips=True))
    assert rec["method"] == "kubernetes-internal-ip"
    assert [(e["host"], e["address"], e["ok"]) for e in rec["evidence"]] == [
        ("k8s-m1", "192.168.50.11/24", True), ("k8s-w1", "192.168.50.12/24", True),
        ("k8s-w2", "192.168.50.13/24", True)]


def test_recommend_cidr_of_the_intended_subnets():
    rec = ad.recommend_method(_seed004_fleet())
    assert rec["method"] == "cidr=192.168.50.0/24"
    assert rec["tried"] == [{"method": "cidr=192.168.50.0/24", "ok": True, "failed_hosts": []}]


def test_recommend_interface_when_a_vip_shares_the_subnet():
    fleet = _seed004_fleet()
    w1 = fleet[1]["snapshot"]
    w1["links"].append({"index": 12, "name": "kube-vip0", "kind": "dummy", "up": True, "operstate": "UNKNOWN",
                        "mtu": 1500})
    w1["addresses"].append({"index": 12, "family": 4, "address": "192.168.50.200", "prefixlen": 32,
                            "scope": "global", "flags": [], "label": "kube-vip0"})
    rec = ad.recommend_method(fleet)
    assert rec["method"] == "interface=^ens18$"
    assert rec["tried"][0] == {"method": "cidr=192.168.50.0/24", "ok": False, "failed_hosts": ["k8s-w1"]}


def test_recommend_skip_interface_when_names_differ():
    nodes = [
        {"host": "a", "intended": "192.0.2.11",
         "snapshot": _snap((2, "eth0", ["192.0.2.11/24"]), (3, "vip0", ["192.0.2.250/32"]))},
        {"host": "b", "intended": "198.51.100.12",
         "snapshot": _snap((2, "ens3", ["198.51.100.12/24"]), (3, "wg0", ["10.99.0.2/24"]))},
    ]
    rec = ad.recommend_method(nodes)
    assert rec["method"] == "skip-interface=^vip0$,^wg0$"
    # cidr= fails on a (the VIP is inside the subnet and newer); no common name for interface=.
    assert rec["tried"][0] == {"method": "cidr=192.0.2.0/24,198.51.100.0/24", "ok": False, "failed_hosts": ["a"]}
    assert [e["address"] for e in rec["evidence"]] == ["192.0.2.11/24", "198.51.100.12/24"]


def test_recommend_can_reach_then_none():
    nodes = [
        {"host": "a", "intended": "192.0.2.11", "route_source": {"192.0.2.1": "192.0.2.11"},
         "snapshot": _snap((2, "eth0", ["192.0.2.11/24"]), (3, "eth1", ["192.0.2.12/24"]))},
        {"host": "b", "intended": "192.0.2.22", "route_source": {"192.0.2.1": "192.0.2.22"},
         "snapshot": _snap((2, "eth1", ["192.0.2.22/24"]), (3, "eth0", ["192.0.2.21/24"]))},
    ]
    rec = ad.recommend_method(nodes, peers=["192.0.2.1"])
    assert rec["method"] == "can-reach=192.0.2.1"
    rec = ad.recommend_method(nodes)
    assert rec["method"] is None and "no single method" in rec["reason"]
    assert [t["ok"] for t in rec["tried"]] == [False, False]


def test_recommend_intended_not_local():
    rec = ad.recommend_method([{"host": "a", "intended": "203.0.113.1", "snapshot": BASIC}])
    assert rec["method"] is None and rec["reason"].startswith("the intended address is on no interface of a")
    assert ad.recommend_method([])["method"] is None


def test_autodetection_fact_and_fact_links_round_trip():
    links = [{**link, "addresses": [{k: v for k, v in a.items() if k != "index"}
                                    for a in BASIC["addresses"] if a["index"] == link["index"]]}
             for link in BASIC["links"]]
    assert ad.snapshot_from_fact_links(links) == BASIC
    part = ad.autodetection_fact(BASIC, "interface=eth0", calico_version="3.28", also=["cidr=172.17.0.0/16"],
                                 method6_in_use="first-found")
    assert part["method_in_use"] == "interface=eth0" and part["calico_version"] == "3.28"
    assert [(r["method"], r["version"], r["address"]) for r in part["results"]] == [
        ("interface=eth0", 4, "192.0.2.11/24"), ("first-found", 6, None), ("cidr=172.17.0.0/16", 4, "172.17.0.1/16")]
