# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Does the host's nftables ruleset let Calico's flows through between this node and its Calico
peers - BGP (TCP/179), IPIP (IP protocol 4), VXLAN (UDP/4789), WireGuard (UDP/51820, 51821),
Typha (TCP/5473) - and which rules stop them (BGP001's and FW001's firewall fix; pure: data in,
data out).

``parse`` indexes ``nft -j list ruleset``; ``flow`` describes one of Calico's flows (``FLOWS``);
``flow_packets`` gives the packets of that flow with each peer as this node's hooks see them
(``packets`` is BGP's); ``evaluate`` follows each through every input/output base chain and names
the rules (or policies) that drop them; ``plan`` gives the changes and the ``nft -f`` commands that
put scoped accept rules, marked with the flow's ``marker`` (BGP's is ``MARKER``), at the head of
each chain that blocks; ``simulate`` applies changes to a parsed ruleset (check mode's
prediction); ``render_rule`` and ``chains_text`` print rules roughly as ``nft list ruleset`` does.
firewalld's own table (``inet firewalld``) is judged like any other and its zone named
(``firewalld_zone``), but never changed: firewalld rewrites it at every reload, so its fix is
``firewall-cmd`` (``firewalld_commands``).

Evaluation is three-valued: a match is True, False or None (cannot tell: interfaces, marks,
rate limits, iptables-nft ``xt`` matches, ...). A drop that may match is reported with
``certain: False``; an accept that may match is assumed not to (so BGP is fixed even when it
would have matched), and what blocks after it is not certain either.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re

MARKER = "netdoctor.calico: BGP with Calico peers"
MARKER_PREFIX = "netdoctor.calico: "
HOOKS = ("input", "output")
FAMILIES = {"ip": (4,), "ip6": (6,), "inet": (4, 6)}
# nat chains see only a connection's first packet and do not filter.
CHAIN_TYPES = ("filter", "route")
MAX_DEPTH = 16  # the kernel's jump stack (NFT_JUMP_STACK_SIZE)
EPHEMERAL = ("n", 1024, 65535)  # the port of the side that opened the connection: some unprivileged port
TCP = ("n", 6, 6)
IFACE = ("if", None, None)  # the packet's interface: unknown, but never lo (a peer is another host)
UDP = ("n", 17, 17)
IPIP = ("n", 4, 4)
# /etc/protocols names nft prints: 4 is "ipencap" (IP-in-IP, what Calico's IPIP uses); "ipip" is 94
# (the protocol cloud security groups are wrongly opened for, calico#1215).
PROTOCOLS = {"icmp": 1, "igmp": 2, "ipencap": 4, "ipv4": 4, "tcp": 6, "dccp": 33, "udp": 17, "gre": 47, "esp": 50,
             "ah": 51, "icmpv6": 58, "ipv6-icmp": 58, "ipip": 94, "sctp": 132, "udplite": 136}
