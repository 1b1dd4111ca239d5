# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Replay of calico-node's IP autodetection on a netlink snapshot (pure: data in, data out).

Follows calico-node's ``node/pkg/lifecycle/startup/autodetection`` (``autodetection_methods.go``,
``interfaces.go``, ``filtered.go``, ``reachaddr.go``) and the older ``projectcalico/node`` copies:

* links are walked in REVERSE ascending-ifindex order (the newest interface wins), addresses of a
  link in kernel dump order; no link-state, address-flag or prefix-length filter;
* include/exclude regex lists are joined into one ``(a)|(b)`` regex and matched unanchored;
* the default exclusion list depends on the Calico version (unanchored up to v3.24, anchored from
  v3.25, ``cni.*`` from v3.15); ``interface=``, ``cidr=``, ``can-reach=`` and
  ``kubernetes-internal-ip`` ignore it; ``skip-interface=`` adds to it;
* an address qualifies when Go's ``net.IP.IsGlobalUnicast`` is true (RFC1918 and ULA count).

Every candidate is reported in walk order with the reason it was taken or passed over.
"""

from __future__ import annotations

import functools
import ipaddress
import re

# DEFAULT_INTERFACES_TO_EXCLUDE, verbatim, by the first Calico version that shipped each list.
EXCLUDE_ANCHORED = [
    "^docker.*", "^cbr.*", "^dummy.*", "^podman.*",
    "^virbr.*", "^lxcbr.*", "^veth.*", "^lo", "^br-.*",
    "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*",
    "^vxlan\\.calico.*", "^vxlan-v6\\.calico.*", "^wireguard\\.cali.*", "^wg-v6\\.cali.*",
    "^nodelocaldns.*",
]
EXCLUDE_UNANCHORED = [
    "docker.*", "cbr.*", "dummy.*",
    "virbr.*", "lxcbr.*", "veth.*", "lo",
    "cali.*", "tunl.*", "flannel.*", "kube-ipvs.*", "cni.*",
]
EXCLUDE_UNANCHORED_PRE_3_15 = [p for p in EXCLUDE_UNANCHORED if p != "cni.*"]
_EXCLUDE_LISTS = (((3, 25), EXCLUDE_ANCHORED), ((3, 15), EXCLUDE_UNANCHORED), ((0, 0), EXCLUDE_UNANCHORED_PRE_3_15))

LATEST_CALICO_VERSION = "3.34"
# Methods that older calico-node builds do not know and so reject as invalid.
_METHOD_SINCE = {"cidr=": (3, 16), "kubernetes-internal-ip": (3, 22)}
# v3.22/v3.23 returned the masked network for kubernetes-internal-ip (fixed by af1cf285c3, v3.24).
_K8S_UNMASKED_SINCE = (3, 24)

FIRST_FOUND = "first-found"
CAN_REACH = "can-reach="
INTERFACE = "interface="
SKIP_INTERFACE = "skip-interface="
CIDR = "cidr="
K8S_INTERNAL_IP = "kubernetes-internal-ip"

_LIST_SPLIT = re.compile(r"\s*,\s*")
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)")


def parse_calico_version(calico_version):
    """``"3.24"``, ``"v3.24.1"``, ``"3.30.0-0.dev"`` or None (latest) -> ``(major, minor)``."""
    m = _VERSION_RE.match(str(calico_version or LATEST_CALICO_VERSION).strip())
    if not m:
        raise ValueError(f"unparsable Calico version {calico_version!r} (expected e.g. '3.24' or 'v3.30.1')")
    return int(m.group(1)), int(m.group(2))


def exclusion_list(calico_version=None):
    """DEFAULT_INTERFACES_TO_EXCLUDE of the given Calico version."""
    ver = parse_calico_version(calico_version)
    return list(next(patterns for since, patterns in _EXCLUDE_LISTS if ver >= since))


# --- Go RE2 syntax on Python's re ------------------------------------------------------------
# calico-node compiles with Go's regexp (RE2). Python's re accepts some things RE2 rejects
# (look-around, back-references, possessive repeats) and spells a few RE2 features differently.

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_PERL_GROUP_UNSUPPORTED = ("?=", "?!", "?<=", "?<!", "?>", "?(", "?P=", "?#")
_REPEAT_RE = re.compile(r"\{(\d*)(?:,(\d*))?\}")
_FLAG_GROUP_RE = re.compile(r"\?([imsU-]*)([:)])")


def _class_to_python(pattern, i):
    """Translate the bracket expression starting at pattern[i] ('['); return (text, next index)."""
    out = ["["]
    i += 1
    if pattern.startswith("^", i):
        out.append("^")
        i += 1
    first = True
    while i < len(pattern):
        c = pattern[i]
        if c == "]" and not first:
            out.append("]")
            return "".join(out), i + 1
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2:end] if end >= 0 else ""
            if name not in _POSIX_CLASSES:
                raise ValueError(f"invalid character class range: `{pattern[i:]}`")
            out.append(_POSIX_CLASSES[name])
            i = end + 2
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise ValueError("trailing backslash at end of expression")
            out.append(pattern[i:i + 2])
            i += 2
        else:
            # A literal '[' inside a class is plain in RE2 but starts a nested set in Python.
            out.append("\\[" if c == "[" else c)
            i += 1
        first = False
    raise ValueError(f"missing closing ]: `{pattern}`")


def _escape_to_python(pattern, i):
    """Translate the escape at pattern[i] ('\\'); return (text, next index)."""
    if i + 1 >= len(pattern):
        raise ValueError("trailing backslash at end of expression")
    e = pattern[i + 1]
    if e in "123456789":
        raise ValueError(f"invalid escape sequence: `\\{e}` (RE2 has no back-references)")
    if e == "Z":
        raise ValueError("invalid escape sequence: `\\Z`")
    if e in "pPC":
        raise ValueError(f"unsupported escape in this replay: `\\{e}`")
    if e == "z":
        return "\\Z", i + 2
    if e == "Q":
        end = pattern.find("\\E", i + 2)
        literal = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    return pattern[i:i + 2], i + 2


def go_regex_to_python(pattern):
    """Translate a Go RE2 pattern to an equivalent Python ``re`` pattern.

    Raises ValueError (with a Go-like message) for what Go's regexp.Compile rejects, and for the
    rare RE2 features this replay does not model (``\\p{..}``, ``\\C``, ``(?U)``).
    """
    out = []
    # Per open group, the (?flags) set inside it so far: Go applies them to the rest of the group,
    # across `|`; Python spells that as scoped (?flags:...) groups, closed and reopened at each `|`.
    scoped = [[]]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            text, i = _escape_to_python(pattern, i)
            out.append(text)
        elif c == "[":
            text, i = _class_to_python(pattern, i)
            out.append(text)
        elif c == "(":
            rest = pattern[i + 1:]
            if rest.startswith(_PERL_GROUP_UNSUPPORTED):
                raise ValueError(f"invalid or unsupported Perl syntax: `({rest[:2]}`")
            m = _FLAG_GROUP_RE.match(rest)
            if m and "U" in m.group(1):
                raise ValueError("unsupported flag in this replay: `(?U`")
            if m and m.group(1) and m.group(2) == ")":
                out.append(f"(?{m.group(1)}:")
                scoped[-1].append(m.group(1))
                i += 1 + len(m.group(0))
                continue
            if rest.startswith("?<"):
                out.append("(?P<")
                i += 3
            else:
                out.append("(")
                i += 1
            scoped.append([])
        elif c == ")":
            if len(scoped) == 1:
                raise ValueError(f"unexpected ): `{pattern}`")
            out.append(")" * (len(scoped.pop()) + 1))
            i += 1
        elif c == "|":
            flags = scoped[-1]
            out.append(")" * len(flags) + "|" + "".join(f"(?{f}:" for f in flags))
            i += 1
        elif c == "{" and _REPEAT_RE.match(pattern, i):
            m = _REPEAT_RE.match(pattern, i)
            if any(g and int(g) > 1000 for g in m.groups()):
                raise ValueError(f"invalid repeat count: `{m.group(0)}`")
            if pattern.startswith("+", m.end()):
                raise ValueError(f"invalid nested repetition operator: `{m.group(0)}+`")
            out.append(m.group(0))
            i = m.end()
        elif c in "*+?" and pattern.startswith("+", i + 1):
            raise ValueError(f"invalid nested repetition operator: `{c}+`")
        else:
            out.append(c)
            i += 1
    if len(scoped) > 1:
        raise ValueError(f"missing closing ): `{pattern}`")
    out.append(")" * len(scoped[0]))
    return "".join(out)


def compile_go_regex_list(regexes):
    """Compile a regex list the way GetInterfaces does: one ``(r1)|(r2)`` regex, or None if empty."""
    return _compile_joined(tuple(regexes)) if regexes else None


@functools.lru_cache(maxsize=256)
def _compile_joined(regexes):
    joined = "(" + ")|(".join(regexes) + ")"
    try:
        return re.compile(go_regex_to_python(joined))
    except (ValueError, re.error) as e:
        raise ValueError(f"error parsing regexp: {e}") from None


def _go_list(items):
    """A list the way Go's %v prints a slice: ``[a b]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def _parse_go_cidr(text):
    """net.ParseCIDR: needs ``ip/len`` with a decimal length (no netmask form), host bits allowed, no zone."""
    _ip, slash, length = text.partition("/")
    if not slash or "%" in text or not (length.isascii() and length.isdigit()):
        raise ValueError(f"invalid CIDR address: {text}")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"invalid CIDR address: {text}") from None


