"""Fleets of ``calico_node`` facts for the fleet and report tests: healthy fleets in each mode and
seed 001's five-node IPIP cluster.

Each node starts as a netlink snapshot (docs/development.md); its fact is assembled from it by the
real core, as calico_node_facts does: routes classified and the Calico view by ``_calico_view``
(full remote routes), the autodetection replay by ``_autodetect``, node-local findings by
``_findings``. A test edits the snapshot through ``build(..., edit=...)``, or edits a fact and
calls ``refresh`` so its node-local findings follow.
"""

from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect, _calico_view, _findings

BIRD, BOOT, KERNEL = 12, 3, 2


def link(index, name, addresses=(), *, kind=None, mtu=1500, mac=None, vxlan=None):
    return {
        "index": index, "name": name, "kind": kind, "up": True, "operstate": "UP", "mtu": mtu, "mac": mac,
        "master": None, "link": None, "vxlan": vxlan,
        "addresses": [{"family": 4, "address": a.split("/")[0], "prefixlen": int(a.split("/")[1]),
                       "scope": "host" if name == "lo" else "global", "flags": ["permanent"], "label": name}
                      for a in addresses],
    }


def route(dst, gateway=None, dev=None, protocol=BIRD, *, type_="unicast", onlink=False, prefsrc=None, metric=None,
          scope="universe"):
    return {"family": 4, "dst": dst, "type": type_, "protocol": protocol, "scope": scope, "gateway": gateway,
            "oif": None, "dev": dev, "metric": metric, "prefsrc": prefsrc, "onlink": onlink, "multipath": None}


def node(host, nics, ip, block, tunnel, *, mac=None):
    """nics: [(name, "address/len")] in ifindex order; ip: the registered (Calico) IP."""
    return {"host": host, "nics": nics, "ip": ip, "block": block, "tunnel": tunnel, "mac": mac}


def nic_of(spec, ip):
    return next(name for name, cidr in spec["nics"] if cidr.split("/")[0] == ip)


def remote_route(mode, owner, viewer):
    if mode == "ipip":
        return route(owner["block"], owner["ip"], "tunl0", BIRD, onlink=True)
    if mode == "vxlan":
        return route(owner["block"], owner["tunnel"], "vxlan.calico", BOOT, onlink=True)
    return route(owner["block"], owner["ip"], nic_of(viewer, viewer["ip"]), BIRD)


def node_snapshot(mode, spec, others):
    """A healthy node's netlink snapshot: every remote block routed as Calico does."""
    links = [link(1, "lo", ["127.0.0.1/8"], mtu=65536)]
    links += [link(i + 2, name, [cidr]) for i, (name, cidr) in enumerate(spec["nics"])]
    if mode == "ipip":
        links.append(link(len(links) + 1, "tunl0", [spec["tunnel"] + "/32"], kind="ipip", mtu=1480))
    elif mode == "vxlan":
        links.append(link(len(links) + 1, "vxlan.calico", [spec["tunnel"] + "/32"], kind="vxlan", mtu=1450,
                          mac=spec["mac"], vxlan={"vni": 4096, "port": 4789, "local": spec["ip"], "link": 2}))
    kernel = [route(f"{cidr.rsplit('.', 1)[0]}.0/24", None, name, KERNEL, scope="link", prefsrc=cidr.split("/")[0])
              for name, cidr in spec["nics"]]
    blackhole = route(spec["block"], type_="blackhole", protocol=BIRD if mode != "vxlan" else 80)
    return {
        "links": [{k: v for k, v in lk.items() if k != "addresses"} for lk in links],
        "addresses": [{**a, "index": lk["index"]} for lk in links for a in lk["addresses"]],
        "routes": [blackhole, *(remote_route(mode, o, spec) for o in others), *kernel],
        "neighbours": [], "fdb": [], "rules": [],
    }


