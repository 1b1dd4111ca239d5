# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""What calico_routes may do with one node's route drift (pure: data in, data out).

``check_map`` validates an expected map before anything is read or written; ``plan`` keeps
the actions of ``_contract.route_drift`` that this run is allowed to take (switches, route owners,
the default route, existing devices) and says why the others are skipped; ``plan_source_routes``
plans SRC001's fix, one route per peer network with ``src`` = this node's Calico IP;
``diff`` renders the affected routes the way ``ip route`` prints them.
"""

from __future__ import annotations

import ipaddress
import math
import socket

from ansible_collections.netdoctor.calico.plugins.module_utils import _contract, _netlink
from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import BOOT, route_text

STATIC = 4  # RTPROT_STATIC: the source routes are the host's underlay routing, not Calico's
MAIN_TABLE = 254
LOCAL_TABLE = 255
KNOWN_MODES = ("ipip", "vxlan", "bgp", "wireguard", "none")
DEFAULT_PROTOCOLS = ("bird", "felix", "boot")
PROTOCOL_NUMBERS = {name: number for number, name in _netlink.PROTOCOL_NAMES.items()}
# Without max_deletes: at most 10% of the node's Calico routes, and never fewer than 50.
MAX_DELETES_SHARE, MAX_DELETES_FLOOR = 0.10, 50
PEERS_SHOWN = 20  # peers listed per source-route network; the count is always exact
_IFNAME_MAX = 15


def protocol_name(number):
    return _netlink.PROTOCOL_NAMES.get(number, str(number))


def parse_protocols(values):
    """Protocol names or numbers -> frozenset of numbers; ValueError names a bad one."""
    out = set()
    for value in values:
        text = str(value).strip().lower()
        number = int(text) if text.isdigit() else PROTOCOL_NUMBERS.get(text)
        if number is None or not 0 <= number <= 255:
            raise ValueError(f"protocols: unknown route protocol {value!r} (a name such as bird, felix, boot, "
                             "static, or a number 0-255)")
        out.add(number)
    if not out:
        raise ValueError("protocols: give at least one route protocol")
    return frozenset(out)


def owned(route, protocols):
    """Whether a route belongs to one of ``protocols``: proto boot counts only on Calico's tunnel
    devices, where nothing but Calico routes (Felix treats boot routes there as its own)."""
    protocol = route.get("protocol")
    return protocol in protocols and (protocol != BOOT or route.get("dev") in _contract.CALICO_TUNNELS)


def is_default(dst):
    return dst in (None, "default", "0.0.0.0/0", "::/0")


def route_dst(net):
    """A network as the snapshot writes a route's dst ("default" for a /0)."""
    return "default" if net.prefixlen == 0 else str(net)


# ---------------------------------------------------------------------------------------------
# The expected map


_FAMILIES = ((socket.AF_INET, 4, 32), (socket.AF_INET6, 6, 128))


def _parse(text):
    """(version, bits, packed) of an address in canonical form, else None. inet_pton rather than
    ipaddress: a 5,000-node map has 20,000 addresses to check."""
    for family, version, bits in _FAMILIES:
        try:
            packed = socket.inet_pton(family, text)
        except (OSError, TypeError):
            continue
        return (version, bits, packed) if socket.inet_ntop(family, packed) == text else None
    return None


