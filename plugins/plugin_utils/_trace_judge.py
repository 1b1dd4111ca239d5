# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Seed 003's pod-to-pod trace, judged on the controller: follow the packet from pod A to pod B and
the reply back over the two nodes' halves (``module_utils._trace.node_half``), and name the first
hop where it is lost (pure: data in, data out).

    send   1 pod A -> node A    2 node A -> toward node B    3 node B accepts it    4 node B -> pod B
    reply  5 pod B -> node B    6 node B -> toward node A    7 node A accepts it    8 node A -> pod A

``trace(src_half, dst_half, src, dst)`` judges the eight steps; ``combine`` picks the two owners
out of every node's half. Reference: calico_internals §2.3 (route shapes), §2.5 (sysctls), §2.7
(which source addresses a node accepts encapsulated traffic from).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from ansible_collections.netdoctor.calico.plugins.module_utils import _calico_view
from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import finding
from ansible_collections.netdoctor.calico.plugins.module_utils._trace import (
    BAD_NEIGHBOUR_STATES,
    BAD_OPERSTATES,
    POD_GATEWAY,
    SCHEMA_VERSION,
    TUNNEL_DEVICES,
    VXLAN_DEVICES,
    check_pair,
    ip_text,
    is_local_lookup,
)

DIRECTIONS = {1: "send", 2: "send", 3: "send", 4: "send", 5: "reply", 6: "reply", 7: "reply", 8: "reply"}


# --- rendering evidence --------------------------------------------------------------------------

def neighbour_text(neigh):
    if not neigh:
        return None
    parts = [neigh.get("dst"), "dev", str(neigh.get("dev"))]
    if neigh.get("lladdr"):
        parts += ["lladdr", neigh["lladdr"]]
    return " ".join(parts + [s.upper() for s in neigh.get("state") or ()])


def lookup_text(ip, lookup):
    """`ip route get` style: what the kernel answered for ip."""
    if lookup is None:
        return f"{ip}: no usable route (unreachable, blackhole or none)"
    parts = [ip]
    if lookup.get("gateway"):
        parts += ["via", lookup["gateway"]]
    if lookup.get("dev"):
        parts += ["dev", lookup["dev"]]
    if lookup.get("prefsrc"):
        parts += ["src", lookup["prefsrc"]]
    return " ".join(parts)


def _route_texts(routes):
    return [_calico_view.route_text(r) for r in routes or ()]


# --- the steps -----------------------------------------------------------------------------------

# The sysctls read are IPv4's (ip_forward, proxy_arp, rp_filter); IPv6 has others
# (conf.*.forwarding, proxy_ndp) that the trace does not read yet.
IPV6_SYSCTLS_NOTE = "IPv6: the forwarding and proxy_ndp sysctls are not checked"


class _Step:
    def __init__(self, n, node, check, pod_ip):
        self.n, self.node, self.check = n, node, check
        self.ipv6 = ":" in pod_ip
        self.evidence = {"sysctls": IPV6_SYSCTLS_NOTE} if self.ipv6 else {}
        self.problems = []

    def fail(self, problem, remedy):
        self.problems.append((problem, remedy))

    def result(self):
        return {"n": self.n, "direction": DIRECTIONS[self.n], "node": self.node, "check": self.check,
                "ok": not self.problems,
                "evidence": {**self.evidence, "problems": [p for p, _r in self.problems]},
                "remedy": self.problems[0][1] if self.problems else None}


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _if_sysctl(half, dev, key):
    return _int(((half.get("sysctls") or {}).get("interfaces") or {}).get(dev, {}).get(key))


def _link_problem(half, name):
    """Why a link cannot carry the packet, or None."""
    link = (half.get("links") or {}).get(name)
    if link is None:
        return f"{name} does not exist on {half['host']}"
    if not link.get("up"):
        return f"{name} on {half['host']} is administratively down"
    if link.get("operstate") in BAD_OPERSTATES:
        return f"{name} on {half['host']} is {link['operstate']}" + (
            " (its peer, the pod's eth0, is down)" if link.get("operstate") == "LOWERLAYERDOWN" else "")
    return None


