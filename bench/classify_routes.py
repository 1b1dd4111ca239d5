"""Route classification on a large node: 100,000 main-table routes (5,000 peers x 20 blocks each,
IPIP and VXLAN variants, plus workloads, local blocks and the underlay), built the way the netlink
decoder builds them (one dict per route, in table order).

Measures ``_calico_view.classify_routes`` (one pass, counts, suspect check) and ``calico_view``.
Target: classify_routes well under 100 ms (best of 7). Exits 1 when it misses the target.

Run alone: .venv/bin/python bench/classify_routes.py   (make bench runs it too)
"""

import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS, BLOCKS_PER_PEER, WORKLOADS = 5000, 20, 250
TARGET_MS = 100.0


def _route(dst, dev, protocol, gateway=None, *, scope="universe", rtype="unicast", onlink=False):
    return {"family": 4, "dst": dst, "type": rtype, "protocol": protocol, "scope": scope, "gateway": gateway,
            "oif": None, "dev": dev, "metric": None, "prefsrc": None, "onlink": onlink, "multipath": None}


def snapshot(mode):
    routes = [_route("default", "eth0", 3, "192.0.2.1"),
              _route("192.0.2.0/24", "eth0", 2, scope="link")]
    for i in range(4):
        routes.append(_route(f"198.18.{i}.0/26", None, 12 if mode == "ipip" else 80, rtype="blackhole"))
    for i in range(WORKLOADS):
        routes.append(_route(f"198.18.{i // 64}.{i % 64 + 1}/32", f"cali{i:011x}", 3, scope="link"))
    for peer in range(PEERS):
        node_ip = f"100.64.{peer // 250}.{peer % 250 + 1}"
        for b in range(BLOCKS_PER_PEER):
            n = peer * BLOCKS_PER_PEER + b
            dst = f"10.{n // 1024}.{(n // 4) % 256}.{(n % 4) * 64}/26"
            if mode == "ipip":
                routes.append(_route(dst, "tunl0", 12, node_ip, onlink=True))
            else:
                vtep = f"10.{(peer * BLOCKS_PER_PEER) // 1024}.{(peer * BLOCKS_PER_PEER // 4) % 256}.0"
                routes.append(_route(dst, "vxlan.calico", 3, vtep, onlink=True))
    links = [{"index": 2, "name": "eth0", "kind": None, "up": True, "operstate": "UP", "mtu": 1500},
             {"index": 5, "name": "tunl0" if mode == "ipip" else "vxlan.calico", "kind": None, "up": True,
              "operstate": "UNKNOWN", "mtu": 1480 if mode == "ipip" else 1450}]
    addresses = [{"index": 2, "family": 4, "address": "192.0.2.11", "prefixlen": 24},
                 {"index": 5, "family": 4, "address": "198.18.0.0", "prefixlen": 32}]
    return {"links": links, "addresses": addresses, "routes": routes, "neighbours": [], "fdb": []}


def _timed(fn, *args, runs=7):
    times = []
    for _run in range(runs):
        start = time.perf_counter()
        result = fn(*args)
        times.append((time.perf_counter() - start) * 1000)
    return result, min(times), statistics.median(times)


def main():
    sys.path.insert(0, os.path.join(ROOT, ".collections"))
    from ansible_collections.netdoctor.calico.plugins.module_utils import _calico_view  # noqa: PLC0415 - path set above

    ok = True
    for mode in ("ipip", "vxlan"):
        snap = snapshot(mode)
        routes, best, median = _timed(_calico_view.classify_routes, snap)
        view, view_best, _runs = _timed(_calico_view.calico_view, snap, {}, routes)
        assert routes["counts"]["by_class"]["remote_blocks"] == PEERS * BLOCKS_PER_PEER and not routes["suspect"]
        assert view["mode"] == mode
        ok = ok and best < TARGET_MS
        print(f"classify_routes {mode}: {len(snap['routes'])} routes, best {best:.1f} ms, median {median:.1f} ms "
              f"(target < {TARGET_MS:.0f} ms); calico_view {view_best:.2f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
