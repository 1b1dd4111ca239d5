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


def test_links_are_walked_in_reverse_kernel_dump_order_not_by_ifindex():
    """interfaces.go (every tag, e.g. v3.32.0): `for idx := len(netIfaces) - 1; idx >= 0; idx--` over
    net.Interfaces(), i.e. Go's RTM_GETLINK dump in the kernel's order. Older kernels dump links by
    hash bucket (ifindex % 256, newest first in a bucket), so ifindex 257 comes before 2: the
    snapshot keeps that order and the replay walks it backwards, whatever the ifindex."""
    snap = _snap((256, "ens256", ["198.51.100.56/24"]), (257, "ens257", ["198.51.100.57/24"]),
                 (1, "lo", ["127.0.0.1/8"]), (2, "eth0", ["192.0.2.11/24"]))
    result = ad.autodetect(snap)
    assert _picked(result) == ("eth0", "192.0.2.11/24")
    assert [c["interface"] for c in result["candidates"]] == ["eth0", "lo", "ens257", "ens256"]
    # The same links dumped in ifindex order (current kernels): the newest link wins.
    by_index = {"links": sorted(snap["links"], key=lambda link: link["index"]), "addresses": snap["addresses"]}
    assert ad.autodetect(by_index)["interface"] == "ens257"


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
    assert ad.exclusion_list("3.24.2") == ad.EXCLUDE_UNANCHORED
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
    rx = ad.compile_go_regex_list(["x(?i)a|b"])
    assert rx.search("xA") and rx.search("B") and not rx.search("XA")
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
                             "203.0.113.1:80: connect: network is unreachable")


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
    ("skip-interface=(a)\\1", "error parsing regexp: invalid escape sequence: `\\1`"),
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


# --- issue 13: exactness against Calico's source -----------------------------------------------
# CAL = github.com/projectcalico/calico, files under node/pkg/lifecycle/startup/autodetection/
# unless named otherwise; NL = github.com/vishvananda/netlink v1.3.1 (calico v3.32.0's go.mod).

def _with(snapshot, index, name, address, prefixlen, **extra):
    """snapshot plus one link carrying one address (extra keys such as peer go on the address)."""
    family = 6 if ":" in address else 4
    return {"links": [*snapshot["links"], {"index": index, "name": name, "kind": None, "up": True,
                                           "operstate": "UP", "mtu": 1500}],
            "addresses": [*snapshot["addresses"], {"index": index, "family": family, "address": address,
                                                   "prefixlen": prefixlen, "scope": "global", "flags": [],
                                                   "label": name, **extra}]}


ETH0 = _snap((1, "lo", ["127.0.0.1/8", "::1/128"]), (2, "eth0", ["192.0.2.11/24", "2001:db8::11/64"]))


@pytest.mark.parametrize(("calico", "v4", "v6"), [
    ("3.31.7", "198.51.100.7/24", "2001:db8:7::7/64"),   # CAL@v3.31.7 interfaces.go: i.Addrs() (Go net: IFA_LOCAL/len)
    ("3.32.0", "198.51.100.7/32", "2001:db8:7::7/128"),  # CAL@v3.32.0 addr_linux.go: netlink.AddrList; NL parseAddr
    ("v3.32.1", "198.51.100.7/32", "2001:db8:7::7/128"),
])
def test_an_address_with_a_peer_is_a_host_route_from_v3_32(calico, v4, v6):
    """`ip addr add 198.51.100.7 peer 198.51.100.1/24`: NL's parseAddr keeps IFA_LOCAL with a full
    mask when IFA_ADDRESS (the peer) differs (IPv4) or IFA_LOCAL is present at all (IPv6)."""
    snap = _with(ETH0, 3, "ptp0", "198.51.100.7", 24, peer="198.51.100.1")
    snap = _with(snap, 4, "ptp1", "2001:db8:7::7", 64, peer="2001:db8:7::1")
    assert _picked(ad.autodetect(snap, calico_version=calico)) == ("ptp0", v4)
    assert _picked(ad.autodetect(snap, "first-found", 6, calico_version=calico)) == ("ptp1", v6)
    # can-reach and kubernetes-internal-ip return the interface's CIDR as read the same way.
    reach = ad.autodetect(snap, "can-reach=198.51.100.1", route_source={"198.51.100.1": "198.51.100.7"},
                          calico_version=calico)
    assert reach["address"] == v4
    assert ad.autodetect(snap, "kubernetes-internal-ip", internal_ips=["198.51.100.7"],
                         calico_version=calico)["address"] == v4