# Matching a field of one of these headers implies that protocol (nft adds the dependency).
HEADERS = ("tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "igmp", "esp", "ah", "comp", "gre")
# Linux's VXLAN source ports: the local port range by default (net.ipv4.ip_local_port_range).
VXLAN_SPORTS = ("n", 32768, 60999)

# Calico's flows between nodes (docs: requirements, network requirements). kind:
#   session   - a TCP connection either side may open: the opener's SYN to the port and its answers
#   datagram  - UDP to the port from a source port that changes (VXLAN): every packet is ct state new
#   symmetric - UDP from the port to the port (WireGuard): the first packet new, the rest established
#   protocol  - an IP protocol without ports (IPIP): the first packet new, the rest established
FLOWS = {
    "bgp": {"label": "BGP", "proto": "tcp", "port": 179, "kind": "session", "versions": (4, 6)},
    "ipip": {"label": "IPIP", "proto": "ipencap", "port": None, "kind": "protocol", "versions": (4,)},
    "vxlan": {"label": "VXLAN", "proto": "udp", "port": 4789, "kind": "datagram", "versions": (4,)},
    "vxlan-v6": {"label": "VXLAN IPv6", "proto": "udp", "port": 4789, "kind": "datagram", "versions": (6,)},
    "wireguard": {"label": "WireGuard", "proto": "udp", "port": 51820, "kind": "symmetric", "versions": (4,)},
    "wireguard-v6": {"label": "WireGuard IPv6", "proto": "udp", "port": 51821, "kind": "symmetric",
                     "versions": (6,)},
    "typha": {"label": "Typha", "proto": "tcp", "port": 5473, "kind": "session", "versions": (4, 6)},
}
VERDICTS = ("accept", "drop", "reject", "queue", "jump", "goto", "return", "continue")
# Statements that never decide whether a rule matches; any other non-verdict (limit, quota, xt, ...) may.
NEUTRAL = ("counter", "log", "mangle", "set", "map", "notrack", "dup")
NOMATCH = object()
_BARE_META = ("iif", "oif", "iifname", "oifname", "iiftype", "oiftype")


def felix_owned(family, table, chain=""):
    """Felix's nftables table (``ip``/``ip6`` ``calico``) or its iptables-nft chains (``cali-*``).

    Felix rewrites them and lets BGP through itself (its failsafe ports include tcp:179 both ways),
    so they are neither judged nor changed; a jump into a ``cali-`` chain is passed over.
    """
    return (family in ("ip", "ip6") and table == "calico") or chain.startswith("cali-")


# --- input ---------------------------------------------------------------------------------------


def flow(name, port=None):
    """One of ``FLOWS`` with its port (``port`` overrides the default: FelixConfiguration's vxlanPort,
    wireguardListeningPort, BGPConfiguration's listenPort) and the marker of its accept rules."""
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r} (one of {', '.join(FLOWS)})")
    out = dict(FLOWS[name], name=name)
    if port is not None and out["port"] is not None:
        out["port"] = port
    out["marker"] = MARKER if name == "bgp" else f"{MARKER_PREFIX}{out['label']} with Calico peers"
    out["l4"] = ("n", PROTOCOLS[out["proto"]], PROTOCOLS[out["proto"]])
    return out


def is_ours(rule):
    """A rule this collection put there (any flow's marker)."""
    return str(rule.get("comment") or "").startswith(MARKER_PREFIX)


def check_params(peers, port, local=(), state="present"):
    """(peers, local) as ``ipaddress`` objects, peers unique and sorted; ValueError names every bad value."""
    errors = []

    def address(value, what):
        try:
            ip = ipaddress.ip_address(str(value).strip())
        except ValueError:
            errors.append(f"{what}: {value!r} is not an IP address")
            return None
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
            errors.append(f"{what}: {ip} is not a node's address")
            return None
        return ip

    mine = [ip for ip in (address(a, "local_addresses") for a in local or ()) if ip]
    found = {ip for ip in (address(p, "peers") for p in peers or ()) if ip}
    if state == "present" and not peers:
        errors.append("peers: give the Calico IP of at least one other node")
    if not 1 <= port <= 65535:
        errors.append(f"port: {port} is not a TCP port (1-65535)")
    if len({ip.version for ip in mine}) != len(mine):
        errors.append("local_addresses: at most one IPv4 and one IPv6 address")
    errors += [f"peers: {ip} is this node's own address" for ip in sorted(found & set(mine), key=_order)]
    if errors:
        raise ValueError("; ".join(errors))
    return sorted(found, key=_order), mine


def _order(ip):
    return ip.version, int(ip)


def parse(doc):
    """Index the decoded ``nft -j list ruleset``: chains (with their rules in order) and sets/maps,
    both keyed by (family, table, name)."""
    items = doc.get("nftables", [])
    chains, sets = {}, {}
    for item in items:
        if "chain" in item:
            c = item["chain"]
            chains[(c["family"], c["table"], c["name"])] = {
                "family": c["family"], "table": c["table"], "chain": c["name"], "hook": c.get("hook"),
                "type": c.get("type"), "prio": c.get("prio"), "policy": c.get("policy", "accept"), "rules": []}
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            sets[(s["family"], s["table"], s["name"])] = s.get("elem", [])
    for item in items:
        r = item.get("rule")
        if r and (r["family"], r["table"], r["chain"]) in chains:
            chains[(r["family"], r["table"], r["chain"])]["rules"].append(
                {"handle": r.get("handle"), "expr": r.get("expr", []), "comment": r.get("comment")})
    return {"chains": chains, "sets": sets}