def _split_method(method):
    """-> (kind, argument) following AutoDetectCIDR's prefix checks, in its order."""
    if method in ("", FIRST_FOUND):
        return FIRST_FOUND, None
    for kind in (INTERFACE, CIDR, CAN_REACH, SKIP_INTERFACE):
        if method.startswith(kind):
            return kind, method[len(kind):]
    # calico-node tests HasPrefix here, so "kubernetes-internal-ipX" is accepted too.
    if method.startswith(K8S_INTERNAL_IP):
        return K8S_INTERNAL_IP, None
    return None, None


def _parse_method(method, calico_version=None):
    """-> (kind, parsed argument, error); the argument is a regex list, a network list or a dest."""
    kind, arg = _split_method(method)
    since = _METHOD_SINCE.get(kind)
    if kind is None or (since and parse_calico_version(calico_version) < since):
        return None, None, f"Invalid IP autodetection method: {method}"
    if kind in (INTERFACE, SKIP_INTERFACE):
        regexes = _LIST_SPLIT.split(arg)
        try:
            compile_go_regex_list(regexes)
        except ValueError as e:
            return kind, regexes, str(e)
        return kind, regexes, None
    if kind == CIDR:
        nets = []
        for text in _LIST_SPLIT.split(arg):
            try:
                nets.append(_parse_go_cidr(text))
            except ValueError:
                return kind, None, f'Invalid CIDR "{text}" for IP autodetection method: {method}'
        return kind, nets, None
    return kind, arg, None