@pytest.mark.parametrize(("prefixlen", "cidr"), [(128, "192.0.2.5/32"), (120, "192.0.2.5/24"), (64, "192.0.2.5/0")])
def test_ipv4_mapped_address_is_an_ipv4_candidate(prefixlen, cidr):
    """CAL@v3.32.0 interfaces.go convertInterface: addr.String(), then cnet.ParseCIDR and
    ip.Version(). Go's IPNet.String prints an IPv4-mapped IP as IPv4 with the mask's last 32 bits
    (networkNumberAndMask), so ::ffff:192.0.2.5/128 is "192.0.2.5/32" (checked with Go), an IPv4
    candidate; it is no IPv6 candidate at all."""
    snap = _with(ETH0, 3, "map0", "::ffff:192.0.2.5", prefixlen)
    result = ad.autodetect(snap)
    assert _picked(result) == ("map0", cidr)
    assert "Go reads it as IPv4" in result["candidates"][0]["reason"]
    v6 = ad.autodetect(snap, "first-found", 6)
    assert _picked(v6) == ("eth0", "2001:db8::11/64")
    assert v6["candidates"][0]["reason"] == (f"IPv4 address, looking for IPv6 (IPv4-mapped ::ffff:192.0.2.5/"
                                             f"{prefixlen}: Go reads it as IPv4)")


def test_kubernetes_internal_ip_mapped():
    """CAL@v3.32.0 autodetection_methods.go autoDetectUsingK8sInternalIP: utils.IsIPv4String
    (node/pkg/lifecycle/utils/utils.go: ParseIP(..).To4() != nil) takes ::ffff:a.b.c.d as IPv4;
    GetLocalCIDR compares with IP.Equal, which treats the two forms alike."""
    result = ad.autodetect(ETH0, "kubernetes-internal-ip", internal_ips=["::ffff:192.0.2.11"])
    assert _picked(result) == ("eth0", "192.0.2.11/24")
    assert ad.autodetect(ETH0, "kubernetes-internal-ip", 6, internal_ips=["::ffff:192.0.2.11"])["error"] == (
        "Unable to parse CIDR  : invalid CIDR address: ")
    missing = ad.autodetect(ETH0, "kubernetes-internal-ip", internal_ips=["::ffff:203.0.113.9", "192.0.2.11"])
    assert missing["error"] == ("Unable to parse CIDR ::ffff:203.0.113.9 : invalid CIDR address: "
                                "::ffff:203.0.113.9")  # the first InternalIP of the family decides


def test_cidr_given_as_an_ipv4_mapped_network():
    """CAL@v3.32.0 filtered.go matchCIDRs -> IPNet.Contains: the network ::ffff:192.0.2.0/120 has
    an IPv4 network number and its mask's last 4 bytes (/24), so it contains 192.0.2.11; the log
    prints it as Go does, 192.0.2.0/24 (checked with Go)."""
    result = ad.autodetect(ETH0, "cidr=::ffff:192.0.2.0/120")
    assert _picked(result) == ("eth0", "192.0.2.11/24")
    assert result["log"] == ("Using autodetected IPv4 address 192.0.2.11/24 on interface eth0 matching cidrs "
                             "[192.0.2.0/24]")
    assert ad.autodetect(ETH0, "cidr=::ffff:0:0/96")["address"] == "192.0.2.11/24"  # all of IPv4
    assert ad.autodetect(ETH0, "cidr=::ffff:0:0/96", 6)["address"] is None
    assert ad.autodetect(ETH0, "cidr=::ffff:192.0.2.0/64")["address"] is None  # masked: ::/64, IPv6
    assert ad.validate_method("cidr=192.0.2.011/24") == (
        'Invalid CIDR "192.0.2.011/24" for IP autodetection method: cidr=192.0.2.011/24')  # Go: no leading 0