def _key(chain):
    return chain["family"], chain["table"], chain["chain"]


# --- the packets and the kernel's walk -----------------------------------------------------------


def _addr(ip):
    return f"ip{ip.version}", int(ip), int(ip)


def _symbol(name):
    return "s", name, name


# How each packet is described in the records.
_WHAT = {("input", True): "from {peer} to port {port}", ("input", False): "from {peer} port {port} (answer)",
         ("output", True): "to {peer} port {port}", ("output", False): "to {peer} from port {port} (answer)"}
_WHAT_OTHER = {
    "datagram": {("input", True): "{label} from {peer} to port {port}",
                 ("output", True): "{label} to {peer} port {port}"},
    "symmetric": {("input", True): "{label} from {peer} port {port} to port {port}",
                  ("input", False): "{label} from {peer} port {port} to port {port} (established)",
                  ("output", True): "{label} to {peer} port {port} from port {port}",
                  ("output", False): "{label} to {peer} port {port} from port {port} (established)"},
    "protocol": {("input", True): "{label} from {peer}", ("input", False): "{label} from {peer} (established)",
                 ("output", True): "{label} to {peer}", ("output", False): "{label} to {peer} (established)"},
}


def packets(peers, port=179, local=()):
    """The packets of a BGP session with each peer as this node's hooks see them.

    Input: the peer's SYN to ``port`` and the answer to our SYN; output: our SYN and our answer.
    A connection's first packet is ``ct state new``, an answer ``established`` (conntrack has seen
    the SYN). Values are items (kind, low, high); this node's address is unknown (None) unless given.
    """
    return flow_packets(flow("bgp", port), peers, local)


def flow_packets(spec, peers, local=()):
    """The packets of one flow (``flow()``) with each peer as this node's input and output hooks see
    them. session: as ``packets``; datagram: one packet each way to the port from a changing source
    port, always ``ct state new`` (VXLAN's source port changes, so conntrack never sees an answer);
    symmetric: port to port each way, new and established; protocol: no ports, new and established."""
    mine = {ip.version: _addr(ip) for ip in local}
    port, kind = spec["port"], spec["kind"]
    fixed = ("n", port, port) if port is not None else None
    out = []
    for peer in peers:
        if peer.version not in spec["versions"]:
            continue
        them, me = _addr(peer), mine.get(peer.version)
        for hook in HOOKS:
            inbound = hook == "input"
            for first in (True, False) if kind != "datagram" else (True,):
                fields = {"meta l4proto": spec["l4"], "meta nfproto": _symbol(f"ipv{peer.version}"),
                          "ct state": _symbol("new" if first else "established"),
                          "ct direction": _symbol("original" if first else "reply")}
                for name in ("iif", "iifname") if inbound else ("oif", "oifname"):
                    fields["meta " + name] = IFACE
                if kind == "session":
                    what = _WHAT[hook, first].format(peer=peer, port=port)
                    sport, dport = (EPHEMERAL, fixed) if first else (fixed, EPHEMERAL)
                else:
                    what = _WHAT_OTHER[kind][hook, first].format(peer=peer, port=port, label=spec["label"])
                    sport = {"datagram": VXLAN_SPORTS, "symmetric": fixed}.get(kind)
                    dport = fixed
                out.append({"family": peer.version, "hook": hook, "what": what, "l4name": spec["proto"],
                            "saddr": them if inbound else me, "daddr": me if inbound else them,
                            "sport": sport, "dport": dport, "fields": fields})
    return out


def _any(results):
    out = False
    for result in results:
        if result:
            return True
        if result is None:
            out = None
    return out


def _all(results):
    out = True
    for result in results:
        if result is False:
            return False
        if result is None:
            out = None
    return out


