"""The autodetection replay on interfaces built by hand (issue 13), in a network namespace this
module creates and deletes: an address with a peer, an IPv4-mapped IPv6 address, a name with a
Unicode digit, a DOWN NIC, two addresses on one NIC, docker0 added later, and a hostname for
can-reach in the namespace's /etc/hosts. The replay runs inside the namespace on a real netlink
snapshot, the way calico_node_facts runs it on a node.

Each expected pick is derived from Calico's Go code at the tag named (CAL =
github.com/projectcalico/calico, node/pkg/lifecycle/startup/autodetection/): GetInterfaces walks
net.Interfaces() backwards (interfaces.go), the first IsGlobalUnicast address of the family wins
(filtered.go), addresses come from Go's net up to v3.31 and from netlink.AddrList from v3.32
(addr_linux.go@v3.32.0: an address with a peer is IFA_LOCAL/32), Go prints ::ffff:a.b.c.d/128 as
a.b.c.d/32 (IPv4), regexes are Go's RE2 (\\d is ASCII), can-reach dials dest:80 over UDP
(reachaddr.go) and kubernetes-internal-ip takes the first InternalIP of the family
(autodetection_methods.go, utils.IsIPv4String). Needs root and iproute2; it fails, not skips,
without them (a skipped lab test is not a passed one).
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[2] / ".collections"
UDIGIT = "eth\u0663"  # eth + ARABIC-INDIC DIGIT THREE

# (ip arguments) in order; each NIC is a veth whose peer lives in the peer namespace.
SETUP = [
    ("link", "set", "lo", "up"),
    ("nic", "eth0"), ("addr", "add", "192.0.2.11/24", "dev", "eth0"), ("addr", "add", "192.0.2.12/24", "dev", "eth0"),
    ("addr", "add", "2001:db8::11/64", "dev", "eth0", "nodad"),
    ("nic", "nic1"), ("addr", "add", "198.18.1.11/24", "dev", "nic1"),
    ("addr", "add", "2001:db8:1::11/64", "dev", "nic1", "nodad"),
    ("nic", UDIGIT), ("addr", "add", "198.18.3.3/24", "dev", UDIGIT),
    ("nic", "ptp0"), ("addr", "add", "198.51.100.7", "peer", "198.51.100.1/24", "dev", "ptp0"),
    ("addr", "add", "2001:db8:7::7", "peer", "2001:db8:7::1/64", "dev", "ptp0", "nodad"),
    ("nic", "map0"), ("addr", "add", "::ffff:198.18.5.5/128", "dev", "map0", "nodad"),
    ("route", "add", "default", "via", "192.0.2.1", "dev", "eth0"),
    ("-6", "route", "add", "default", "via", "2001:db8::1", "dev", "eth0"),
    ("link", "set", "nic1", "down"),  # the DOWN NIC keeps its addresses: calico-node has no link-state filter
]
DOCKER0 = [("link", "add", "docker0", "type", "bridge"), ("addr", "add", "203.0.113.1/24", "dev", "docker0"),
           ("link", "set", "docker0", "up")]
HOSTS = "192.0.2.1 gw.adx.test\n2001:db8::1 gw.adx.test\n198.51.100.1 far.adx.test\n"

REPLAY = """
import json, sys
from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect, _netlink
from ansible_collections.netdoctor.calico.plugins.modules import calico_node_facts
cases = json.loads(sys.argv[1])
with _netlink.Netlink() as nl:
    snap = nl.snapshot()
    sources = calico_node_facts._can_reach_sources(nl, [(c["method"], c["version"]) for c in cases])
out = []
for c in cases:
    r = _autodetect.autodetect(snap, c["method"], c["version"], calico_version=c["calico"], route_source=sources,
                               internal_ips=c.get("internal_ips"))
    out.append({k: r.get(k) for k in ("interface", "address", "error", "reach", "candidates")})