def test_unicode_digit_and_go_list_split():
    """Go's \\d is ASCII; the method list is split with Go's `\\s*,\\s*`, whose \\s has no \\v
    (regexp.MustCompile(...).Split in CAL@v3.32.0 autodetection_methods.go; split checked with Go)."""
    snap = _with(ETH0, 3, "eth\u0663", "198.51.100.3", 24)
    assert ad.autodetect(snap, "interface=^eth\\d$")["interface"] == "eth0"
    assert ad.autodetect(snap, "interface=^eth.$")["interface"] == "eth\u0663"
    assert ad.split_method_list("eth0 ,\x0b eth1") == ["eth0", "\x0b eth1"]
    assert ad.split_method_list("eth0\u00a0, eth1 ,") == ["eth0\u00a0", "eth1", ""]
    assert ad.autodetect(snap, "interface=^eth9$ ,\x0b^eth0$")["address"] is None
    assert ad.autodetect(snap, "interface=^eth9$ ,  ^eth0$")["address"] == "192.0.2.11/24"


def test_go_regex_features_are_valid_methods():
    snap = _with(ETH0, 3, "ens3", "198.51.100.3", 24)
    for method in ("interface=^ens[[:digit:]]$", "interface=^ens[[:^alpha:]]$", "interface=^\\pL+\\d$",
                   "interface=^\\x{65}ns3$", "interface=^\\145ns3$", "interface=(?i)^ENS3$", "interface=(?U)^ens\\d+$",
                   "interface=(?s)^ens.$", "interface=(?m)^ens3$", "interface=^ens\\p{Nd}$"):
        assert ad.validate_method(method) is None, method
        assert ad.autodetect(snap, method)["interface"] == "ens3", method
    assert ad.autodetect(snap, "interface=^\\p{Greek}")["address"] is None
    for method, error in (("interface=(eth)\\1", "invalid escape sequence: `\\1`"),
                          ("interface=eth(?=0)", "invalid or unsupported Perl syntax: `(?=`"),
                          ("interface=(?<!x)eth", "invalid or unsupported Perl syntax: `(?<`"),
                          ("skip-interface=eth\\Z", "invalid escape sequence: `\\Z`")):
        assert ad.validate_method(method, "3.24.0") == f"error parsing regexp: {error}", method


def test_skip_interface_regex_errors_quote_the_whole_joined_list():
    """GetInterfaces compiles DEFAULT_INTERFACES_TO_EXCLUDE and the given regexes as one regex
    (CAL@v3.32.0 autodetection_methods.go autoDetectCIDRBySkipInterface, interfaces.go)."""
    error = ad.validate_method("skip-interface=(eth0", "3.30.0")
    assert error.startswith("error parsing regexp: missing closing ): `(^docker.*)|(^cbr.*)|")
    assert error.endswith("|(^nodelocaldns.*)|((eth0)`")