def assemble(mode, spec, others, snapshot, method="first-found"):
    """The calico_node fact from a snapshot, with BIRD's mesh up (IPIP/BGP) and every peer
    reached from the Calico IP."""
    links = [{**lk, "addresses": [{k: v for k, v in a.items() if k != "index"} for a in snapshot["addresses"]
                                  if a["index"] == lk["index"]]} for lk in snapshot["links"]]
    routes = _calico_view.classify_routes(snapshot, full=True)
    peers = [] if mode == "vxlan" else [
        {"name": "Mesh_" + o["ip"].replace(".", "_"), "address": o["ip"], "type": "node-to-node mesh",
         "state": "up", "since": "07:40:01", "info": "Established"} for o in others]
    fact = {
        "schema_version": 1,
        "hostname": spec["host"],
        "links": links,
        "routes": routes,
        "calico": _calico_view.calico_view(snapshot, routes=routes),
        "sysctls": {"net.ipv4.ip_forward": 1},
        "network_manager": {"installed": False, "running": False},
        "bird": {"socket": "/var/run/calico/bird.ctl", "available": mode != "vxlan", "error": None,
                 "version": "1.6.8", "router_id": spec["ip"] if mode != "vxlan" else None, "peers": peers,
                 "protocols": []},
        "identity": {"nodename_file": spec["host"], "cni": None, "hosts_resolves_hostname": True,
                     "calico_node": {"pid": 100, "env": {"IP": "autodetect", "IP_AUTODETECTION_METHOD": method}}},
        "peer_routes": {o["ip"]: {"prefsrc": spec["ip"], "dev": nic_of(spec, spec["ip"]), "gateway": None}
                        for o in others},
        "autodetection": _autodetect.autodetection_fact(snapshot, method, calico_version="3.30"),
    }
    fact["findings"] = _findings.node_findings(fact)
    return fact


def build(mode, specs, method="first-found", edit=None):
    """host -> fact; ``edit(host, snapshot)`` changes a node's snapshot before its fact is built."""
    facts = {}
    for spec in specs:
        others = [o for o in specs if o is not spec]
        snapshot = node_snapshot(mode, spec, others)
        if edit:
            edit(spec["host"], snapshot)
        facts[spec["host"]] = assemble(mode, spec, others, snapshot, method)
    return facts


def refresh(facts):
    """Recompute the node-local findings after a test edited facts directly."""
    for fact in facts.values():
        if fact:
            fact["findings"] = _findings.node_findings(fact)
    return facts


def healthy_specs(count=4):
    return [node(f"node{i}", [("eth0", f"192.0.2.{10 + i}/24")], f"192.0.2.{10 + i}", f"198.18.{i}.0/26",
                 f"198.18.{i}.0", mac=f"66:00:00:00:00:{i:02x}") for i in range(1, count + 1)]


def healthy(mode, count=4):
    return build(mode, healthy_specs(count))


# Seed 001: five nodes 192.168.0.110-114 with a second NIC 192.168.3.110-114, except node2.
# first-found walks links newest first, so eth1 (3.x) wins where it exists.
SEED_BLOCKS = {1: "10.122.17.64", 2: "10.122.124.128", 3: "10.122.127.128", 4: "10.122.157.128", 5: "10.122.173.128"}


def seed_specs():
    specs = []
    for i, base in SEED_BLOCKS.items():
        nics = [("eth0", f"192.168.0.{109 + i}/24")]
        if i != 2:
            nics.append(("eth1", f"192.168.3.{109 + i}/24"))
        ip = f"192.168.{0 if i == 2 else 3}.{109 + i}"
        specs.append(node(f"node{i}", nics, ip, base + "/26", base))
    return specs


def seed_fleet(edit=None):
    """Seed 001 as facts: IPIP, node2 registered 192.168.0.111, every other node 192.168.3.x;
    healthy: every lookup towards a peer leaves from the Calico IP."""
    return build("ipip", seed_specs(), edit=edit)


def seed_case1():
    """Case 1: node3 (10.122.127.128, host 192.168.3.112) routes node1's block 10.122.17.64/26
    via its own tunnel address, added by hand: `10.122.17.64/26 via 10.122.127.128 dev tunl0`."""
    def stale(host, snapshot):
        if host == "node3":
            routes = snapshot["routes"]
            index = next(i for i, r in enumerate(routes) if r["dst"] == "10.122.17.64/26")
            routes[index] = route("10.122.17.64/26", "10.122.127.128", "tunl0", BOOT)
    return seed_fleet(stale)


def seed_case2():
    """Case 2: node2 has no 192.168.3.111; the others reach 192.168.0.111 by eth0's connected
    route, so from 192.168.0.x, which node2 does not know as a Calico node IP."""
    facts = seed_fleet()
    for i in (1, 3, 4, 5):
        facts[f"node{i}"]["peer_routes"]["192.168.0.111"] = {"prefsrc": f"192.168.0.{109 + i}", "dev": "eth0",
                                                             "gateway": None}
    return facts
