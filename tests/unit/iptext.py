"""Turn iproute2 text (`ip addr`, `ip route`, `ip neigh`, `bridge fdb`) into the snapshot dicts of
docs/development.md, so route tables from the seeds and from real nodes can be pasted verbatim
into unit-test fixtures. Test helper only: the collection reads netlink, never this text."""

from __future__ import annotations

import re

PROTOCOLS = {"kernel": 2, "boot": 3, "static": 4, "bird": 12, "dhcp": 16, "felix": 80}
ROUTE_TYPES = {"unicast", "blackhole", "unreachable", "prohibit", "local", "broadcast", "throw", "multicast",
               "anycast", "nat"}
ADDRESS_FLAGS = {"secondary", "noprefixroute", "dynamic", "deprecated", "tentative", "dadfailed", "permanent",
                 "nodad", "optimistic", "temporary", "mngtmpaddr", "home", "stable-privacy"}
_LINK_LINE = re.compile(r"^(\d+):\s+([^:@\s]+)(?:@(\S+))?:\s+<([^>]*)>(.*)$")


def _kind(name, link_type, peer):
    if link_type == "ipip":
        return "ipip"
    if name.startswith("vxlan"):
        return "vxlan"
    if name.startswith(("cali", "veth")) or (peer or "").startswith("if"):
        return "veth"
    if name.startswith(("docker", "br-", "virbr", "cni", "cbr")):
        return "bridge"
    if name.startswith(("dummy", "kube-ipvs", "nodelocaldns")):
        return "dummy"
    return None


def parse_ip_addr(text, kinds=None):
    """`ip addr` (or `ip -d addr`) output -> (links, addresses), in the order printed."""
    links, addresses, names = [], [], {}
    link = None
    for raw in text.splitlines():
        line = raw.strip()
        m = _LINK_LINE.match(line)
        if m:
            index, name, peer, flags, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4).split(","), m.group(5)
            words = rest.split()
            attrs = dict(zip(words[::2], words[1::2], strict=False))
            link = {"index": index, "name": name, "kind": (kinds or {}).get(name), "up": "UP" in flags,
                    "operstate": attrs.get("state", "UNKNOWN"), "mtu": int(attrs.get("mtu", 1500)), "mac": None,
                    "master": attrs.get("master"), "link": None, "vxlan": None, "_peer": peer}
            links.append(link)
            names[name] = index
            continue
        if link is None or not line:
            continue
        words = line.split()
        if words[0].startswith("link/"):
            link_type = words[0].split("/", 1)[1]
            if link_type not in ("ipip", "none", "loopback") and len(words) > 1:
                link["mac"] = words[1]
            link["kind"] = link["kind"] or _kind(link["name"], link_type, link["_peer"])
        elif words[0] == "vxlan" and len(words) > 2 and words[1] == "id":
            attrs = dict(zip(words[1::2], words[2::2], strict=False))
            link["kind"] = "vxlan"
            link["vxlan"] = {"vni": int(attrs["id"]), "port": int(attrs.get("dstport", 4789)),
                             "local": attrs.get("local"), "link": attrs.get("dev")}
        elif words[0] in ("inet", "inet6"):
            addresses.append(_address(link, words))
    for link in links:
        link.pop("_peer")
        link["master"] = names.get(link["master"])
        if link["vxlan"] and link["vxlan"]["link"]:
            link["link"] = link["vxlan"]["link"] = names.get(link["vxlan"]["link"])
    return links, addresses


def _address(link, words):
    address, _slash, prefixlen = words[1].partition("/")
    family = 6 if words[0] == "inet6" else 4
    entry = {"index": link["index"], "family": family, "address": address,
             "prefixlen": int(prefixlen or (128 if family == 6 else 32)), "scope": "global", "flags": [],
             "label": link["name"] if family == 4 else None}
    i = 2
    while i < len(words):
        word = words[i]
        if word in ("brd", "peer", "scope", "metric"):
            if word == "scope":
                entry["scope"] = words[i + 1]
            i += 2
            continue
        if word in ADDRESS_FLAGS:
            entry["flags"].append(word)
        elif family == 4 and i == len(words) - 1:
            entry["label"] = word
        i += 1
    return entry