def _item(element):
    """A set element or right-hand value as (kind, low, high): kind ip4/ip6/n (intervals) or s (a
    symbol); a list for a concatenation; None when not understood."""
    if isinstance(element, dict):
        if "elem" in element:
            return _item(element["elem"].get("val"))
        if "prefix" in element:
            try:
                net = ipaddress.ip_network(f"{element['prefix']['addr']}/{element['prefix']['len']}", strict=False)
            except (ValueError, KeyError, TypeError):
                return None
            return f"ip{net.version}", int(net.network_address), int(net.broadcast_address)
        if "range" in element:
            low, high = (_item(e) for e in element["range"])
            return (low[0], low[1], high[2]) if low and high and low[0] == high[0] != "s" else None
        if "concat" in element:
            return [_item(e) for e in element["concat"]]
        return None
    if isinstance(element, int) and not isinstance(element, bool):
        return "n", element, element
    if not isinstance(element, str):
        return None
    try:
        return _addr(ipaddress.ip_address(element))
    except ValueError:
        pass
    if element.isdigit():
        return "n", int(element), int(element)
    name = element.lower()
    return ("n", PROTOCOLS[name], PROTOCOLS[name]) if name in PROTOCOLS else ("s", name, name)


def _value(left, pkt):
    """What the packet holds for a match's left-hand side: an item, a list (concatenation), None
    when unknown, or NOMATCH when the match implies another protocol or address family."""
    if not isinstance(left, dict):
        return None
    if "concat" in left:
        parts = [_value(e, pkt) for e in left["concat"]]
        return NOMATCH if any(p is NOMATCH for p in parts) else parts
    if "payload" in left:
        proto, field = left["payload"].get("protocol"), left["payload"].get("field")
        if proto in ("ip", "ip6"):
            if proto != ("ip" if pkt["family"] == 4 else "ip6"):
                return NOMATCH
            if field in ("saddr", "daddr"):
                return pkt[field]
            return pkt["fields"]["meta l4proto"] if field in ("protocol", "nexthdr") else None
        if proto == "th" or proto == pkt.get("l4name", "tcp"):
            return pkt.get(field) if field in ("sport", "dport") else None
        return NOMATCH if proto in HEADERS else None
    for kind in ("meta", "ct"):
        if isinstance(left.get(kind), dict) and "dir" not in left[kind]:
            return pkt["fields"].get(f"{kind} {left[kind].get('key')}")
    return None


def _test(value, item):
    """Whether the packet's value lies in one element: True, False or None (cannot tell)."""
    if value is NOMATCH:
        return False
    if value is None or item is None:
        return None
    if isinstance(value, list) or isinstance(item, list):
        if not (isinstance(value, list) and isinstance(item, list) and len(value) == len(item)):
            return None
        return _all(_test(v, i) for v, i in zip(value, item))
    (kind, low, high), (other, first, last) = value, item
    if kind == "if":
        return False if item == ("s", "lo", "lo") else None
    if kind != other:
        # a name nft did not print as a number (a service, a protocol not listed) may still be one
        return None if "s" in (kind, other) else False
    if kind == "s":
        return low == first
    if first <= low and high <= last:
        return True
    return None if first <= high and low <= last else False


def _elements(rs, chain, right):
    """The elements of a right-hand side: a named set or map (``@name``), an anonymous set, flags, a value."""
    if isinstance(right, str) and right.startswith("@"):
        return rs["sets"].get((chain["family"], chain["table"], right[1:]), [])
    if isinstance(right, dict) and "set" in right:
        return right["set"] if isinstance(right["set"], list) else [right["set"]]
    return right if isinstance(right, list) else [right]


def _match(rs, chain, match, pkt):
    value, op, right = _value(match.get("left"), pkt), match.get("op"), match.get("right")
    if value is NOMATCH:
        return False
    if op in ("==", "!=", "in"):
        hit = _any(_test(value, _item(e)) for e in _elements(rs, chain, right))
        return (None if hit is None else not hit) if op == "!=" else hit
    if isinstance(right, int) and op in ("<", "<=", ">", ">="):
        bounds = (0, right - (op == "<")) if op[0] == "<" else (right + (op == ">"), 2 ** 128)
        return _test(value, ("n", *bounds))
    return None