def validate_method(method, calico_version=None):
    """None if calico-node (of that version) accepts the method string, else its error text.

    Covers what makes calico-node terminate ("Invalid IP autodetection method: ...") and what
    makes detection fail before any interface is looked at (bad regex, bad CIDR).
    """
    return _parse_method("" if method is None else str(method), calico_version)[2]


# --- enumeration -----------------------------------------------------------------------------

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def is_global_unicast(ip):
    """Go's net.IP.IsGlobalUnicast (true for RFC1918 and ULA)."""
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local or ip == _BROADCAST)


def _not_global_reason(ip):
    for attr in ("is_unspecified", "is_loopback", "is_multicast", "is_link_local"):
        if getattr(ip, attr):
            return attr[3:].replace("_", "-")
    return "broadcast"


def _walk(snapshot):
    """Links in calico-node's walk order (reverse ascending ifindex) with their addresses."""
    by_index = {}
    for addr in snapshot.get("addresses") or ():
        by_index.setdefault(addr["index"], []).append(addr)
    links = sorted(snapshot.get("links") or (), key=lambda link: link["index"])
    return [(link, by_index.get(link["index"], [])) for link in reversed(links)]


def _first_match(regexes, name):
    """Which single pattern of a list matches (for display; the decision uses the joined regex)."""
    for pattern in regexes:
        try:
            if compile_go_regex_list([pattern]).search(name):
                return pattern
        except ValueError:
            continue
    return _go_list(regexes)