def test_can_reach_a_hostname():
    """Calico's docs show can-reach=www.google.com: CAL@v3.32.0 reachaddr.go ReachDestination does
    net.Dial("udp4", JoinHostPort(dest, "80")) (v3.31: "[dest]:80"), so the node's resolver
    answers and the kernel picks the source. The facts module resolves it on the node."""
    record = {"resolved": "192.0.2.1", "addresses": ["192.0.2.1", "192.0.2.2"], "source": "192.0.2.11",
              "error": None}
    result = ad.autodetect(ETH0, "can-reach=gw.example.test", route_source={"gw.example.test": {4: record}})
    assert _picked(result) == ("eth0", "192.0.2.11/24")
    assert result["reach"] == {"dest": "gw.example.test", **record}
    assert result["log"] == ("Using autodetected IPv4 address 192.0.2.11/24, detected by connecting to "
                             "gw.example.test")
    unresolved = ad.autodetect(ETH0, "can-reach=gw.example.test", route_source={
        "gw.example.test": {4: {"addresses": [], "error": "dial udp4: lookup gw.example.test: no such host"}}})
    assert unresolved["log"] == ("Unable to auto-detect IPv4 address by connecting to gw.example.test: dial udp4: "
                                 "lookup gw.example.test: no such host")
    assert "no resolution supplied for gw.example.test" in ad.autodetect(ETH0, "can-reach=gw.example.test")["error"]


@pytest.mark.parametrize(("dest", "version", "expected"), [
    ("192.0.2.1", 4, ("address", "192.0.2.1")),
    ("::ffff:192.0.2.1", 4, ("address", "192.0.2.1")),  # Go's ipv4only filter: IP.To4() != nil
    ("::ffff:192.0.2.1", 6, ("error", "dial udp6: address ::ffff:192.0.2.1: no suitable address found")),
    ("192.0.2.1", 6, ("error", "dial udp6: address 192.0.2.1: no suitable address found")),
    ("2001:db8::1", 6, ("address", "2001:db8::1")),
    ("www.example.com", 6, ("hostname", "www.example.com")),
    ("", 4, ("address", "0.0.0.0")),                      # Dial("udp4", ":80") dials this host
])
def test_reach_target(dest, version, expected):
    assert ad.reach_target(dest, version) == expected


def test_can_reach_ipv6():
    snap = _with(ETH0, 3, "eth1", "2001:db8:1::11", 64)
    result = ad.autodetect(snap, "can-reach=2001:db8:1::1", 6, route_source={"2001:db8:1::1": "2001:db8:1::11"})
    assert _picked(result) == ("eth1", "2001:db8:1::11/64")
    assert ad.autodetect(snap, "can-reach=192.0.2.1", 6)["error"] == (
        "dial udp6: address 192.0.2.1: no suitable address found")


@pytest.mark.parametrize(("calico", "expected"), [
    # CAL autodetection_linux.go DEFAULT_INTERFACES_TO_EXCLUDE at each tag
    ("3.22.5", ad.EXCLUDE_UNANCHORED), ("3.23.3", ad.EXCLUDE_UNANCHORED),
    ("3.23.4", ad.EXCLUDE_ANCHORED_V3_23_4), ("v3.23.5", ad.EXCLUDE_ANCHORED_V3_23_5),
    ("3.24.0", ad.EXCLUDE_UNANCHORED), ("3.24.2", ad.EXCLUDE_UNANCHORED),
    ("3.24.3", ad.EXCLUDE_ANCHORED_V3_23_4), ("3.24.4", ad.EXCLUDE_ANCHORED_V3_23_5),
    ("3.24.5", ad.EXCLUDE_ANCHORED_V3_23_5), ("v3.24.5", ad.EXCLUDE_ANCHORED_V3_23_5),
    ("3.24.6", ad.EXCLUDE_ANCHORED_V3_24_6), ("3.25.0", ad.EXCLUDE_ANCHORED), ("3.32.1", ad.EXCLUDE_ANCHORED),
])
def test_exclusion_list_by_patch_release(calico, expected):
    assert ad.exclusion_list(calico) == expected