def _address_dev(half, address):
    return next((a.get("dev") for a in half.get("addresses") or () if a.get("address") == address), None)


def _node_addresses(half):
    return {a.get("address") for a in half.get("addresses") or ()}


def _block_of(half, ip):
    pod = (half.get("pods") or {}).get(ip) or {}
    if pod.get("block"):
        return pod["block"].get("dst")
    for block in half.get("local_blocks") or ():
        try:
            if ipaddress.ip_address(ip) in ipaddress.ip_network(block, strict=False):
                return block
        except ValueError:
            continue
    return None


def _forwarding(step, half, in_dev):
    """ip_forward, and forwarding on the device the packet comes in by (the kernel checks the
    input device's flag; `ip_forward=0` clears every device's)."""
    if step.ipv6:
        return
    host = half["host"]
    sysctls = half.get("sysctls") or {}
    fwd = _int(sysctls.get("net.ipv4.ip_forward"))
    dev_fwd = _if_sysctl(half, in_dev, "forwarding") if in_dev else None
    step.evidence["net.ipv4.ip_forward"] = fwd
    if in_dev:
        step.evidence[f"net.ipv4.conf.{in_dev}.forwarding"] = dev_fwd
    if fwd == 0:
        step.fail(f"net.ipv4.ip_forward=0 on {host}: it forwards no pod traffic",
                  _FORWARD_REMEDY[True].format(host=host, dev=in_dev))
    elif dev_fwd == 0:
        step.fail(f"net.ipv4.conf.{in_dev}.forwarding=0 on {host}: packets arriving on {in_dev} are not forwarded",
                  _FORWARD_REMEDY[False].format(host=host, dev=in_dev))


def step_pod_to_node(n, node, pod_ip, peer_ip):
    """Steps 1/5: the pod hands its packet to its node: workload route and veth, proxy ARP for
    169.254.1.1, and (when the pod's namespace was read) the pod's own route and ARP entry."""
    host = node["host"]
    pod = node["pods"][pod_ip]
    iface = pod.get("interface")
    step = _Step(n, host, f"pod {pod_ip} hands its packets to {host} over {iface or 'its cali* veth'}: "
                          f"workload route, veth up, proxy ARP for {POD_GATEWAY}", pod_ip)
    workload = pod.get("route")
    link = (node.get("links") or {}).get(iface) or {}
    step.evidence.update(workload_route=workload and _calico_view.route_text(workload), interface=iface,
                         veth={k: link.get(k) for k in ("up", "operstate", "mac")} if link else None)
    if workload is None:
        step.fail(f"{host} has no workload route `{pod_ip} dev cali* scope link`",
                  f"The CNI plugin and Felix program `{pod_ip} dev <cali veth> scope link` when the pod starts: check "
                  f"calico-node (Felix) on {host} is Ready and its log, then recreate the pod if the route does not "
                  "come back.")
    if iface:
        problem = _link_problem(node, iface)
        if problem:
            step.fail(problem, f"`ip link set {iface} up` on {host}; a veth whose pod side is down "
                               "(LOWERLAYERDOWN) needs the pod recreated.")
        _proxy_arp(step, node, iface)
    _pod_view(step, node, pod, peer_ip, link)
    return step.result()


def _proxy_arp(step, node, iface):
    """The veth answers the pod's ARP for 169.254.1.1 only with proxy_arp=1 and forwarding on it:
    the kernel proxies ARP only on an interface that forwards (arp_process checks IN_DEV_FORWARD),
    so ip_forward=0 stops the pod's packets before they reach the node."""
    if step.ipv6:
        return
    host = node["host"]
    proxy_arp = _if_sysctl(node, iface, "proxy_arp")
    fwd = _int((node.get("sysctls") or {}).get("net.ipv4.ip_forward"))
    dev_fwd = _if_sysctl(node, iface, "forwarding")
    step.evidence.update({"proxy_arp": proxy_arp, "net.ipv4.ip_forward": fwd,
                          f"net.ipv4.conf.{iface}.forwarding": dev_fwd})
    unanswered = f"nothing answers the pod's ARP for {POD_GATEWAY}, its gateway"
    if proxy_arp == 0:
        step.fail(f"proxy_arp=0 on {iface}: {unanswered}",
                  f"`sysctl -w net.ipv4.conf.{iface}.proxy_arp=1` on {host} (Felix and the CNI plugin set it on every "
                  "cali* interface; find the sysctl.d file or tool that resets conf.*.proxy_arp, SYS001).")
    if fwd == 0 or dev_fwd == 0:
        setting = "net.ipv4.ip_forward=0" if fwd == 0 else f"net.ipv4.conf.{iface}.forwarding=0"
        step.fail(f"{setting} on {host}: the kernel proxies ARP only on an interface that forwards, so {unanswered}",
                  _FORWARD_REMEDY[fwd == 0].format(host=host, dev=iface))