def _cidr_text(addr):
    return f"{addr['address']}/{addr['prefixlen']}"


def _row(link, address, taken, reason):
    return {"interface": link["name"], "index": link["index"], "address": address, "taken": taken, "reason": reason}


def _enumerate(snapshot, version, include=None, exclude=None, accept=None):
    """GetInterfaces, then the first acceptable address, with every candidate explained.

    ``accept(ip)`` -> None if the address qualifies, else why not. Returns (candidates, winner
    row or None, number of interfaces that passed the name filters).
    """
    inc_re = compile_go_regex_list(include)
    exc_re = compile_go_regex_list(exclude)
    candidates, winner, passed = [], None, 0
    for link, addrs in _walk(snapshot):
        name = link["name"]
        if inc_re is not None and not inc_re.search(name):
            candidates.append(_row(link, None, False, f"does not match interface regex {_go_list(include)}"))
            continue
        if exc_re is not None and exc_re.search(name):
            candidates.append(_row(link, None, False, f"excluded by {_first_match(exclude, name)}"))
            continue
        passed += 1
        if not addrs:
            candidates.append(_row(link, None, False, "no addresses"))
        for addr in addrs:
            text = _cidr_text(addr)
            if addr["family"] != version:
                reason = f"IPv{addr['family']} address, looking for IPv{version}"
            elif winner is not None:
                reason = "not reached: an earlier address was taken"
            else:
                ip = ipaddress.ip_address(addr["address"])
                if not is_global_unicast(ip):
                    reason = f"not global unicast ({_not_global_reason(ip)})"
                else:
                    reason = accept(ip) if accept else None
            row = _row(link, text, reason is None, reason)
            if reason is None:
                row["reason"] = f"taken: first global unicast IPv{version} address in walk order"
                winner = row
            candidates.append(row)
    return candidates, winner, passed


def _filtered(snapshot, version, include, exclude, accept=None):
    """FilteredEnumeration: -> (candidates, winner, error)."""
    candidates, winner, passed = _enumerate(snapshot, version, include, exclude, accept)
    if passed == 0:
        return candidates, None, "no valid host interfaces found"
    if winner is None:
        return candidates, None, f"no valid IPv{version} addresses found on the host interfaces"
    return candidates, winner, None


def _lookup_exact(snapshot, version, wanted, what):
    """The exact IP on any interface, no filters (GetInterfaces(nil, nil)): -> (candidates, winner)."""
    candidates, winner = [], None
    for link, addrs in _walk(snapshot):
        if not addrs:
            candidates.append(_row(link, None, False, "no addresses"))
        for addr in addrs:
            if addr["family"] != version:
                reason = f"IPv{addr['family']} address, looking for IPv{version}"
            elif winner is not None:
                reason = "not reached: an earlier address was taken"
            elif ipaddress.ip_address(addr["address"]) != wanted:
                reason = f"not the {what} {wanted}"
            else:
                reason = None
            row = _row(link, _cidr_text(addr), reason is None, reason or f"taken: equals the {what} {wanted}")
            winner = row if reason is None else winner
            candidates.append(row)
    return candidates, winner


def _result(method, version, calico_version, *, valid=True, error=None, winner=None, candidates=(), log=None):
    return {
        "method": method, "version": version, "calico_version": calico_version,
        "valid": valid, "error": error,
        "address": winner["address"] if winner else None,
        "interface": winner["interface"] if winner else None,
        "candidates": list(candidates), "log": log or error,
    }


def _route_source(route_source, dest, version):
    """The kernel's source address towards dest, as supplied by the caller -> (ip or None, error)."""
    try:
        src = route_source(dest, version) if callable(route_source) else (route_source or {}).get(dest)
    except OSError as e:
        return None, f"dial udp{version} {dest}: {e}"
    if not src:
        return None, f"no route-lookup source supplied for {dest} (run `ip route get {dest}` on the node)"
    try:
        ip = ipaddress.ip_address(str(src).split("/", maxsplit=1)[0])
    except ValueError:
        return None, f"route-lookup source {src!r} for {dest} is not an IP address"
    if ip.version != version:
        return None, f"route-lookup source {ip} for {dest} is not IPv{version}"
    return ip, None