def _branches(rs, chain, rule, pkt):
    """The verdicts the rule may give the packet, in order, as (hit, verdict statement): hit True when
    it surely applies, None when it may. A verdict map gives one pair per element that may match."""
    hit = True
    for stmt in rule["expr"]:
        kind, body = next(iter(stmt.items()))
        if kind == "match":
            hit = _all((hit, _match(rs, chain, body, pkt)))
            if hit is False:
                return []
        elif kind == "vmap":
            value, out = _value(body.get("key"), pkt), []
            for key, verdict in _elements(rs, chain, body.get("data")):
                branch = _all((hit, _test(value, _item(key))))
                if branch is not False:
                    out.append((branch, verdict))
                if branch:
                    break
            return out
        elif kind in VERDICTS:
            return [(hit, stmt)]
        elif kind not in NEUTRAL and not (kind == "xt" and body.get("name") == "comment"):
            hit = _all((hit, None))
    return []


def _walk(rs, chain, pkt, sure, *, skip, depth, found):
    """Follow the packet through one chain as the kernel does. Returns ("accept" | "block" | None
    when it falls off the end or returns, whether the packet surely gets to that point); appends
    (chain, rule, certain) to ``found`` for every rule that drops or may drop it."""
    for rule in chain["rules"]:
        if skip is not None and rule["comment"] == skip:
            continue
        for hit, verdict in _branches(rs, chain, rule, pkt):
            kind = next(iter(verdict))
            if kind == "accept":
                if hit:
                    return "accept", sure
                sure = False  # it may have let the packet through: nothing after it blocks for certain
            elif kind in ("drop", "reject", "queue"):
                # queue: a userspace program decides, which may block
                found.append((chain, rule, bool(sure and hit) and kind != "queue"))
                if hit:
                    return "block", sure
            elif kind in ("jump", "goto"):
                target = verdict[kind].get("target", "")
                if felix_owned(chain["family"], chain["table"], target):
                    continue
                sub = rs["chains"].get((chain["family"], chain["table"], target))
                if sub is None or depth >= MAX_DEPTH:
                    sure = False
                    continue
                result, after = _walk(rs, sub, pkt, bool(sure and hit), skip=skip, depth=depth + 1, found=found)
                if not hit:
                    sure = False  # it may or may not have jumped
                elif result or kind == "goto":
                    return result, after
                else:
                    sure = after
            elif kind == "return":
                if hit:
                    return None, sure
                sure = False
    return None, sure


def base_chains(rs):
    """The chains that decide BGP's fate: input and output hooks of ip/ip6/inet filter (and route)
    chains, Felix's excepted. Each is a separate verdict: a packet passes only if every one accepts it."""
    return [c for c in rs["chains"].values()
            if c["hook"] in HOOKS and c["family"] in FAMILIES and c["type"] in CHAIN_TYPES
            and not felix_owned(c["family"], c["table"])]


def evaluate(rs, pkts, skip_ours=False):
    """{(family, table, base chain): [record]} for each base chain that blocks or may block a packet.

    A record: family, table, chain (holding the rule), base_chain, hook, handle (None for the
    policy), rule (text), certain, packets (what it blocks, in words); in firewalld's table also
    ``firewalld_zone`` (the zone whose chain holds the rule, None when the rule is not a zone's).
    ``skip_ours`` leaves out the rules with a marker: True for BGP's, or the marker itself.
    """
    skip = MARKER if skip_ours is True else (skip_ours or None)
    out = {}
    for base in base_chains(rs):
        records = {}
        for pkt in pkts:
            if pkt["hook"] != base["hook"] or pkt["family"] not in FAMILIES[base["family"]]:
                continue
            found = []
            result, sure = _walk(rs, base, pkt, True, skip=skip, depth=0, found=found)
            if result is None and base["policy"] == "drop":
                found.append((base, None, sure))
            for chain, rule, certain in found:
                handle = rule["handle"] if rule else None
                record = records.setdefault((chain["chain"], handle), {
                    "family": base["family"], "table": base["table"], "chain": chain["chain"],
                    "base_chain": base["chain"], "hook": base["hook"], "handle": handle,
                    "rule": render_rule(rule) if rule else "policy drop", "certain": False, "packets": []})
                if firewalld_owned(base["family"], base["table"]):
                    record["firewalld_zone"] = firewalld_zone(chain["chain"])
                record["certain"] = record["certain"] or certain
                if pkt["what"] not in record["packets"]:
                    record["packets"].append(pkt["what"])
        if records:
            out[_key(base)] = list(records.values())
    return out