_FORWARD_REMEDY = {
    True: "`sysctl -w net.ipv4.ip_forward=1` on {host}, persisted with ansible.posix.sysctl in /etc/sysctl.d (Felix "
          "sets it with IPForwarding=Enabled; find what resets it, SYS001).",
    False: "`sysctl -w net.ipv4.conf.{dev}.forwarding=1` on {host} (Felix and the CNI plugin set it on workload "
           "interfaces, SYS001).",
}


def _pod_view(step, node, pod, peer_ip, link):
    host = node["host"]
    side = pod.get("pod")
    if side is None:
        step.evidence["pod_side"] = f"not read: {pod.get('note') or 'the pod namespace was not found'}"
        return
    neigh = side.get("gateway_neighbour")
    step.evidence["pod_side"] = {"netns": pod.get("netns"), "route": lookup_text(peer_ip, side.get("route")),
                                 "gateway_neighbour": neighbour_text(neigh)}
    if side.get("route") is None:
        step.fail(f"the pod has no route to {peer_ip}",
                  f"The CNI plugin adds `{POD_GATEWAY} dev eth0 scope link` and `default via {POD_GATEWAY} dev eth0` "
                  "in the pod: recreate the pod.")
        return
    if not neigh:
        return
    states = set(neigh.get("state") or ())
    if states & BAD_NEIGHBOUR_STATES:
        step.fail(f"the pod's ARP for {neigh.get('dst')} got no answer ({', '.join(sorted(states))})",
                  f"{host} answers it by proxy ARP on {link.get('name') or 'the veth'}: proxy_arp=1 there, the veth up "
                  f"and a default route on {host} (proxy ARP answers only for what the node can route).")
    elif neigh.get("lladdr") and link.get("mac") and neigh["lladdr"] != link["mac"]:
        step.fail(f"the pod resolved {neigh.get('dst')} to {neigh['lladdr']}, not {link.get('name')}'s MAC "
                  f"{link['mac']}",
                  "Something else answers on the pod's link: flush the pod's entry (`ip neigh flush dev eth0` in its "
                  "namespace) and check its veth pair.")


def _expected_next_hops(peer):
    return [a for a in (peer.get("node_ip"), (peer.get("tunnel") or {}).get("address")) if a]


def _want_next_hop(peer, dev):
    """What Calico routes the peer's block via (§2.3): its VTEP address on vxlan.calico, its
    registered IP everywhere else (IPIP on tunl0, native and CrossSubnet on the underlay)."""
    if dev in VXLAN_DEVICES:
        return (peer.get("tunnel") or {}).get("address")
    return peer.get("node_ip")


# Who programs a remote block route, by mode (calico_internals §2.1).
_ROUTE_OWNER = {
    "bgp": "BIRD learns it over BGP: check the session between {host} and {peer} "
           "(`birdcl -s /var/run/calico/bird.ctl show protocols`, BGP001).",
    "ipip": "BIRD (up to Calico v3.32, over BGP: check the session between {host} and {peer}, BGP001) or Felix "
            "(v3.33+) programs it: check calico-node on {host}.",
    "vxlan": "Felix programs it from {peer}'s VXLAN tunnel registration: check calico-node (Felix) on {host} and that "
             "{peer} registered its tunnel address.",
}