def _ip(value, what):
    """The IP version of a canonical address (None for None); route_drift compares next hops as
    the kernel prints them, so '2001:DB8::1' would make every route look wrong."""
    if value is None:
        return None
    parsed = _parse(value) if isinstance(value, str) else None
    if parsed:
        return parsed[0]
    try:
        address = ipaddress.ip_address(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not an IP address") from None
    raise ValueError(f"{what}: write {value!r} as {str(address)!r}")


def _network(value, what):
    """(version, prefix length) of a canonical CIDR."""
    address, _slash, length = value.partition("/") if isinstance(value, str) else ("", "", "")
    parsed = _parse(address)
    if parsed and length.isdigit() and str(int(length)) == length and int(length) <= parsed[1]:
        version, bits, packed = parsed
        if not int.from_bytes(packed, "big") & ((1 << (bits - int(length))) - 1):
            return version, int(length)
    try:
        net = ipaddress.ip_network(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a network in CIDR form (address/length, host bits zero)") from None
    raise ValueError(f"{what}: write {value!r} as {str(net)!r}")


def _names(items, limit=5):
    items = sorted(items)
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_map(expected, host):
    """Validate an expected map (``_contract.expected_map``) for ``host``; ValueError says what is
    wrong. Returns the map with the optional keys route_drift reads filled in."""
    if not isinstance(expected, dict):
        raise ValueError("expected_map must be a dict (the expected_map fleet_audit returns)")
    missing = [k for k in ("mode", "blocks", "nodes") if k not in expected]
    if missing:
        raise ValueError(f"expected_map has no {', '.join(missing)}: pass the expected_map fleet_audit returns")
    mode = expected["mode"]
    if mode not in KNOWN_MODES:
        raise ValueError(f"expected_map: unknown mode {mode!r} (one of {', '.join(KNOWN_MODES)})")
    nodes, blocks = expected["nodes"], expected["blocks"]
    if not isinstance(nodes, dict) or not nodes:
        raise ValueError("expected_map: nodes must be a non-empty dict of node name -> identity")
    if not isinstance(blocks, dict):
        raise ValueError("expected_map: blocks must be a dict of block CIDR -> owner and next hop")
    if host not in nodes:
        raise ValueError(f"host {host!r} is not a node of expected_map (nodes: {_names(nodes)}); set host to "
                         "this node's name in the map")
    for name, node in nodes.items():
        if not isinstance(node, dict) or "ip" not in node:
            raise ValueError(f"expected_map: node {name!r} must be a dict with at least ip")
        for key in ("ip", "tunnel_address"):
            _ip(node.get(key), f"expected_map: node {name!r} {key}")
        if not isinstance(node.get("blocks", []), list):
            raise ValueError(f"expected_map: node {name!r} blocks must be a list")
        for cidr in node.get("blocks", []):
            _network(cidr, f"expected_map: node {name!r} block")
    field, device, onlink = _contract.ROUTE_SHAPE.get(mode, (None, None, None))
    prefixlens = set()
    for cidr, want in blocks.items():
        what = f"expected_map: block {cidr!r}"
        version, prefixlen = _network(cidr, what)
        if prefixlen == 0:
            raise ValueError(f"{what}: a block cannot be a default route")
        prefixlens.add(prefixlen)
        if not isinstance(want, dict) or not {"owner", "next_hop"} <= want.keys():
            raise ValueError(f"{what} must be a dict with owner, next_hop, device and onlink")
        owner, next_hop = want["owner"], _ip(want["next_hop"], f"{what} next_hop")
        if owner is not None and owner not in nodes:
            raise ValueError(f"{what}: owner {owner!r} is not a node of the map")
        if next_hop is not None and next_hop != version:
            raise ValueError(f"{what}: next hop {want['next_hop']} is not an IPv{version} address")
        dev = want.get("device")
        if dev is not None and (not isinstance(dev, str) or not 0 < len(dev) <= _IFNAME_MAX
                                or any(c in dev for c in "/: \t\n")):
            raise ValueError(f"{what}: device {dev!r} is not an interface name")
        if want.get("onlink") not in (None, True, False):
            raise ValueError(f"{what}: onlink must be true, false or null")
        if field is None:
            continue
        # What expected_map derives from the owner: anything else means the map was edited or mixed up.
        if owner is not None and want["next_hop"] != nodes[owner].get(field):
            raise ValueError(f"{what}: next_hop {want['next_hop']!r} is not owner {owner}'s {field} "
                             f"{nodes[owner].get(field)!r}")
        if dev != device or bool(want.get("onlink")) != bool(onlink):
            raise ValueError(f"{what}: a {mode} block route is dev {device or 'of the underlay'}"
                             f"{' onlink' if onlink else ''}, not dev {dev} onlink={want.get('onlink')}")
    given = expected.get("prefixlens")
    if given is not None and (not isinstance(given, list) or not prefixlens <= set(given)):
        raise ValueError(f"expected_map: prefixlens {given!r} must list every block length {sorted(prefixlens)}")
    pools = expected.get("pools") or []
    if not isinstance(pools, list):
        raise ValueError("expected_map: pools must be a list of CIDRs")
    for pool in pools:
        _network(pool, "expected_map: pool")
    for key in ("complete", "cross_subnet"):
        if expected.get(key) not in (None, True, False):
            raise ValueError(f"expected_map: {key} must be true or false")
    return {**expected, "prefixlens": sorted(prefixlens | set(given or ()))}


# ---------------------------------------------------------------------------------------------
# Which of route_drift's actions this run takes


def max_deletes(routes, protocols, given=None):
    """The delete bound: ``given``, else 10% of the node's routes owned by ``protocols`` (at least 50)."""
    if given is not None:
        return given
    count = sum(1 for r in routes if owned(r, protocols))
    return max(MAX_DELETES_FLOOR, math.ceil(count * MAX_DELETES_SHARE))


def _same(route, target):
    return all(route.get(k) == target.get(k) for k in ("dst", "gateway", "dev", "protocol")) and \
        route.get("type", "unicast") == target.get("type", "unicast")


def _with_metric(target, metric):
    return {**target, "metric": metric} if metric else dict(target)


def plan(drift, routes, links, *, protocols, touch_foreign=False, fix_next_hops=True, add_missing=True,
         remove_orphans=True):
    """The actions of ``drift`` (a route_drift result) this run takes, and the skipped ones.

    Returns ``(actions, skipped, replaced)``: ``actions`` in route_drift's shape (a replacement
    carries the metric of the route it replaces, so the kernel swaps that very route; a delete
    the metric of the route it removes), ``skipped`` as ``{"action", "route", "reason"}``, and
    ``replaced``: dst -> the kernel route a replacement overwrites (for the diff).
    """
    devices = {link["name"] for link in links}
    wanted = drift.get("actions") or {}
    switches = {"replace": (fix_next_hops, "fix_next_hops"), "add": (add_missing, "add_missing"),
                "delete": (remove_orphans, "remove_orphans")}
    judged = _contract.best_routes(routes, {t["dst"] for t in wanted.get("replace", ())})
    deletable = {t["dst"] for t in wanted.get("delete", ())}
    present = {}
    for route in routes:
        if route.get("dst") in deletable:
            present.setdefault(route["dst"], []).append(route)
    actions, skipped, replaced = {"add": [], "replace": [], "delete": []}, [], {}
    for verb in ("replace", "add", "delete"):
        enabled, switch = switches[verb]
        for target in wanted.get(verb, ()):
            current = None
            if verb == "replace":
                current = judged.get(target["dst"])
            elif verb == "delete":
                candidates = present.get(target["dst"], [])
                current = next((r for r in candidates if _same(r, target)), None)
                if current is not None:
                    candidates.remove(current)  # two alike orphans at different metrics are two deletes
            reason = None
            if not enabled:
                reason = f"{switch} is false"
            elif is_default(target["dst"]):
                reason = "the default route is never changed"
            elif verb != "delete" and not owned(target, protocols):
                reason = (f"writing a proto {protocol_name(target['protocol'])} route on "
                          f"{target.get('dev') or 'the underlay'} is outside protocols")
            elif verb != "delete" and target.get("dev") and target["dev"] not in devices:
                reason = f"device {target['dev']} does not exist on this node"
            elif verb != "add" and current is None:
                reason = "the route is no longer in the table"
            elif verb != "add" and not touch_foreign and not owned(current, protocols):
                reason = (f"the route there is not Calico's (proto {protocol_name(current.get('protocol'))} on "
                          f"{current.get('dev') or 'no device'}); touch_foreign is false")
            if reason:
                skipped.append({"action": verb, "route": target, "reason": reason})
                continue
            metric = (current or {}).get("metric")
            actions[verb].append(_with_metric(target, metric))
            if verb == "replace":
                replaced[target["dst"]] = current
    return actions, skipped, replaced


def delete_limit_error(actions, limit, force):
    """Why the deletes are refused (None when they are not)."""
    count = len(actions["delete"])
    if force or count <= limit:
        return None
    return (f"the plan deletes {count} routes, more than max_deletes={limit}: a map that misses nodes would do "
            "this. Check the map (every node audited, expected_map.complete), then rerun with force=true or a "
            "higher max_deletes")


def verify(actions, routes):
    """The actions that did not stick: replacements and additions not the route the kernel uses
    for their dst, deletes still in the table."""
    judged = _contract.best_routes(routes, {t["dst"] for verb in ("replace", "add") for t in actions[verb]})
    failed = []
    for verb in ("replace", "add"):
        for target in actions[verb]:
            have = judged.get(target["dst"])
            if not have or not _same(have, {**target, "dev": target.get("dev") or have.get("dev")}) \
                    or bool(have.get("onlink")) != bool(target.get("onlink")):
                failed.append({"action": verb, "route": target, "now": have and route_text(have)})
    gone = {(t["dst"], t.get("gateway"), t.get("dev"), t.get("protocol"), t.get("metric") or 0)
            for t in actions["delete"]}
    for route in routes:
        key = (route.get("dst"), route.get("gateway"), route.get("dev"), route.get("protocol"),
               route.get("metric") or 0)
        if key in gone:
            failed.append({"action": "delete", "route": route, "now": route_text(route)})
    return failed


# ---------------------------------------------------------------------------------------------
# SRC001: source routes towards the peers


def calico_interface(snapshot, calico_ip):
    """(link name, [its networks]) of the link holding ``calico_ip``; ValueError when none does."""
    names = {link["index"]: link["name"] for link in snapshot["links"]}
    for addr in snapshot["addresses"]:
        if addr.get("address") == calico_ip:
            index = addr["index"]
            nets = [ipaddress.ip_network(f"{a['address']}/{a['prefixlen']}", strict=False)
                    for a in snapshot["addresses"] if a["index"] == index]
            return names.get(index), nets
    raise ValueError(f"this node's Calico IP {calico_ip} (expected_map) is on no local interface: the peers "
                     "would drop packets from any other source. Fix the node's registered IP first (AD001), or "
                     "the host in expected_map")


class _Table:
    """Main-table routes by dst, for longest-prefix matches over the few prefix lengths in use."""

    def __init__(self, routes):
        self.by_dst = {}
        lens = {4: set(), 6: set()}
        for route in routes:
            dst = route.get("dst")
            if not dst:
                continue
            self.by_dst.setdefault(dst, []).append(route)
            lens[route.get("family", 4)].add(0 if dst == "default" else int(dst.rsplit("/", 1)[1]))
        self.lens = {v: sorted(ls, reverse=True) for v, ls in lens.items()}

    def head(self, dst, metric=None):
        """The first route at (dst, metric), the one the kernel uses; metric None: the lowest."""
        routes = self.by_dst.get("default" if is_default(dst) else dst) or ()
        if metric is None and routes:
            metric = min(map(_metric, routes))
        return next((r for r in routes if _metric(r) == metric), None)

    def match(self, address):
        """(network, route) of the longest prefix covering ``address`` (a default route's network is /0)."""
        for plen in self.lens[address.version]:
            net = ipaddress.ip_network((address, plen), strict=False)
            route = self.head("default" if plen == 0 else str(net))
            if route is not None:
                return net, route
        return None, None

    def covering_gateway(self, net, dev):
        """The gateway of the most specific single-path route on ``dev`` whose dst contains ``net``."""
        for plen in self.lens[net.version]:
            if plen > net.prefixlen:
                continue
            route = self.head("default" if plen == 0 else str(net.supernet(new_prefix=plen)))
            if route and route.get("dev") == dev and route.get("gateway") and not route.get("multipath") \
                    and route.get("type", "unicast") == "unicast":
                return route["gateway"]
        return None


def _metric(route, family=None):
    """A route's metric as the kernel keys it: IPv6 stores 0 as 1024 (IP6_RT_PRIO_USER)."""
    metric = route.get("metric") or 0
    return 1024 if not metric and (family or route.get("family", 4)) == 6 else metric


def peers(expected, host):
    """The addresses a source-route plan looks up: every other node's Calico IP of the family of
    ``host``'s, once each -> the node's name."""
    calico_ip = expected["nodes"][host].get("ip")
    if not calico_ip:
        return {}
    version = ipaddress.ip_address(calico_ip).version
    out = {}
    for name in sorted(expected["nodes"]):
        ip = expected["nodes"][name].get("ip")
        if name != host and ip and ip != calico_ip and ipaddress.ip_address(ip).version == version:
            out.setdefault(ip, name)
    return out


def _target(net, *, iface, conn, table, current, gateway, calico_ip):
    """The route to ``net`` with src = Calico IP: on the Calico interface when it reaches ``net``
    (connected, the given gateway, or a gateway route there), else the current way out, src only.
    Returns (route, None) or (None, why not)."""
    route = {"dst": route_dst(net), "family": net.version, "type": "unicast",
             "protocol": STATIC, "prefsrc": calico_ip, "onlink": False}
    if any(net.subnet_of(c) for c in conn if c.version == net.version and c.prefixlen < c.max_prefixlen):
        return {**route, "gateway": None, "dev": iface, "scope": "link"}, None
    via = gateway or table.covering_gateway(net, iface)
    if via:
        return {**route, "gateway": via, "dev": iface, "scope": "universe"}, None
    if current is None or current.get("multipath") or not current.get("dev") \
            or current.get("type", "unicast") != "unicast":
        return None, (f"no route via {iface} reaches {net} and the current one cannot carry a source "
                      "address; set source_route_gateway to a router on " + iface)
    return {**route, "gateway": current.get("gateway"), "dev": current["dev"],
            "scope": "universe" if current.get("gateway") else "link"}, None


def lookup_ok(lookup, route, calico_ip):
    """Whether the kernel's lookup for a peer leaves from the Calico IP by the route's device."""
    return bool(lookup) and lookup.get("prefsrc") == calico_ip and lookup.get("dev") == route["dev"]


def lookup_text(peer, lookup):
    if not lookup:
        return f"{peer}: no route"
    via = f" via {lookup['gateway']}" if lookup.get("gateway") else ""
    table = f" table {lookup['table']}" if lookup.get("table") not in (None, MAIN_TABLE) else ""
    return f"{peer}{via} dev {lookup.get('dev')}{table} src {lookup.get('prefsrc')}"


def plan_source_routes(snapshot, calico_ip, peer_hosts, lookups, *, gateway=None, allow_default_route=False):
    """SRC001's fix: for each network the peers are reached through, a route with ``src`` =
    ``calico_ip``, unless the kernel already picks it.

    ``peer_hosts``: peer Calico IP -> node name; ``lookups``: peer IP -> ``_netlink.route_get``
    result. A peer's network is the dst of the main-table route the kernel matches for it now
    (a connected subnet, a route to a remote subnet); a peer only the default route reaches gets
    a host route, unless ``allow_default_route`` (then the default route itself is the network).
    The route is added when nothing is at its (dst, metric), replaces our own earlier route
    (proto static, this src), and is otherwise put first at that key ("prepend") so the route it
    overrides is left as it was. Returns ``{"calico_ip", "interface", "networks": [...],
    "ok_peers", "unresolved": [{"peer", "host", "reason"}]}``.
    """
    iface, conn = calico_interface(snapshot, calico_ip)
    if gateway is not None:
        via = ipaddress.ip_address(gateway)
        if not any(via in c for c in conn if c.version == via.version):
            raise ValueError(f"source_route_gateway {gateway} is not on {iface}'s networks "
                             f"({', '.join(str(c) for c in conn)})")
    table = _Table(snapshot["routes"])
    groups, unresolved, ok = {}, [], 0
    for peer, host in peer_hosts.items():
        lookup = lookups.get(peer)
        if lookup and lookup.get("table") not in (None, MAIN_TABLE):
            if lookup.get("prefsrc") == calico_ip and lookup["table"] != LOCAL_TABLE:
                ok += 1  # policy routing of the admin's, already with the right source
                continue
            why = ("is an address of this node" if lookup["table"] == LOCAL_TABLE else
                   f"is looked up in table {lookup['table']} (a policy rule): a main-table route cannot change it")
            unresolved.append({"peer": peer, "host": host, "reason": f"{peer} {why}"})
            continue
        address = ipaddress.ip_address(peer)
        net, current = table.match(address)
        if net is None or (net.prefixlen == 0 and not allow_default_route):
            net = ipaddress.ip_network(address)  # a host route; the default route's way out is the fallback
        key = route_dst(net)
        if key not in groups:
            route, why = _target(net, iface=iface, conn=conn, table=table, current=current, gateway=gateway,
                                 calico_ip=calico_ip)
            same_key = current is not None and current.get("dst") == route_dst(net)
            if route and same_key and current.get("metric"):
                route["metric"] = current["metric"]
            groups[key] = {"route": route, "why": why, "peers": [], "lookups": []}
        group = groups[key]
        if group["route"] is None:
            unresolved.append({"peer": peer, "host": host, "reason": group["why"]})
        elif lookup_ok(lookup, group["route"], calico_ip):
            ok += 1
        else:
            group["peers"].append(peer)
            if len(group["lookups"]) < PEERS_SHOWN:
                group["lookups"].append(lookup_text(peer, lookup))
    networks = []
    for key, group in groups.items():
        if not group["peers"]:
            continue
        route = group["route"]
        head = table.head(route["dst"], _metric(route, route["family"]))
        if head is None:
            action = "add"
        elif head.get("protocol") == STATIC and head.get("prefsrc") == calico_ip:
            action = "replace"
        else:
            action = "prepend"
        networks.append({
            "network": key, "action": action, "route": route,
            "replaces": head if action == "replace" else None, "overrides": head if action == "prepend" else None,
            "peer_count": len(group["peers"]), "peers": group["peers"][:PEERS_SHOWN],
            "hosts": [peer_hosts[p] for p in group["peers"][:PEERS_SHOWN]],
            "before": group["lookups"],
        })
    networks.sort(key=lambda n: _sort_key(n["network"]))
    return {"calico_ip": calico_ip, "interface": iface, "networks": networks, "ok_peers": ok,
            "unresolved": unresolved}


# ---------------------------------------------------------------------------------------------
# Diff


def _sort_key(dst):
    if is_default(dst):
        return (0, 0, b"")
    net = ipaddress.ip_network(dst, strict=False)
    return (net.version, 1, net.network_address.packed, net.prefixlen)


def diff(actions, replaced, source=None):
    """``{"before", "after"}``: the affected routes as ``ip route`` prints them, one per line,
    by destination; a prepended source route is shown above the route it now overrides."""
    before, after = [], []
    for target in actions["replace"]:
        old = replaced.get(target["dst"])
        if old:
            before.append((target["dst"], route_text(old)))
        after.append((target["dst"], route_text(target)))
    for target in actions["add"]:
        after.append((target["dst"], route_text(target)))
    for target in actions["delete"]:
        before.append((target["dst"], route_text(target)))
    for net in (source or {}).get("networks") or ():
        dst = net["route"]["dst"]
        if net["replaces"]:
            before.append((dst, route_text(net["replaces"])))
        after.append((dst, route_text(net["route"])))
        if net["overrides"]:
            before.append((dst, route_text(net["overrides"])))
            after.append((dst, route_text(net["overrides"])))

    def text(lines):
        ordered = sorted(enumerate(lines), key=lambda item: (_sort_key(item[1][0]), item[0]))
        return "".join(line + "\n" for _i, (_dst, line) in ordered)

    return {"before": text(before), "after": text(after)}