def blocking_by_peer(doc, peers, local=(), port=179, spec=None):
    """{peer: [record]}: what in the decoded ``nft -j list ruleset`` (or an already ``parse``d one)
    drops a flow (``spec``, default BGP on ``port``) with each peer ([]: it lets it through) - the
    node facts' evidence for BGP001 and FW001. ValueError names a bad address."""
    spec = spec or flow("bgp", port)
    peers, local = check_params(peers, spec["port"] or 1, local)
    rs = doc if "chains" in doc and "sets" in doc else parse(doc)
    return {str(peer): [r for records in evaluate(rs, flow_packets(spec, [peer], local)).values() for r in records]
            for peer in peers if peer.version in spec["versions"]}


# --- firewalld ---------------------------------------------------------------------------------------

FIREWALLD_TABLE = ("inet", "firewalld")
_ZONE_CHAIN = re.compile(r"^filter_(?:IN|FWD)_(?!POLICIES)(?:policy_)?(.+?)(?:_(?:pre|log|deny|allow|post))?$")


def firewalld_owned(family, table):
    """firewalld's nftables table: firewalld rewrites it on every reload (and may own it: another
    program cannot change it), so it is judged but never changed; the fix goes through firewall-cmd."""
    return (family, table) == FIREWALLD_TABLE


def firewalld_zone(chain):
    """The zone (or policy) whose chain this is in firewalld's table (``filter_IN_public_deny`` ->
    ``public``), None for firewalld's base and dispatch chains."""
    match = _ZONE_CHAIN.match(chain or "")
    return match.group(1) if match else None


def firewalld_commands(spec, peers, zone=None):
    """firewall-cmd commands that let one flow in from the peers: one rich rule per peer in the zone
    (the default zone when None), permanent, then a reload (firewalld's own order)."""
    where = f" --zone={zone}" if zone else ""
    out = []
    for peer in peers:
        family = "ipv4" if peer.version == 4 else "ipv6"
        if peer.version not in spec["versions"]:
            continue
        what = (f'protocol value="{PROTOCOLS[spec["proto"]]}"' if spec["port"] is None
                else f'port port="{spec["port"]}" protocol="{spec["proto"]}"')
        out.append(f"firewall-cmd --permanent{where} --add-rich-rule='rule family=\"{family}\" "
                   f"source address=\"{peer}\" {what} accept'")
    return [*out, "firewall-cmd --reload"] if out else []


# --- the plan ------------------------------------------------------------------------------------


def iptables_nft(chain):
    """An iptables-nft chain (``INPUT``/``OUTPUT`` of an ip/ip6 table). iptables-nft-save cannot print
    an anonymous set and silently leaves the address match out (``-p tcp --dport 179 -j ACCEPT``:
    BGP from anyone after a save/restore), so such chains get one rule per peer, which it prints."""
    return chain["family"] in ("ip", "ip6") and chain["chain"] in ("INPUT", "OUTPUT")


def our_rules(chain, peers, port):
    """Our accept rules for BGP in one base chain: for each address family the chain sees, from
    (input) or to (output) the peers, towards the BGP port and from it."""
    return flow_rules(chain, flow("bgp", port), peers)


def _flow_matches(spec):
    """The protocol/port matches of one accept rule each (session: to the port and from it)."""
    if spec["port"] is None:
        return [[{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": PROTOCOLS[spec["proto"]]}}]]
    fields = ("dport", "sport") if spec["kind"] == "session" else ("dport",)
    return [[{"match": {"op": "==", "left": {"payload": {"protocol": spec["proto"], "field": f}},
                        "right": spec["port"]}}] for f in fields]


def flow_rules(chain, spec, peers):
    """Our accept rules for one flow in one base chain: for each address family the chain and the
    flow see, from (input) or to (output) the peers, then the flow's protocol and port."""
    field = "saddr" if chain["hook"] == "input" else "daddr"
    rules = []
    for version, proto in ((4, "ip"), (6, "ip6")):
        addresses = [str(p) for p in peers if p.version == version]
        if not addresses or version not in FAMILIES.get(chain["family"], ()) or version not in spec["versions"]:
            continue
        # one address: nft lists a one-element set as the plain value
        groups = [[a] for a in addresses] if iptables_nft(chain) else [addresses]
        for group in groups:
            right = group[0] if len(group) == 1 else {"set": group}
            for matches in _flow_matches(spec):
                rules.append({"handle": None, "comment": spec["marker"], "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": field}}, "right": right}},
                    *matches, {"accept": None}]})
    return rules