def step_node_sends(n, node, peer, pod_ip, peer_ip):
    """Steps 2/6: the node forwards the packet toward the peer node: forwarding, the kernel's
    lookup, the remote block route and its next hop, VXLAN neighbour/FDB, the underlay hop."""
    host, peer_host = node["host"], peer["host"]
    path = node["paths"][peer_ip]
    lookup = path.get("lookup")
    step = _Step(n, host, f"{host} forwards {pod_ip} -> {peer_ip} toward {peer_host}: forwarding, kernel route "
                          "lookup, next hop, underlay", pod_ip)
    step.evidence.update(lookup=lookup_text(peer_ip, lookup), routes=_route_texts(path.get("routes")))
    _forwarding(step, node, node["pods"][pod_ip].get("interface"))
    if peer is node:
        want = node["pods"][peer_ip].get("interface")
        if not is_local_lookup(lookup) or lookup.get("dev") != want:
            step.fail(f"{host} does not route {peer_ip} to its veth {want}",
                      f"Recreate the pod {peer_ip} or restart calico-node on {host} so Felix re-adds its route.")
        return step.result()
    block = _block_of(peer, peer_ip)
    step.evidence["peer_block"] = block
    no_route = f"{host} has no route for {block or peer_ip} ({peer_host}'s block): " + _ROUTE_OWNER.get(
        node.get("mode"), _ROUTE_OWNER["bgp"]).format(host=host, peer=peer_host) + (
        " netdoctor.calico.calico_routes adds it from the fleet's map (RT002).")
    if lookup is None:
        step.fail(f"{host} has no usable route to {peer_ip}", no_route)
        return step.result()
    best = (path.get("routes") or [None])[0]
    block_len = int(block.split("/")[1]) if block else None
    best_len = int((best or {}).get("dst", "0/0").split("/")[1]) if best and best.get("dst") != "default" else 0
    if block_len is not None and best_len < block_len:
        step.fail(f"{host} has no route for {block}; the lookup falls through to "
                  f"`{_calico_view.route_text(best) if best else 'nothing'}`", no_route)
        return step.result()
    gateway, dev = lookup.get("gateway"), lookup.get("dev")
    expected = _expected_next_hops(peer)
    step.evidence["expected_next_hop"] = expected
    if peer.get("intended_ip") and peer.get("node_ip") and peer["intended_ip"] != peer["node_ip"]:
        step.evidence["peer_registered_ip"] = (f"{peer_host} registered {peer['node_ip']} "
                                               f"({peer.get('node_ip_source')}), its intended IP is "
                                               f"{peer['intended_ip']} (AD001)")
    want = _want_next_hop(peer, dev)
    replace = (f"Fix the cause first (AD001, NM001), then replace the route: `ip route replace {block} via "
               f"{want or '<owner IP>'} dev {dev}{' onlink' if dev in TUNNEL_DEVICES else ''}` (keep its proto), or "
               "run netdoctor.calico.calico_routes (RT001).")
    if not gateway:
        step.fail(f"{host} routes {peer_ip} over {dev} without a next hop", replace)
        return step.result()
    if gateway not in expected and gateway not in _node_addresses(peer):
        tunnel_address = (peer.get("tunnel") or {}).get("address")
        known = f"its Calico IP {peer.get('node_ip') or 'unknown'}" + (
            f", tunnel address {tunnel_address}" if tunnel_address else "")
        step.fail(f"next hop {gateway} is not {peer_host} ({known})", replace)
    problem = _link_problem(node, dev)
    if problem:
        step.fail(problem, f"`ip link set {dev} up` on {host}; calico-node recreates its tunnel devices.")
    under = path.get("underlay") or {}
    if dev in VXLAN_DEVICES:
        _vxlan_l2(step, node, peer, under, gateway)
    _underlay(step, node, peer, under)
    return step.result()


