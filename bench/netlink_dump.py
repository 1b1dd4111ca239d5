"""Speed and memory of _netlink.snapshot() on a 100,000-route table, next to `ip -j route show`.

Creates its own network namespace (deleted at the end), loads the routes with `ip -batch`, then
times the snapshot and iproute2 alternately (best of ROUNDS each) and measures the peak RSS of a
process that gathers the snapshot. Needs root. The last line is the figure:
    netlink-100k: facts X s, ip -j Y s, ratio Z
"""

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".collections"
sys.path.insert(0, str(COLLECTIONS))

ROUTES = 100_000
ROUNDS = 5
TARGET = 1.5
BLOCKS = 2048  # every /26 of 198.18.0.0/15

# Peak RSS (ru_maxrss, KiB) of a process that imports the module and, unless told "import",
# takes one snapshot of its own namespace, as the module does. Linux carries ru_maxrss over
# fork+exec from the parent's current size, so these children are started while this process is
# still small (before it imports pyroute2 or holds a snapshot).
RSS_CHILD = """
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.netdoctor.calico.plugins.module_utils import _netlink
routes = 0 if sys.argv[2] == "import" else sum(r["family"] == 4 for r in _netlink.snapshot()["routes"])
print(json.dumps({"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "routes": routes}))
"""


def sh(*args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs).stdout


def devices(ns):
    """Two route devices: dummies where the kernel has them, else veth pairs (both ends up)."""
    batch = []
    for name in ("bn0", "bn1"):
        if subprocess.run(["ip", "-n", ns, "link", "add", name, "type", "dummy"], check=False,
                          capture_output=True).returncode:
            sh("ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", name + "p")
            batch.append(f"link set {name}p up")
        batch.append(f"link set {name} up")
    return batch + ["addr add 192.0.2.1/24 dev bn0", "addr add 198.51.100.1/24 dev bn1"]


def route_batch():
    """A Calico-like mix: the /26 blocks (local blackholes, remote blocks via one node IP each),
    then /32s: workload routes, remote routes via ~7,500 distinct node IPs (onlink), Felix proto 80
    routes via 64 VTEPs, routes with a metric and a source, ECMP routes and blackholes."""
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    nodes = int(ipaddress.IPv4Address("198.19.128.0"))
    for k in range(BLOCKS):
        block = ipaddress.IPv4Address(base + 64 * k)
        if k % 2:
            yield f"route add blackhole {block}/26 proto bird"
        else:
            yield f"route add {block}/26 via {ipaddress.IPv4Address(nodes + k)} dev bn0 onlink proto bird"
    for i in range(ROUTES - BLOCKS):
        host = ipaddress.IPv4Address(base + i)
        shape = i % 20
        if shape < 8:
            yield f"route add {host}/32 dev bn{i % 2} scope link proto boot"
        elif shape < 14:
            yield f"route add {host}/32 via {ipaddress.IPv4Address(nodes + i // 8)} dev bn0 onlink proto bird"
        elif shape < 16:
            yield f"route add {host}/32 via 198.51.100.{i % 64 + 2} dev bn1 onlink proto 80"
        elif shape < 18:
            yield f"route add {host}/32 via 192.0.2.{i % 200 + 2} dev bn0 metric 100 src 192.0.2.1 proto static"
        elif shape < 19:
            yield f"route add {host}/32 proto bird nexthop via 192.0.2.2 dev bn0 nexthop via 198.51.100.2 dev bn1"
        else:
            yield f"route add blackhole {host}/32 proto 80"


def timed_ip(ns):
    start = time.perf_counter()
    out = subprocess.run(["ip", "-n", ns, "-j", "route", "show"], check=True, stdout=subprocess.PIPE).stdout
    return time.perf_counter() - start, out


def rss_child(ns, what):
    return json.loads(sh("ip", "netns", "exec", ns, sys.executable, "-c", RSS_CHILD, str(COLLECTIONS), what))


def main():
    ns = f"ndbench-{uuid.uuid4().hex[:10]}"
    sh("ip", "netns", "add", ns)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".batch") as batch:
            for line in devices(ns):
                batch.write(line + "\n")
            for line in route_batch():
                batch.write(line + "\n")
            batch.flush()
            start = time.perf_counter()
            sh("ip", "-n", ns, "-batch", batch.name)
            print(f"loaded {ROUTES} routes with ip -batch in {time.perf_counter() - start:.1f} s (namespace {ns})")
        baseline, gathered = rss_child(ns, "import"), rss_child(ns, "snapshot")

        started = time.perf_counter()
        from ansible_collections.netdoctor.calico.plugins.module_utils import _netlink  # noqa: PLC0415 - timed
        import_s = time.perf_counter() - started
        if not _netlink.HAS_PYROUTE2:
            sys.exit(_netlink.PYROUTE2_IMPORT_ERROR)

        facts, ip_runs, routes, ip_routes = [], [], 0, 0
        for n in range(ROUNDS):
            start = time.perf_counter()
            snap = _netlink.snapshot(ns)
            facts.append(time.perf_counter() - start)
            routes = sum(route["family"] == 4 for route in snap["routes"])
            del snap  # freed outside the timings
            seconds, out = timed_ip(ns)
            ip_runs.append(seconds)
            ip_routes = len(json.loads(out))
            print(f"round {n + 1}: facts {facts[-1]:.3f} s, ip -j route show {seconds:.3f} s ({len(out) >> 20} MiB)")
        if routes != ip_routes or routes < ROUTES:
            sys.exit(f"the snapshot has {routes} main-table IPv4 routes, ip -j route show {ip_routes}")

        if gathered["routes"] != routes:
            sys.exit(f"the RSS child saw {gathered['routes']} routes, not {routes}")
        added = gathered["maxrss"] - baseline["maxrss"]
        print(f"import of _netlink (with pyroute2): {import_s:.2f} s, once per module run, not in the figure")
        print(f"peak RSS gathering the facts: {gathered['maxrss'] / 1024:.1f} MiB; importing the module alone"
              f" {baseline['maxrss'] / 1024:.1f} MiB; the snapshot adds {added / 1024:.1f} MiB"
              f" ({added * 1024 / routes:.0f} bytes per route)")
        best, best_ip = min(facts), min(ip_runs)
        print("facts = snapshot() of all links, addresses, IPv4+IPv6 main routes, neighbours, FDB and rules,"
              " entering the namespace; ip -j = one IPv4 route dump, output read from a pipe;"
              f" target ratio <= {TARGET}")
        print(f"netlink-100k: facts {best:.3f} s, ip -j {best_ip:.3f} s, ratio {best / best_ip:.2f}")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench/netlink_dump.py needs root (it creates a network namespace)")
    main()