def _jumps_to_felix(rule):
    return any(isinstance(s.get(k), dict) and str(s[k].get("target", "")).startswith("cali-")
               for s in rule["expr"] for k in ("jump", "goto"))


def _canon(value):
    """Text identity of an expression: anonymous sets sorted, a one-element set as its element, a
    protocol name nft prints (``ipencap``) as its number."""
    if isinstance(value, dict):
        left = value.get("left") if isinstance(value.get("left"), dict) else {}
        if (left.get("meta") or {}).get("key") == "l4proto" and str(value.get("right")).lower() in PROTOCOLS:
            value = dict(value, right=PROTOCOLS[str(value["right"]).lower()])
        if isinstance(value.get("set"), list):
            elements = sorted(_canon(e) for e in value["set"])
            return elements[0] if len(elements) == 1 else "{" + ",".join(elements) + "}"
        return "{" + ",".join(f"{k}:{_canon(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canon(v) for v in value) + "]"
    return json.dumps(value)


def plan(rs, peers, port=179, local=(), state="present", spec=None):  # noqa: PLR0917 - BGP's positional API
    """What to change so the flow (``spec``, default BGP on ``port``) passes (``present``) or its
    rules are gone (``absent``).

    Present: every base chain that blocks any packet of any peer (judged without the flow's own
    rules) must start with exactly ``flow_rules``, other flows' marked rules aside; the flow's rules
    anywhere else are deleted. firewalld's table is never changed (``refused``). Returns blocking
    (the records of the ruleset as it is), changes ([{family, table, chain, delete: [handle],
    insert: [rule]}]) and actions (the ``nft -f`` commands, one batch).
    """
    spec = spec or flow("bgp", port)
    marker = spec["marker"]
    pkts = flow_packets(spec, peers, local)
    need = evaluate(rs, pkts, skip_ours=marker) if state == "present" else {}
    changes = []
    for key, chain in rs["chains"].items():
        ours = [r for r in chain["rules"] if r["comment"] == marker]
        want = flow_rules(chain, spec, peers) if key in need and not firewalld_owned(*key[:2]) else []
        # Felix keeps its jump above every other rule of an iptables-nft chain: not ours to compete
        # with; nor are another flow's rules (each flow keeps its own at the head).
        head = [r for r in chain["rules"] if not _jumps_to_felix(r)
                and not (is_ours(r) and r["comment"] != marker)][:len(want)]
        if len(ours) == len(want) and [(_canon(r["expr"]), r["comment"]) for r in head] == \
                [(_canon(r["expr"]), r["comment"]) for r in want]:
            continue
        changes.append({"family": chain["family"], "table": chain["table"], "chain": chain["chain"],
                        "delete": [r["handle"] for r in ours], "insert": want})
    return {"blocking": [r for records in evaluate(rs, pkts).values() for r in records],
            "changes": changes, "actions": actions(changes)}


def actions(changes):
    """The nft commands for the changes, for one ``nft -f -`` batch (applied atomically)."""
    out = []
    for change in changes:
        where = f"{change['family']} {change['table']} {change['chain']}"
        out += [f"delete rule {where} handle {handle}" for handle in change["delete"]]
        # each insert goes to the head of the chain: the last rule first
        out += [f"insert rule {where} {render_rule(rule)}" for rule in reversed(change["insert"])]
    return out


def simulate(rs, changes):
    """The ruleset after the changes, as check mode predicts it (inserted rules have no handle)."""
    out = copy.deepcopy(rs)
    for change in changes:
        chain = out["chains"][_key(change)]
        chain["rules"] = copy.deepcopy(change["insert"]) + [
            r for r in chain["rules"] if r["handle"] not in change["delete"]]
    return out