def _vxlan_l2(step, node, peer, under, gateway):
    host, peer_host = node["host"], peer["host"]
    neigh, entry = under.get("tunnel_neighbour"), under.get("fdb")
    step.evidence.update(tunnel_neighbour=neighbour_text(neigh),
                         fdb=entry and f"{entry.get('lladdr')} dev {entry.get('dev')} dst {entry.get('dst')}")
    peer_mac = (peer.get("vxlan") or {}).get("mac")
    remedy = (f"Felix programs `{gateway} lladdr <{peer_host}'s VTEP MAC> dev vxlan.calico nud permanent` and the FDB "
              f"entry `<MAC> dev vxlan.calico dst <{peer_host}'s node IP>`: restart calico-node on {host}; if the "
              f"entries come back wrong, {peer_host}'s registered VTEP (MAC, IP) is wrong.")
    if not neigh or not neigh.get("lladdr"):
        step.fail(f"no neighbour entry for the VTEP {gateway} on vxlan.calico", remedy)
    elif peer_mac and neigh["lladdr"] != peer_mac:
        step.fail(f"the VTEP {gateway} resolves to {neigh['lladdr']}, not {peer_host}'s vxlan.calico MAC {peer_mac}",
                  remedy)
    elif not entry:
        step.fail(f"no FDB entry for {neigh['lladdr']} on vxlan.calico: the encapsulated packet has no destination",
                  remedy)
    elif entry.get("dst") not in _node_addresses(peer):
        step.fail(f"the FDB sends {peer_host}'s VTEP traffic to {entry.get('dst')}, which is not {peer_host}'s",
                  remedy)


def _underlay(step, node, peer, under):
    """The hop on the wire: a route to the target and a neighbour that answers."""
    host, peer_host = node["host"], peer["host"]
    target = under.get("target")
    if not target:
        return
    ulookup, neigh = under.get("lookup"), under.get("neighbour")
    step.evidence.update(underlay=lookup_text(target, ulookup), underlay_neighbour=neighbour_text(neigh))
    if ulookup is None:
        step.fail(f"{host} has no route to {target}, {peer_host}'s address on the underlay",
                  f"Give {host} a route to {target}; if {target} is not the address {peer_host} should be reached "
                  "at, fix its IP autodetection (AD001).")
        return
    if ulookup.get("dev"):
        problem = _link_problem(node, ulookup["dev"])
        if problem:
            step.fail(problem, f"Bring {ulookup['dev']} up on {host}.")
    states = set((neigh or {}).get("state") or ())
    if states & BAD_NEIGHBOUR_STATES:
        hop = ulookup.get("gateway") or target
        step.fail(f"{hop} does not answer ARP on {ulookup.get('dev')} ({', '.join(sorted(states))}): {host} cannot "
                  f"reach {target}" + (f", {peer_host}'s registered IP" if target == peer.get("node_ip") else ""),
                  f"{peer_host} is registered with {peer.get('node_ip') or target}, which {host} cannot reach over "
                  f"{ulookup.get('dev')}: if that is not the address {peer_host} should use (a second NIC, an "
                  "isolated network), pin IP_AUTODETECTION_METHOD so it picks the right one (AD001); otherwise check "
                  "the link between the nodes.")


def step_peer_accepts(n, node, peer, pod_ip, peer_ip):
    """Steps 3/7: the peer node accepts what the node sent: it holds the address, its tunnel
    device is up, the outer source is one it accepts encapsulated traffic from (§2.7), and strict
    rp_filter does not drop the packet for an asymmetric route back."""
    host, peer_host = node["host"], peer["host"]
    step = _Step(n, peer_host, f"{peer_host} accepts what {host} sends: its address, tunnel device, source "
                               "address, rp_filter", pod_ip)
    if peer is node:
        step.evidence["same_node"] = f"both pods are on {host}: no packet crosses the network"
        return step.result()
    path = node["paths"][peer_ip]
    lookup, under = path.get("lookup"), path.get("underlay") or {}
    dev, target = (lookup or {}).get("dev"), under.get("target")
    encapsulated = dev in TUNNEL_DEVICES
    ingress_outer = _address_dev(peer, target) if target else None
    step.evidence.update(received_at=target and f"{target} on {ingress_outer or '?'}", encapsulated=encapsulated)
    if target and ingress_outer is None:
        # What the peer would do with a packet it never gets is moot.
        step.fail(f"{peer_host} does not receive it: {host} sends it to {target}, which is not {peer_host}'s",
                  f"{host}'s route leads elsewhere: see step {n - 1}'s remedy.")
        return step.result()
    if ingress_outer:
        problem = _link_problem(peer, ingress_outer)
        if problem:
            step.fail(problem, f"Bring {ingress_outer} up on {peer_host}.")
    if encapsulated:
        problem = _link_problem(peer, dev)
        if problem:
            step.fail(f"{peer_host} cannot decapsulate: {problem}",
                      f"Check calico-node on {peer_host}: Felix creates {dev} and brings it up.")
    back = (peer["paths"].get(pod_ip) or {})
    known_as = _known_as(node, back, dev)
    sent_from = _outer_source(node, under, dev)
    if encapsulated and sent_from:
        step.evidence.update(outer_source=sent_from, peer_knows_sender_as=known_as)
        if known_as and sent_from != known_as:
            step.fail(f"{host} sends the encapsulated packets from {sent_from}, but {peer_host} accepts them only from "
                      f"Calico node IPs (ipset cali40all-hosts-net / all-vxlan-net), where {host} is {known_as}: "
                      f"{peer_host} drops them",
                      f"Make {host} reach its peers from {known_as}: a route to the peer network with `src {known_as}` "
                      "(netdoctor.calico.calico_routes with source_routes), or an autodetection method that makes "
                      "both sides agree, or add the address to FelixConfiguration externalNodesList (SRC001).")
    inner_dev = dev if encapsulated else ingress_outer
    _rp_filter(step, peer, inner_dev, pod_ip, back.get("lookup"))
    if encapsulated and sent_from and sent_from == known_as:
        _rp_filter(step, peer, ingress_outer, sent_from, (back.get("underlay") or {}).get("lookup"))
    return step.result()