_FILTERED_LOGS = {  # (success, failure) lines of AutoDetectCIDR's enumerating methods
    FIRST_FOUND: ("Using autodetected IPv{v} address on interface {i}: {a}",
                  "Unable to auto-detect an IPv{v} address: {e}"),
    SKIP_INTERFACE: ("Using autodetected IPv{v} address on interface {i}: {a} while skipping matching interfaces",
                     "Unable to auto-detect an IPv{v} address while excluding {s}: {e}"),
    INTERFACE: ("Using autodetected IPv{v} address {a} on matching interface {i}",
                "Unable to auto-detect an IPv{v} address using interface regexes {s}: {e}"),
    CIDR: ("Using autodetected IPv{v} address {a} on interface {i} matching cidrs {s}",
           "Unable to auto-detect an IPv{v} address using interface cidr {s}: {e}"),
}


def _replay_filtered(snapshot, parsed, v, calico_version):
    """first-found, skip-interface=, interface= and cidr=: -> result keyword arguments."""
    kind, arg, error = parsed
    ok, bad = _FILTERED_LOGS[kind]
    shown = _go_list(arg or [])
    if error:
        # A bad CIDR is logged on its own; a bad regex surfaces as the enumeration's error.
        return {"valid": False, "error": error, "log": None if kind == CIDR else bad.format(v=v, s=shown, e=error)}
    include, exclude, accept = None, None, None
    if kind == INTERFACE:
        include = arg
    elif kind == CIDR:
        def accept(ip):
            return None if any(ip in net for net in arg) else f"outside cidr {shown}"
    else:
        exclude = exclusion_list(calico_version) + (arg if kind == SKIP_INTERFACE else [])
    candidates, winner, err = _filtered(snapshot, v, include, exclude, accept)
    if winner and kind == CIDR:
        winner["reason"] = f"taken: first global unicast IPv{v} address inside {shown}"
    if winner:
        log = ok.format(v=v, i=winner["interface"], a=winner["address"], s=shown)
    else:
        log = bad.format(v=v, s=shown, e=err)
    return {"error": err, "winner": winner, "candidates": candidates, "log": log}


def _replay_can_reach(snapshot, dest, v, route_source):
    src, err = _route_source(route_source, dest, v)
    candidates, winner = ([], None) if src is None else _lookup_exact(snapshot, v, src, "route-lookup source")
    if src is not None and winner is None:
        err = f"autodetected IPv{v} address does not match any addresses found on local interfaces: {src}"
    if winner:
        log = f"Using autodetected IPv{v} address {winner['address']}, detected by connecting to {dest}"
    else:
        log = f"Unable to auto-detect IPv{v} address by connecting to {dest}: {err}"
    return {"error": err, "winner": winner, "candidates": candidates, "log": log}


def _replay_k8s_internal_ip(snapshot, v, calico_version, internal_ips):
    if internal_ips is None:
        return {"error": "Cannot use method 'kubernetes-internal-ip' when not running on a Kubernetes cluster"}
    if isinstance(internal_ips, str):
        internal_ips = [internal_ips]
    address = ""
    for text in internal_ips:
        try:
            if ipaddress.ip_address(text).version == v:
                address = text
                break
        except ValueError:
            continue
    candidates, winner = [], None
    if address:
        candidates, winner = _lookup_exact(snapshot, v, ipaddress.ip_address(address), "InternalIP")
    if winner is None:
        # GetLocalCIDR hands back the bare IP, which then fails CIDR parsing.
        return {"error": f"Unable to parse CIDR {address} : invalid CIDR address: {address}", "candidates": candidates}
    if parse_calico_version(calico_version) < _K8S_UNMASKED_SINCE:
        winner["address"] = str(ipaddress.ip_interface(winner["address"]).network)
        winner["reason"] += " (this Calico version returns the masked network; fixed in v3.24)"
    log = f'Including CIDR information from host interface. CIDR="{winner["address"]}"'
    return {"winner": winner, "candidates": candidates, "log": log}