@pytest.mark.parametrize(("name", "calico", "excluded_by"), [
    ("wlo1", "3.23.3", "lo"), ("wlo1", "3.23.4", None),                       # unanchored "lo" until the backport
    ("wlo1", "3.24.2", "lo"), ("wlo1", "3.24.3", None),
    ("vxlan.calico", "3.23.4", None), ("vxlan.calico", "3.23.5", "^vxlan\\.calico.*"),
    ("wg-v6.cali", "3.24.3", None), ("wg-v6.cali", "3.24.4", "^wg-v6\\.cali.*"),
    ("nodelocaldns", "3.24.5", None), ("nodelocaldns", "3.24.6", "^nodelocaldns.*"),
    ("nodelocaldns", "3.23.5", None),                                          # never backported to v3.23
    ("br-3f2a9c1d7e01", "3.24.6", None), ("br-3f2a9c1d7e01", "3.25.0", "^br-.*"),
])
def test_exclusion_boundaries(name, calico, excluded_by):
    snap = _snap((2, "eth0", ["192.0.2.11/24"]), (3, name, ["198.51.100.3/24"]))
    result = ad.autodetect(snap, calico_version=calico)
    if excluded_by:
        assert result["interface"] == "eth0"
        assert result["candidates"][0]["reason"] == f"excluded by {excluded_by}"
    else:
        assert result["interface"] == name


@pytest.mark.parametrize(("calico", "address"), [
    # CAL autodetection_methods.go: "Return unmasked CIDR ..." (941391d4d8 in v3.22.4, 615863a2f4 in v3.23.2)
    ("3.22.0", "192.0.2.0/24"), ("3.22.3", "192.0.2.0/24"), ("3.22.4", "192.0.2.11/24"),
    ("3.23.1", "192.0.2.0/24"), ("v3.23.2", "192.0.2.11/24"), ("3.24.0", "192.0.2.11/24"),
])
def test_kubernetes_internal_ip_unmasked_by_patch_release(calico, address):
    result = ad.autodetect(ETH0, "kubernetes-internal-ip", internal_ips=["192.0.2.11"], calico_version=calico)
    assert result["address"] == address
    assert result["log"] == 'Including CIDR information from host interface. CIDR="192.0.2.11/24"'


def test_calico_release_parsing():
    assert ad.calico_release("3.24.5") == ad.calico_release("v3.24.5") == (3, 24, 5)
    assert ad.calico_release("3.24") == (3, 24, 0)
    assert ad.calico_release("v3.30.0-0.dev") == (3, 30, 0)
    assert ad.parse_calico_version("v3.24.5") == (3, 24)
    assert ad.go_release("3.26.5") == (1, 22) and ad.go_release("3.27.4") == (1, 21)
    assert ad.go_release("3.31.5") == (1, 25) and ad.go_release("3.22.0") == (1, 17)


def test_ipv6_first_found_exactness():
    """IP6_AUTODETECTION_METHOD goes through the same AutoDetectCIDR with version 6."""
    snap = _snap((2, "eth0", ["192.0.2.11/24", "fe80::11/64", "2001:db8::11/64"]),
                 (3, "docker0", ["2001:db8:d0::1/64"]), (4, "eth\u0663", ["2001:db8:3::3/64"]))
    assert _picked(ad.autodetect(snap, "first-found", 6)) == ("eth\u0663", "2001:db8:3::3/64")
    assert _picked(ad.autodetect(snap, "interface=^eth\\d$", 6)) == ("eth0", "2001:db8::11/64")
    assert _picked(ad.autodetect(snap, "cidr=2001:db8:d0::/48", 6)) == ("docker0", "2001:db8:d0::1/64")
    assert _picked(ad.autodetect(snap, "skip-interface=^eth\\D$", 6)) == ("eth0", "2001:db8::11/64")
    assert ad.autodetect(snap, "skip-interface=^eth.$", 6)["error"] == "no valid host interfaces found"
    k8s = ad.autodetect(snap, "kubernetes-internal-ip", 6, internal_ips=["192.0.2.11", "2001:db8::11"])
    assert _picked(k8s) == ("eth0", "2001:db8::11/64")