def _known_as(node, back, dev):
    """The address the peer accepts the node's encapsulated packets from: the node's registered
    IP (Felix fills cali40all-hosts-net / all-vxlan-net with the registered node IPs, §2.7); when
    the node does not know it, the address the peer's own route back uses (IPIP next hop, VXLAN
    FDB destination), which Calico programs from the same registration."""
    if node.get("node_ip"):
        return node["node_ip"]
    under = back.get("underlay") or {}
    if dev in VXLAN_DEVICES:
        return under.get("target") if under.get("via") == "fdb" else None
    lookup = back.get("lookup") or {}
    return lookup.get("gateway") if lookup.get("dev") in TUNNEL_DEVICES else None


def _outer_source(node, under, dev):
    """VXLAN pins the outer source (the VTEP's local address); tunl0 has none, so it is whatever
    the kernel's lookup towards the peer picks (§2.7)."""
    if dev in VXLAN_DEVICES:
        return (node.get("vxlan") or {}).get("local") or (under.get("lookup") or {}).get("prefsrc")
    return (under.get("lookup") or {}).get("prefsrc")


def _rp_filter(step, half, in_dev, source, back):
    """Strict (1) drops a packet whose source is routed back by another device; loose (2) drops
    it only when there is no route back at all. The kernel uses max(all, interface)."""
    if not in_dev or step.ipv6:
        return
    sysctls = half.get("sysctls") or {}
    values = [_int(sysctls.get("net.ipv4.conf.all.rp_filter")), _if_sysctl(half, in_dev, "rp_filter")]
    effective = max((v for v in values if v is not None), default=None)
    if not effective:
        return
    back_dev = (back or {}).get("dev")
    step.evidence.setdefault("rp_filter", {})[in_dev] = {
        "effective": effective, "source": source, "route_back": lookup_text(source, back)}
    host = half["host"]
    if effective == 1 and back_dev != in_dev:
        step.fail(f"strict rp_filter on {host}'s {in_dev} drops packets from {source}: its route back "
                  + (f"leaves by {back_dev}" if back_dev else "does not exist"),
                  f"Use loose mode on {host}: `sysctl -w net.ipv4.conf.all.rp_filter=2 "
                  f"net.ipv4.conf.{in_dev}.rp_filter=2`, persisted with ansible.posix.sysctl (SYS001).")
    elif effective == 2 and back is None:
        step.fail(f"rp_filter on {host}'s {in_dev} drops packets from {source}: {host} has no route back to it",
                  f"Give {host} a route back to {source} (see the reply direction's steps).")