print(json.dumps({"links": [link["name"] for link in snap["links"]], "results": out}))
"""

# (method, IP version, Calico release, InternalIPs) -> (interface, address) calico-node picks.
BEFORE = [
    # first-found: the newest link with a global address of the family; map0's ::ffff:198.18.5.5/128 is IPv4
    # 198.18.5.5/32 for Go (interfaces.go convertInterface: addr.String(), then cnet.ParseCIDR).
    (("first-found", 4, "3.32.0", None), ("map0", "198.18.5.5/32")),
    (("first-found", 4, "3.31.7", None), ("map0", "198.18.5.5/32")),
    # A peer address: 198.51.100.7/24 through Go's net (v3.31.7), /32 through netlink (v3.32.0).
    (("skip-interface=^map0$", 4, "3.31.7", None), ("ptp0", "198.51.100.7/24")),
    (("skip-interface=^map0$", 4, "3.32.0", None), ("ptp0", "198.51.100.7/32")),
    (("first-found", 6, "3.31.7", None), ("ptp0", "2001:db8:7::7/64")),
    (("first-found", 6, "3.32.0", None), ("ptp0", "2001:db8:7::7/128")),
    # Go's \d is ASCII: eth + a Unicode digit is not ^eth\d$; "." matches it.
    (("interface=^eth\\d$", 4, "3.32.0", None), ("eth0", "192.0.2.11/24")),
    (("interface=^eth.$", 4, "3.32.0", None), (UDIGIT, "198.18.3.3/24")),
    (("interface=^eth[[:^alpha:]]$", 4, "3.32.0", None), (UDIGIT, "198.18.3.3/24")),
    (("interface=(?i)^ETH\\x{30}$", 6, "3.32.0", None), ("eth0", "2001:db8::11/64")),
    # The DOWN NIC is a candidate; the second address on eth0 is reachable by cidr=.
    (("interface=^nic1$", 4, "3.32.0", None), ("nic1", "198.18.1.11/24")),
    # The kernel drops a DOWN link's IPv6 addresses (keep_addr_on_down=0): none to find there.
    (("interface=^nic\\d$", 6, "3.32.0", None), (None, None)),
    (("cidr=192.0.2.12/32", 4, "3.32.0", None), ("eth0", "192.0.2.12/24")),
    (("cidr=::ffff:198.18.3.0/120", 4, "3.32.0", None), (UDIGIT, "198.18.3.3/24")),  # IPNet.Contains
    (("cidr=2001:db8::/48", 6, "3.32.0", None), ("eth0", "2001:db8::11/64")),
    # can-reach: a hostname resolved on the node, then the kernel's source address.
    (("can-reach=gw.adx.test", 4, "3.32.0", None), ("eth0", "192.0.2.11/24")),
    (("can-reach=gw.adx.test", 6, "3.32.0", None), ("eth0", "2001:db8::11/64")),
    (("can-reach=far.adx.test", 4, "3.31.7", None), ("ptp0", "198.51.100.7/24")),
    (("can-reach=far.adx.test", 4, "3.32.0", None), ("ptp0", "198.51.100.7/32")),
    (("can-reach=::ffff:192.0.2.1", 4, "3.32.0", None), ("eth0", "192.0.2.11/24")),
    # kubernetes-internal-ip: the first InternalIP of the family, an IPv4-mapped one counting as IPv4.
    (("kubernetes-internal-ip", 4, "3.32.0", ["2001:db8::11", "::ffff:192.0.2.12"]), ("eth0", "192.0.2.12/24")),
    (("kubernetes-internal-ip", 6, "3.32.0", ["192.0.2.11", "2001:db8:7::7"]), ("ptp0", "2001:db8:7::7/128")),
    (("kubernetes-internal-ip", 4, "3.22.3", ["192.0.2.12"]), ("eth0", "192.0.2.0/24")),  # masked until v3.22.4
]
AFTER_DOCKER0 = [
    (("first-found", 4, "3.32.0", None), ("map0", "198.18.5.5/32")),      # docker0 is excluded (^docker.*)
    (("first-found", 4, "3.24.0", None), ("map0", "198.18.5.5/32")),      # and by the unanchored docker.*
    (("cidr=203.0.113.0/24", 4, "3.32.0", None), ("docker0", "203.0.113.1/24")),  # cidr= ignores exclusions
    (("interface=docker", 4, "3.32.0", None), ("docker0", "203.0.113.1/24")),
    (("skip-interface=^map0$,^ptp0$", 4, "3.32.0", None), (UDIGIT, "198.18.3.3/24")),
]


def _run(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


@pytest.fixture(scope="module")
def ns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("this lab test needs root and iproute2")
    name = f"nd-adx-{uuid.uuid4().hex[:8]}"
    peer = f"{name}-p"
    etc = Path("/etc/netns") / name
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "netns", "add", peer)
        etc.mkdir(parents=True)
        (etc / "hosts").write_text(HOSTS)
        _run("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.addr_gen_mode=1",
             "net.ipv6.conf.default.addr_gen_mode=1", "net.ipv6.conf.all.accept_dad=0",
             "net.ipv6.conf.default.accept_dad=0")
        for k, step in enumerate(SETUP):
            if step[0] == "nic":
                _run("ip", "-n", name, "link", "add", step[1], "type", "veth", "peer", "name", f"p{k}", "netns", peer)
                _run("ip", "-n", peer, "link", "set", f"p{k}", "up")
                _run("ip", "-n", name, "link", "set", step[1], "up")
            else:
                _run("ip", "-n", name, *step)
        yield name
    finally:
        _run("ip", "netns", "del", name, check=False)
        _run("ip", "netns", "del", peer, check=False)
        shutil.rmtree(etc, ignore_errors=True)


def replay(ns, cases):
    payload = json.dumps([{"method": m, "version": v, "calico": c, "internal_ips": ips}
                          for (m, v, c, ips), _expected in cases])
    out = _run("ip", "netns", "exec", ns, "env", f"PYTHONPATH={COLLECTIONS}", sys.executable, "-c", REPLAY, payload)
    return json.loads(out.stdout)


def _check(got, cases):
    assert len(got["results"]) == len(cases)
    for ((method, version, calico, _ips), expected), result in zip(cases, got["results"], strict=True):
        assert (result["interface"], result["address"]) == expected, (method, version, calico, result)


def test_links_in_kernel_dump_order(ns):
    got = replay(ns, BEFORE[:1])
    lines = _run("ip", "-n", ns, "-o", "link").stdout.splitlines()
    names = [line.split(":")[1].strip().split("@")[0] for line in lines]
    assert got["links"] == names == ["lo", "eth0", "nic1", UDIGIT, "ptp0", "map0"]


def test_every_method_family_before_docker0(ns):
    got = replay(ns, BEFORE)
    _check(got, BEFORE)
    by_method = {(c[0][0], c[0][1], c[0][2]): r for c, r in zip(BEFORE, got["results"], strict=True)}
    reach = by_method[("can-reach=gw.adx.test", 4, "3.32.0")]["reach"]
    assert (reach["resolved"], reach["source"]) == ("192.0.2.1", "192.0.2.11")
    down = [c for c in by_method[("interface=^nic1$", 4, "3.32.0")]["candidates"] if c["interface"] == "nic1"]
    assert down[0]["taken"]
    ptp = by_method[("skip-interface=^map0$", 4, "3.32.0")]["candidates"]
    assert "an address with peer 198.51.100.1" in next(c["reason"] for c in ptp if c["taken"])


def test_docker0_added_later(ns):
    for step in DOCKER0:
        _run("ip", "-n", ns, *step)
    got = replay(ns, AFTER_DOCKER0)
    assert got["links"][-1] == "docker0"
    _check(got, AFTER_DOCKER0)
    first = got["results"][0]["candidates"][0]
    assert (first["interface"], first["reason"]) == ("docker0", "excluded by ^docker.*")