def autodetect(snapshot, method="first-found", version=4, *, calico_version=None, route_source=None,
               internal_ips=None):
    """Replay ``IP_AUTODETECTION_METHOD`` (or ``IP6_AUTODETECTION_METHOD``) on a snapshot.

    snapshot: ``{"links": [...], "addresses": [...]}`` as produced by ``_netlink.snapshot()``.
    route_source: for ``can-reach=``; a callable ``(dest, version) -> source IP | None`` or a
      dict ``{dest: source IP}``, filled from a real ``ip route get DEST`` on the node.
    internal_ips: for ``kubernetes-internal-ip``; the k8s Node's InternalIP addresses in
      ``status.addresses`` order, or None when not running on Kubernetes.

    Returns ``{"method", "version", "calico_version", "valid", "error", "address": "ip/prefix" |
    None, "interface", "candidates": [{"interface", "index", "address", "taken", "reason"}],
    "log"}``; ``log`` is the line calico-node would print.
    """
    method = "" if method is None else str(method)
    calico_version = str(calico_version or LATEST_CALICO_VERSION)
    parsed = _parse_method(method, calico_version)
    kind, arg, error = parsed
    if kind is None:
        outcome = {"valid": False, "error": error}
    elif kind == CAN_REACH:
        outcome = _replay_can_reach(snapshot, arg, version, route_source)
    elif kind == K8S_INTERNAL_IP:
        outcome = _replay_k8s_internal_ip(snapshot, version, calico_version, internal_ips)
    else:
        outcome = _replay_filtered(snapshot, parsed, version, calico_version)
    return _result(method, version, calico_version, **outcome)


def snapshot_from_fact_links(links):
    """Rebuild ``{"links", "addresses"}`` from the fact's links (addresses nested, index dropped)."""
    flat_links, addresses = [], []
    for link in links or ():
        flat_links.append({k: v for k, v in link.items() if k != "addresses"})
        addresses.extend({**addr, "index": link["index"]} for addr in link.get("addresses") or ())
    return {"links": flat_links, "addresses": addresses}


def autodetection_fact(snapshot, method_in_use, *, calico_version=None, route_source=None, internal_ips=None,
                       method6_in_use=None, also=(), intended=None, registered=None):
    """The ``autodetection`` part of the ``calico_node`` fact (see docs/development.md).

    Replays the IPv4 method in use, the IPv6 one when ``method6_in_use`` is not None (calico-node
    detects IPv6 only with ``IP6=autodetect``), and the extra IPv4 methods in ``also``.
    """
    kwargs = {"calico_version": calico_version, "route_source": route_source, "internal_ips": internal_ips}
    results = [autodetect(snapshot, method_in_use, 4, **kwargs)]
    if method6_in_use is not None:
        results.append(autodetect(snapshot, method6_in_use, 6, **kwargs))
    results.extend(autodetect(snapshot, m, 4, **kwargs) for m in also)
    return {
        "method_in_use": method_in_use or "",
        "method6_in_use": method6_in_use,
        "calico_version": str(calico_version or LATEST_CALICO_VERSION),
        "intended": intended,
        "registered": registered,
        "results": results,
    }


def operator_form(method):
    """The tigera/operator ``Installation.spec.calicoNetwork.nodeAddressAutodetectionV4`` for a method."""
    kind, arg = _split_method(method or "")
    if kind == FIRST_FOUND:
        return {"firstFound": True}
    if kind == K8S_INTERNAL_IP:
        return {"kubernetes": "NodeInternalIP"}
    if kind == CIDR:
        return {"cidrs": _LIST_SPLIT.split(arg)}
    key = {INTERFACE: "interface", SKIP_INTERFACE: "skipInterface", CAN_REACH: "canReach"}.get(kind)
    if key is None:
        raise ValueError(f"Invalid IP autodetection method: {method}")
    return {key: arg}


# --- recommendation --------------------------------------------------------------------------

def go_quote(name):
    """Escape an interface name for use inside an RE2 pattern."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", name)


def _ip_only(text):
    return ipaddress.ip_address(str(text).split("/", maxsplit=1)[0])


def _intended_on_node(node, version):
    """(link name, ip_interface) of the node's intended address, or None if it is not local."""
    wanted = _ip_only(node["intended"])
    for link, addrs in _walk(node["snapshot"]):
        for addr in addrs:
            if addr["family"] == version and ipaddress.ip_address(addr["address"]) == wanted:
                return link["name"], ipaddress.ip_interface(_cidr_text(addr))
    return None