def step_node_delivers(n, node, peer, pod_ip, peer_ip):
    """Steps 4/8: the peer node forwards the packet into the pod: forwarding on the device it came
    in by, its lookup of the pod IP is the workload veth, the workload route, the veth up."""
    peer_host = peer["host"]
    pod = peer["pods"][peer_ip]
    iface = pod.get("interface")
    step = _Step(n, peer_host, f"{peer_host} delivers to pod {peer_ip} over {iface or 'its cali* veth'}: forwarding, "
                               "kernel route lookup, workload route, veth up", peer_ip)
    if peer is node:
        in_dev = node["pods"][pod_ip].get("interface")
    else:
        dev = (node["paths"][peer_ip].get("lookup") or {}).get("dev")
        target = ((node["paths"][peer_ip].get("underlay")) or {}).get("target")
        in_dev = dev if dev in TUNNEL_DEVICES else _address_dev(peer, target)
    _forwarding(step, peer, in_dev)
    lookup = peer["paths"][peer_ip].get("lookup")
    workload = pod.get("route")
    step.evidence.update(lookup=lookup_text(peer_ip, lookup),
                         workload_route=workload and _calico_view.route_text(workload))
    if not is_local_lookup(lookup) or (iface and lookup.get("dev") != iface):
        step.fail(f"{peer_host}'s lookup of {peer_ip} does not lead to the pod's veth {iface or 'cali*'}",
                  f"Felix programs `{peer_ip} dev <cali veth> scope link`: restart calico-node on {peer_host} or "
                  "recreate the pod; remove any route that shadows it.")
    elif workload is None:
        step.fail(f"{peer_host} has no workload route `{peer_ip} dev {iface} scope link`",
                  f"Restart calico-node on {peer_host} so Felix re-adds it, or recreate the pod.")
    if iface:
        problem = _link_problem(peer, iface)
        if problem:
            step.fail(problem, f"`ip link set {iface} up` on {peer_host}, or recreate the pod (its eth0 is down).")
    return step.result()


def steps(src_half, dst_half, src, dst):
    """The eight steps, in order, each judged on its own (so every broken hop is listed)."""
    a, b = src_half, dst_half
    return [
        step_pod_to_node(1, a, src, dst),
        step_node_sends(2, a, b, src, dst),
        step_peer_accepts(3, a, b, src, dst),
        step_node_delivers(4, a, b, src, dst),
        step_pod_to_node(5, b, dst, src),
        step_node_sends(6, b, a, dst, src),
        step_peer_accepts(7, b, a, dst, src),
        step_node_delivers(8, b, a, dst, src),
    ]


def _probe(half, pod_ip, peer_ip):
    pod = (half.get("pods") or {}).get(pod_ip) or {}
    probe = pod.get("probe")
    out = {"node": half["host"], "from": pod_ip, "to": peer_ip}
    if not probe:
        return {**out, "ran": False, "ok": None, "note": pod.get("note") or "no probe was asked for"}
    return {**out, **probe}


def trace(src_half, dst_half, src, dst):
    """``{"src", "dst", "src_node", "dst_node", "mode", "steps", "first_failure", "probe",
    "finding"}``; ``dst_half`` may be ``src_half`` (both pods on one node)."""
    src, dst = ip_text(src, "src"), ip_text(dst, "dst")
    result_steps = steps(src_half, dst_half, src, dst)
    first = next((s for s in result_steps if not s["ok"]), None)
    probe = {"send": _probe(src_half, src, dst), "reply": _probe(dst_half, dst, src)}
    out = {"schema_version": SCHEMA_VERSION, "src": src, "dst": dst, "src_node": src_half["host"],
           "dst_node": dst_half["host"], "mode": src_half.get("mode"), "steps": result_steps,
           "first_failure": first, "probe": probe}
    out["finding"] = _finding(out)
    return out