def _dst(text, family):
    if text == "default":
        return "default"
    if "/" in text:
        return text
    return f"{text}/{128 if family == 6 else 32}"


def _route(words, names, family):
    rtype = "unicast"
    if words[0] in ROUTE_TYPES:
        rtype, words = words[0], words[1:]
    if family is None:
        family = 6 if ":" in words[0] else 4
    route = {"family": family, "dst": _dst(words[0], family), "type": rtype, "protocol": PROTOCOLS["boot"],
             "scope": "universe", "gateway": None, "oif": None, "dev": None, "metric": None, "prefsrc": None,
             "onlink": False, "multipath": None}
    i = 1
    while i < len(words):
        word = words[i]
        value = words[i + 1] if i + 1 < len(words) else None
        if word == "via":
            if value in ("inet", "inet6"):
                i += 1
                value = words[i + 1]
            route["gateway"] = value
        elif word == "dev":
            route["dev"], route["oif"] = value, names.get(value)
        elif word == "proto":
            route["protocol"] = PROTOCOLS.get(value) or int(value)
        elif word == "scope":
            route["scope"] = value
        elif word == "src":
            route["prefsrc"] = value
        elif word == "metric":
            route["metric"] = int(value)
        elif word in ("mtu", "table", "pref", "expires", "advmss", "weight"):
            if value == "lock":
                i += 1
        else:
            if word == "onlink":
                route["onlink"] = True
            i += 1
            continue
        i += 2
    return route


def parse_ip_route(text, links=(), family=None):
    """`ip route` / `ip -6 route` output -> routes (main table). Like iproute2, a route printed
    without `proto` is proto boot (3); multipath `nexthop` lines attach to the route above."""
    names = {link["name"]: link["index"] for link in links}
    routes = []
    for raw in text.splitlines():
        words = raw.split("//")[0].split()
        if not words:
            continue
        if words[0] == "nexthop":
            hop = _route(["0.0.0.0/0", *words[1:]], names, 4)
            routes[-1]["multipath"] = (routes[-1]["multipath"] or []) + [
                {"gateway": hop["gateway"], "oif": hop["oif"], "dev": hop["dev"], "onlink": hop["onlink"],
                 "weight": int(words[words.index("weight") + 1]) if "weight" in words else 1}]
            continue
        routes.append(_route(words, names, family))
    return routes


def parse_ip_neigh(text, links=()):
    """`ip neigh` output -> neighbours."""
    names = {link["name"]: link["index"] for link in links}
    out = []
    for raw in text.splitlines():
        words = raw.split()
        if not words:
            continue
        attrs = dict(zip(words[1::2], words[2::2], strict=False))
        out.append({"index": names.get(attrs.get("dev")), "dev": attrs.get("dev"),
                    "family": 6 if ":" in words[0] else 4, "dst": words[0], "lladdr": attrs.get("lladdr"),
                    "state": [words[-1].lower()]})
    return out


def parse_bridge_fdb(text, links=()):
    """`bridge fdb show` lines with a dst (the VXLAN FDB) -> fdb entries."""
    names = {link["name"]: link["index"] for link in links}
    out = []
    for raw in text.splitlines():
        words = raw.split()
        if "dst" not in words:
            continue
        attrs = dict(zip(words[1::2], words[2::2], strict=False))
        out.append({"index": names.get(attrs.get("dev")), "dev": attrs.get("dev"), "lladdr": words[0],
                    "dst": words[words.index("dst") + 1], "state": ["permanent"] if "permanent" in words else []})
    return out


def snapshot(addr="", route="", neigh="", fdb="", kinds=None):
    """A whole snapshot from pasted `ip addr`, `ip route`, `ip neigh` and `bridge fdb` text."""
    links, addresses = parse_ip_addr(addr, kinds)
    return {"links": links, "addresses": addresses, "routes": parse_ip_route(route, links),
            "neighbours": parse_ip_neigh(neigh, links), "fdb": parse_bridge_fdb(fdb, links), "rules": []}


def fact_links(snap):
    """The fact's ``links`` (addresses nested, minus index) from a snapshot."""
    by_index = {}
    for a in snap["addresses"]:
        by_index.setdefault(a["index"], []).append({k: v for k, v in a.items() if k != "index"})
    return [{**link, "addresses": by_index.get(link["index"], [])} for link in snap["links"]]