# --- text ----------------------------------------------------------------------------------------


def render(value):
    """nft-like text for a value or an expression; JSON for what it does not know."""
    if isinstance(value, list):
        return ",".join(render(v) for v in value)
    if not isinstance(value, dict):
        return str(value)
    kind, body = next(iter(value.items()))
    if len(value) == 1 and isinstance(body, dict):
        if kind == "prefix":
            return f"{render(body.get('addr'))}/{body.get('len')}"
        if kind == "payload":
            if "protocol" in body:
                return f"{body['protocol']} {body.get('field')}"
            return f"@{body.get('base')},{body.get('offset')},{body.get('len')}"
        if kind == "meta":
            return body.get("key") if body.get("key") in _BARE_META else f"meta {body.get('key')}"
        if kind == "ct":
            return " ".join(str(p) for p in ("ct", body.get("dir"), body.get("key")) if p)
        if kind == "elem":
            return render(body.get("val"))
    if len(value) == 1 and isinstance(body, list):
        if kind == "set":
            return "{ " + ", ".join(f"{render(e[0])} : {render_stmt(e[1])}" if isinstance(e, list) else render(e)
                                    for e in body) + " }"
        if kind == "range":
            return "-".join(render(e) for e in body)
        if kind == "concat":
            return " . ".join(render(e) for e in body)
        if kind in ("&", "|", "^", "<<", ">>"):
            return f" {kind} ".join(render(e) for e in body)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def render_stmt(stmt):
    kind, body = next(iter(stmt.items()))
    if body is None:
        return kind
    if kind == "match":
        left, right = body.get("left"), body.get("right")
        text = f'"{right}"' if isinstance(right, str) and render(left) in ("iifname", "oifname") else render(right)
        op = "" if body.get("op") in ("==", "in") else f"{body.get('op')} "
        return f"{render(left)} {op}{text}"
    if kind in ("jump", "goto"):
        return f"{kind} {body.get('target')}"
    if kind == "reject":
        return " ".join(str(p) for p in ("reject", "with" if body.get("type") else None, body.get("type"),
                                         body.get("expr")) if p)
    if kind == "vmap":
        return f"{render(body.get('key'))} vmap {render(body.get('data'))}"
    if kind == "counter":
        return "counter"  # without the numbers: they change with every packet
    if kind == "limit":
        return f"limit rate {'over ' if body.get('inv') else ''}{body.get('rate')}/{body.get('per')}"
    if kind == "log":
        return f'log prefix "{body["prefix"]}"' if "prefix" in body else "log"
    if kind == "xt":
        return f'xt {body.get("type")} "{body.get("name")}"'
    if kind == "mangle":
        return f"{render(body.get('key'))} set {render(body.get('value'))}"
    return f"{kind} {json.dumps(body, sort_keys=True, separators=(',', ':'))}"


def render_rule(rule):
    """One rule as nft lists it (roughly), without counter values or handle."""
    text = " ".join(render_stmt(s) for s in rule["expr"])
    return text + (f' comment "{rule["comment"]}"' if rule.get("comment") else "")


def chain_rules(rs, changes):
    """[{family, table, chain, handle, rule}] for every rule of the changed chains, in order."""
    return [{"family": c["family"], "table": c["table"], "chain": c["chain"], "handle": r["handle"],
             "rule": render_rule(r)} for c in changes for r in rs["chains"].get(_key(c), {"rules": []})["rules"]]


def chains_text(rs, changes):
    """The changed chains as text for a diff: a header per chain, then its rules (no handles, no counters)."""
    lines = []
    for key in map(_key, changes):
        chain = rs["chains"].get(key)
        if chain is None:
            continue
        hook = (f"  # type {chain['type']} hook {chain['hook']} priority {chain['prio']} policy {chain['policy']}"
                if chain["hook"] else "")
        lines.append(f"table {key[0]} {key[1]} chain {key[2]}{hook}")
        lines += ["\t" + render_rule(r) for r in chain["rules"]]
    return "\n".join(lines) + "\n" if lines else ""