def _finding(result):
    src, dst, first, probe = result["src"], result["dst"], result["first_failure"], result["probe"]
    ran = [p for p in probe.values() if p.get("ran")]
    answered = any(p.get("ok") for p in ran)
    pair = f"pod {src} ({result['src_node']}) -> pod {dst} ({result['dst_node']})"
    if first:
        other = result["dst_node"] if first["node"] == result["src_node"] else result["src_node"]
        summary = f"{pair}: step {first['n']} fails on {first['node']}: {first['evidence']['problems'][0]}"
        if answered:
            summary += " (the probe still got a reply: this breaks once caches expire or routes are re-read)"
        return finding(
            "PATH001", "warning" if answered else "critical", first["node"], summary,
            {"step": first["n"], "direction": first["direction"], "check": first["check"], **first["evidence"],
             "probe": probe}, first["remedy"], peer=other if other != first["node"] else None)
    failed = [p for p in ran if not p.get("ok")]
    if not failed:
        return None
    return finding(
        "PATH001", "critical", result["src_node"],
        f"{pair}: every step passes, but the probe from {failed[0]['from']} got no reply from {failed[0]['to']}",
        {"probe": probe},
        "The routing and the kernel settings the trace reads are right, so something it does not read drops the "
        "packet: iptables/nftables rules (Calico network policy, a host firewall; seed 003 checks them at steps 2 "
        "and 3 with `iptables-save -c`), or the pod itself (its firewall, or nothing listening).",
        peer=result["dst_node"] if result["dst_node"] != result["src_node"] else None)


# --- the fleet: pick the owners, render ---------------------------------------------------------

def _half_of(value):
    """A registered calico_trace result, or a half itself -> the half (None when the host gave none)."""
    if not isinstance(value, Mapping) or value.get("failed") or value.get("unreachable"):
        return None
    half = value.get("trace") if "trace" in value else value
    return half if isinstance(half, Mapping) and "owns" in half else None


def combine(results, src, dst):
    """Every node's result ``{inventory host: registered calico_trace result | half | None}`` ->
    the trace between the nodes that own src and dst (see ``trace``), plus ``lines`` to print.
    ValueError when an address is not an IP, or no node (or two nodes) own one of them."""
    src, dst = ip_text(src, "src"), ip_text(dst, "dst")
    check_pair(src, dst)
    halves, silent = {}, []
    for host, value in (results or {}).items():
        half = _half_of(value)
        if half is None:
            silent.append(str(host))
        else:
            halves[str(host)] = {**half, "host": str(host)}
    owners = {}
    for ip, what in ((src, "src"), (dst, "dst")):
        hosts = sorted(h for h, half in halves.items() if ip in half["owns"])
        if len(hosts) > 1:
            raise ValueError(f"{what} {ip} is claimed by {', '.join(hosts)}: a pod IP must live on one node "
                             "(a duplicate workload route or block; run the fleet audit)")
        if not hosts:
            raise ValueError(
                f"no node owns {what} {ip}: none of the {len(halves)} node(s) that answered has a workload route "
                f"`{ip} dev cali* scope link` or the block holding it; is the pod running, and is its node in the "
                "inventory?" + (f" No result from: {', '.join(sorted(silent))}." if silent else ""))
        owners[what] = hosts[0]
    result = trace(halves[owners["src"]], halves[owners["dst"]], src, dst)
    result["lines"] = render(result)
    return result


def render(result):
    """The trace as lines for a person: one per step, then the probe and the verdict."""
    by_n = {s["n"]: s for s in result["steps"]}
    lines = [f"pod {result['src']} ({result['src_node']}) -> pod {result['dst']} ({result['dst_node']}), "
             f"mode {result.get('mode')}"]
    for n in range(1, 9):
        step = by_n[n]
        mark = "ok  " if step["ok"] else "FAIL"
        text = f"{step['direction']:5} {n} {mark} {step['node']}: {step['check']}"
        if not step["ok"]:
            text += " -- " + "; ".join(step["evidence"]["problems"])
        lines.append(text)
    for key in ("send", "reply"):
        p = result["probe"][key]
        verdict = ("reply" if p.get("ok") else "no reply") if p.get("ran") else f"not run ({p.get('note')})"
        lines.append(f"probe {p['from']} -> {p['to']} on {p['node']}: {verdict}")
    first = result["first_failure"]
    if first:
        lines.append(f"first failing step: {first['n']} on {first['node']}: {first['evidence']['problems'][0]}")
        lines.append(f"remedy: {first['remedy']}")
    elif result["finding"]:
        lines.append(result["finding"]["summary"])
    else:
        lines.append("all 8 steps pass")
    return lines