def _replay_on(node, method, version, calico_version):
    return autodetect(node["snapshot"], method, version, calico_version=node.get("calico_version") or calico_version,
                      route_source=node.get("route_source"), internal_ips=node.get("internal_ips"))


def _verify(method, nodes, version, calico_version):
    evidence = []
    for node in nodes:
        res = _replay_on(node, method, version, calico_version)
        hit = res["address"] is not None and _ip_only(res["address"]) == _ip_only(node["intended"])
        evidence.append({"host": node.get("host"), "intended": str(node["intended"]), "address": res["address"],
                         "interface": res["interface"], "ok": hit, "error": res["error"]})
    return all(e["ok"] for e in evidence), evidence


def _skip_list(nodes, version, calico_version):
    """Interfaces that first-found takes before the intended one, gathered over all nodes."""
    skips = []
    for node in nodes:
        for _attempt in range(len(node["snapshot"].get("links") or ()) + 1):
            method = SKIP_INTERFACE + ",".join(skips) if skips else FIRST_FOUND
            res = _replay_on(node, method, version, calico_version)
            if res["address"] is None or _ip_only(res["address"]) == _ip_only(node["intended"]):
                break
            pattern = f"^{go_quote(res['interface'])}$"
            if pattern in skips:
                break
            skips.append(pattern)
    return skips


def _candidate_methods(nodes, version, calico_version, peers):
    """Methods to try, most robust first (a generator: later ones are only built when needed)."""
    if all(node.get("internal_ips") for node in nodes):
        yield K8S_INTERNAL_IP
    local = [_intended_on_node(node, version) for node in nodes]
    nets = ipaddress.collapse_addresses({iface.network for _name, iface in local})
    yield CIDR + ",".join(str(n) for n in nets)
    names = {name for name, _iface in local}
    if len(names) == 1:
        yield f"{INTERFACE}^{go_quote(names.pop())}$"
    skips = _skip_list(nodes, version, calico_version)
    if skips:
        yield SKIP_INTERFACE + ",".join(skips)
    for peer in peers or ():
        yield CAN_REACH + str(peer)


def recommend_method(nodes, version=4, *, calico_version=None, peers=None):
    """Find one autodetection method that picks every node's intended address.

    nodes: ``[{"host", "snapshot": {"links", "addresses"}, "intended": "ip[/len]",
    "internal_ips": [...] (optional), "route_source": dict | callable (optional, for can-reach),
    "calico_version": (optional, per node)}]``; peers: can-reach destinations to try, in order.

    Candidates, most robust first: ``kubernetes-internal-ip`` (when every node has InternalIPs),
    ``cidr=`` of the intended addresses' subnets (collapsed), ``interface=^name$`` (when every
    node carries its intended address on the same name), ``skip-interface=`` of the interfaces
    that win wrongly, ``can-reach=<peer>``. Each is replayed on every node. Returns ``{"method": str | None,
    "reason", "evidence": [{"host", "intended", "address", "interface", "ok", "error"}],
    "tried": [{"method", "ok", "failed_hosts"}]}``.
    """
    if not nodes:
        return {"method": None, "reason": "no nodes given", "evidence": [], "tried": []}
    missing = [str(node.get("host")) for node in nodes if _intended_on_node(node, version) is None]
    if missing:
        return {"method": None, "evidence": [], "tried": [],
                "reason": f"the intended address is on no interface of {', '.join(missing)}: no autodetection "
                          "method can pick it; pin IP=<address> there or add the address first"}
    tried = []
    for method in _candidate_methods(nodes, version, calico_version, peers):
        ok, evidence = _verify(method, nodes, version, calico_version)
        tried.append({"method": method, "ok": ok, "failed_hosts": [e["host"] for e in evidence if not e["ok"]]})
        if ok:
            return {"method": method, "evidence": evidence, "tried": tried,
                    "reason": f"replayed on all {len(nodes)} node(s): it picks the intended address on every one"}
    return {"method": None, "evidence": [], "tried": tried,
            "reason": "no single method picks the intended address on every node (see tried); pin IP=<address> "
                      "per node or remove the conflicting addresses"}
