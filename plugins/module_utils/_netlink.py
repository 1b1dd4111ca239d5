# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Netlink snapshot of a node: links, addresses, main-table routes, neighbours, VXLAN FDB, rules.

pyroute2 opens the socket (also inside a named network namespace) and encodes the requests; the
replies are decoded here with ``struct``/``memoryview``, reading only the attributes the snapshot
needs, because pyroute2's generic decoder is ~30x slower than ``ip -j route`` on a 100k-route table.
The decoders are pure functions over ``bytes`` (``decode_routes``, ``decode_links``, ...).
The data model is described in docs/development.md ("The snapshot").
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import importlib.util
import ipaddress
import os
import socket
import struct
import sys
import traceback


def _lazy_package(name):
    """Register package `name` without running its __init__ until something asks for a name it
    defines. pyroute2's __init__ imports its whole public API (NDB, IPDB, asyncio, conntrack, ...):
    ~0.1 s of CPU on every node at every run, for a few message classes and one socket helper."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attr):  # noqa: N807 - PEP 562 module hook
        if not attr.startswith("__") and importlib.util.find_spec(f"{name}.{attr}") is not None:
            return importlib.import_module(f"{name}.{attr}")
        del package.__getattr__
        spec.loader.exec_module(package)
        return getattr(package, attr)

    package.__getattr__ = __getattr__
    sys.modules[name] = package


try:
    _lazy_package("pyroute2")
    from pyroute2.netlink.rtnl.fibmsg import fibmsg
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.ndmsg import ndmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
    from pyroute2.netns import popns, pushns
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None

PYROUTE2_MINIMUM = "0.7.2"  # Debian 12's; every name used here exists from it on


def pyroute2_version():
    """The installed pyroute2's version (from its package metadata), or None."""
    try:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - only to explain a failure
    except ImportError:  # pragma: no cover - Python < 3.8
        return None
    try:
        return version("pyroute2")
    except PackageNotFoundError:
        return None


def missing_pyroute2():
    """Why netlink cannot be used here, naming the pyroute2 found and the one needed."""
    found = pyroute2_version()
    last = (PYROUTE2_IMPORT_ERROR or "").strip().splitlines()[-1:]
    have = (f"pyroute2 {found} is installed but cannot be used{': ' + last[0] if last else ''}" if found
            else "pyroute2 is not installed")
    return (f"{have} for {sys.executable}; the node needs pyroute2 {PYROUTE2_MINIMUM} or newer (python3-pyroute2 "
            f"from the distribution, or pip install 'pyroute2>={PYROUTE2_MINIMUM}')")


# Raw rtm_protocol values and the names iproute2 (rt_protos) and Calico give them.
PROTOCOL_NAMES = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt",
    11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp", 18: "keepalived",
    42: "babel", 80: "felix", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf", 189: "rip", 192: "eigrp",
}
ROUTE_TYPES = {
    0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
    7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat", 11: "xresolve",
}
ROUTE_SCOPES = {0: "universe", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
ADDRESS_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
OPERSTATES = {0: "UNKNOWN", 1: "NOTPRESENT", 2: "DOWN", 3: "LOWERLAYERDOWN", 4: "TESTING", 5: "DORMANT", 6: "UP"}
# IFA_F_* in bit order; bit 0 is IFA_F_SECONDARY for IPv4 and IFA_F_TEMPORARY for IPv6.
_IFA_FLAG_NAMES = (
    (0x02, "nodad"), (0x04, "optimistic"), (0x08, "dadfailed"), (0x10, "homeaddress"), (0x20, "deprecated"),
    (0x40, "tentative"), (0x80, "permanent"), (0x100, "managetempaddr"), (0x200, "noprefixroute"),
    (0x400, "mcautojoin"), (0x800, "stableprivacy"),
)
_NUD_STATE_NAMES = (
    (0x01, "incomplete"), (0x02, "reachable"), (0x04, "stale"), (0x08, "delay"), (0x10, "probe"),
    (0x20, "failed"), (0x40, "noarp"), (0x80, "permanent"),
)

RT_TABLE_MAIN = 254

_AF_INET, _AF_INET6, _AF_BRIDGE, _AF_UNSPEC = 2, 10, 7, 0  # Linux values, as plain ints
_FAMILY_VERSION = {_AF_INET: 4, _AF_INET6: 6}
_ADDR_LEN = {_AF_INET: 4, _AF_INET6: 16}
_NETLINK_ROUTE, _SOL_NETLINK, _NETLINK_GET_STRICT_CHK = 0, 270, 12

_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_DUMP, _NLM_F_DUMP_INTR = 0x1, 0x4, 0x300, 0x10
_NLM_F_REPLACE, _NLM_F_EXCL, _NLM_F_CREATE = 0x100, 0x200, 0x400
_RTM_NEWLINK, _RTM_GETLINK, _RTM_NEWADDR, _RTM_GETADDR = 16, 18, 20, 22
_RTM_NEWROUTE, _RTM_DELROUTE, _RTM_GETROUTE, _RTM_NEWNEIGH, _RTM_GETNEIGH = 24, 25, 26, 28, 30
_RTM_NEWRULE, _RTM_GETRULE = 32, 34
_RTM_DELNEIGH, _NUD_PERMANENT, _NTF_SELF = 29, 0x80, 0x02
# `ip neigh VERB` / `bridge fdb VERB`: (message type, flags besides REQUEST|ACK), as iproute2 sends them.
_NEIGH_VERBS = {"add": (_RTM_NEWNEIGH, _NLM_F_CREATE | _NLM_F_EXCL),
                "replace": (_RTM_NEWNEIGH, _NLM_F_CREATE | _NLM_F_REPLACE), "del": (_RTM_DELNEIGH, 0)}
# `ip route VERB`: (message type, flags besides REQUEST|ACK), as iproute2 sends them.
_ROUTE_VERBS = {"add": (_RTM_NEWROUTE, _NLM_F_CREATE | _NLM_F_EXCL),
                "replace": (_RTM_NEWROUTE, _NLM_F_CREATE | _NLM_F_REPLACE),
                "prepend": (_RTM_NEWROUTE, _NLM_F_CREATE), "del": (_RTM_DELROUTE, 0)}

_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU, _IFLA_LINK, _IFLA_MASTER = 1, 3, 4, 5, 10
_IFLA_OPERSTATE, _IFLA_LINKINFO, _IFLA_INFO_KIND, _IFLA_INFO_DATA = 16, 18, 1, 2
_IFLA_VXLAN_ID, _IFLA_VXLAN_LINK, _IFLA_VXLAN_LOCAL, _IFLA_VXLAN_PORT, _IFLA_VXLAN_LOCAL6 = 1, 3, 4, 15, 17
_RTEXT_FILTER_SKIP_STATS = 1 << 3
_IFF_UP = 0x1
_IFA_ADDRESS, _IFA_LOCAL, _IFA_LABEL, _IFA_FLAGS = 1, 2, 3, 8
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_PRIORITY, _RTA_PREFSRC = 1, 4, 5, 6, 7
_RTA_MULTIPATH, _RTA_TABLE, _RTA_VIA = 9, 15, 18
_RTNH_F_ONLINK = 0x4
_RTM_F_LOOKUP_TABLE = 0x1000  # route get: report the table of the matching route, not main
_NDA_DST, _NDA_LLADDR = 1, 2
_FRA_DST, _FRA_SRC, _FRA_IIFNAME, _FRA_PRIORITY, _FRA_FWMARK, _FRA_TABLE, _FRA_OIFNAME = 1, 2, 3, 6, 10, 15, 17
_NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

_NLMSGHDR = struct.Struct("=IHH")
_RTMSG = struct.Struct("=BBBBBBBBI")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")
_RTNEXTHOP = struct.Struct("=HBBi")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_BE16 = struct.Struct("!H")

# Dump status bits returned by the feeders.
_DONE, _INTR = 1, 2
_DUMP_ATTEMPTS = 3  # a dump the kernel flags as interrupted (table changed meanwhile) is retried
_RECV_SIZE = 1 << 18  # kernel dump datagrams are ~32 KiB; MSG_TRUNC catches anything larger
_TIMEOUT = 30.0
# route_get errors that mean "no usable route": no route, unreachable, prohibit, blackhole.
_NO_ROUTE = frozenset((errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EINVAL))

# An IPv4 address read as one native u32: the mask keeps its first three octets, the shift
# brings down the last one (the byte order of the host decides which bits those are).
if sys.byteorder == "little":
    _PREFIX_MASK, _LAST_OCTET_SHIFT = 0x00FFFFFF, 24
else:
    _PREFIX_MASK, _LAST_OCTET_SHIFT = 0xFFFFFF00, 0
# The attribute header (nla_len, nla_type) of an IPv4 RTA_GATEWAY as one native u32.
_GATEWAY_HEADER_V4 = _U32.unpack(_NLA.pack(8, _RTA_GATEWAY))[0]
_MAX_SHAPES = 1 << 15  # bounds the route template cache when every route is different
_ZERO10 = bytes(10)


@contextlib.contextmanager
def _gc_paused():
    """Collections triggered by allocating ~100k route dicts (which hold no reference cycles)
    cost a third of a snapshot's time; pause the collector meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class NetlinkError(OSError):
    """The kernel answered a request with an error (errno in ``.errno``)."""

    def __init__(self, code):
        super().__init__(code, os.strerror(code))


# ---------------------------------------------------------------------------------------------
# Byte helpers


def _ip(raw):
    """Address bytes -> the string ``ipaddress`` prints (None for a malformed length)."""
    if len(raw) == 4:
        return socket.inet_ntop(_AF_INET, raw)
    if len(raw) == 16:
        # inet_ntop writes IPv4-mapped/compatible addresses in dotted form; ipaddress does not.
        if raw[:10] == _ZERO10:
            return str(ipaddress.IPv6Address(raw))
        return socket.inet_ntop(_AF_INET6, raw)
    return None


def _mac(raw):
    return ":".join(f"{b:02x}" for b in raw) if raw else None


def _flag_names(value, table):
    return [name for bit, name in table if value & bit]


def _attrs(data, start, end):
    """Attributes between start and end -> {type: (payload start, payload end)}; stops at the
    first malformed or truncated attribute."""
    found = {}
    end = min(end, len(data))
    while start + 4 <= end:
        length, kind = _NLA.unpack_from(data, start)
        if length < 4 or start + length > end:
            break
        found[kind & _NLA_TYPE_MASK] = (start + 4, start + length)
        start += (length + 3) & ~3
    return found


def _raw(data, span):
    return None if span is None else data[span[0]:span[1]]


def _u32(data, span):
    if span is None or span[1] - span[0] < 4:
        return None
    return _U32.unpack_from(data, span[0])[0]


def _u8(data, span):
    return None if span is None or span[1] <= span[0] else data[span[0]]


def _str(data, span):
    if span is None:
        return None
    return data[span[0]:span[1]].split(b"\0", 1)[0].decode("utf-8", "replace")


def _addr(data, span):
    return None if span is None else _ip(data[span[0]:span[1]])


# ---------------------------------------------------------------------------------------------
# Message walking


def _control(data, off, end, mtype, mflags):
    """Status bits of a control message; raises NetlinkError for an NLMSG_ERROR with an errno."""
    if mtype == _NLMSG_DONE:
        return _DONE | (_INTR if mflags & _NLM_F_DUMP_INTR else 0)
    if mtype == _NLMSG_ERROR:
        if end - off < 20:
            raise NetlinkError(errno.EBADMSG)
        code = -_I32.unpack_from(data, off + 16)[0]
        if code:
            raise NetlinkError(code)
        return _DONE  # an acknowledgement
    return 0


def _feed(data, wanted, decode_one, out):
    """Append decode_one(data, payload start, end) for each message of type wanted; return status.
    A truncated trailing message ends the walk."""
    status = 0
    off, size = 0, len(data)
    while off + 16 <= size:
        length, mtype, mflags = _NLMSGHDR.unpack_from(data, off)
        end = off + length
        if length < 16 or end > size:
            break
        if mtype == wanted:
            item = decode_one(data, off + 16, end)
            if item is not None:
                out.append(item)
        else:
            status |= _control(data, off, end, mtype, mflags)
        off = (end + 3) & ~3
    return status


# ---------------------------------------------------------------------------------------------
# Routes


def _route_message(data, start, end, names):
    """One RTM_NEWROUTE payload (start = the rtmsg) -> (table, route dict or None, attribute spans)."""
    if end - start < _RTMSG.size:
        return None, None, {}
    family, dst_len, _src_len, _tos, table, proto, scope, rtype, flags = _RTMSG.unpack_from(data, start)
    attrs = _attrs(data, start + _RTMSG.size, end)
    table_attr = _u32(data, attrs.get(_RTA_TABLE))
    if table_attr is not None:
        table = table_attr
    version = _FAMILY_VERSION.get(family)
    if version is None:
        return table, None, attrs
    if dst_len:
        dst = f"{_addr(data, attrs.get(_RTA_DST)) or _ip(bytes(_ADDR_LEN[family]))}/{dst_len}"
    else:
        dst = "default"
    oif = _u32(data, attrs.get(_RTA_OIF))
    multipath = attrs.get(_RTA_MULTIPATH)
    route = _Route(
        family=version, dst=dst, type=ROUTE_TYPES.get(rtype, rtype), protocol=proto,
        scope=ROUTE_SCOPES.get(scope, scope), gateway=_gateway(data, attrs), oif=oif,
        dev=names.get(oif), metric=_u32(data, attrs.get(_RTA_PRIORITY)),
        prefsrc=_addr(data, attrs.get(_RTA_PREFSRC)), onlink=bool(flags & _RTNH_F_ONLINK),
        multipath=None if multipath is None else _multipath(data, multipath, names),
    ).__dict__
    return table, route, attrs


class _Route:
    """Route dicts are the __dict__ of these: the instance dicts of one class share one key
    table, so each of ~100k route dicts (and each copy of one) is a third smaller."""

    def __init__(self, *, family, dst, type, protocol, scope, gateway, oif, dev, metric, prefsrc, onlink, multipath):
        self.family = family
        self.dst = dst
        self.type = type
        self.protocol = protocol
        self.scope = scope
        self.gateway = gateway
        self.oif = oif
        self.dev = dev
        self.metric = metric
        self.prefsrc = prefsrc
        self.onlink = onlink
        self.multipath = multipath


def _gateway(data, attrs):
    span = attrs.get(_RTA_GATEWAY)
    if span is not None:
        return _addr(data, span)
    span = attrs.get(_RTA_VIA)  # struct rtvia: u16 family, then the address (IPv6 next hop of an IPv4 route)
    if span is not None and span[1] - span[0] > 2:
        return _ip(data[span[0] + 2:span[1]])
    return None


def _multipath(data, span, names):
    hops = []
    pos, end = span
    while pos + _RTNEXTHOP.size <= end:
        length, flags, weight, oif = _RTNEXTHOP.unpack_from(data, pos)
        if length < _RTNEXTHOP.size or pos + length > end:
            break
        attrs = _attrs(data, pos + _RTNEXTHOP.size, pos + length)
        hops.append({"gateway": _gateway(data, attrs), "oif": oif, "dev": names.get(oif),
                     "onlink": bool(flags & _RTNH_F_ONLINK), "weight": weight + 1})
        pos += (length + 3) & ~3
    return hops


# Shape kinds besides a plain template: decode attribute by attribute / other table / ECMP.
_GENERIC, _SKIP, _MULTIPATH = "generic", "skip", "multipath"


class _RouteDecoder:
    """RTM_NEWROUTE messages -> snapshot route dicts, fast.

    Most routes of a big table share a "shape": the same bytes except the destination and the
    gateway. The decoder keys a cache on the message bytes with those two payloads cut out; a hit
    costs a copy of the cached route dict plus two cached string conversions, no attribute walk.
    The kernel puts RTA_DST right after RTA_TABLE (offset 40); where the gateway sits is learnt
    per message length and checked on every message. A shape is cached as a template only after
    a full decode proved the holes are exactly the RTA_DST/RTA_GATEWAY payloads, so the key holds
    every other byte that decides the result; anything else is decoded attribute by attribute.
    """

    def __init__(self, names=None, table=RT_TABLE_MAIN):
        self.names = names or {}
        self.table = table
        self.shapes = {}          # key -> (template dict | None, dst tail, kind: None | _MULTIPATH | _SKIP | _GENERIC)
        self.gateway_shapes = {}  # the same, for keys with the gateway cut out too
        self.gateway_hints = {}   # family -> {length: distance of RTA_GATEWAY's header from the end}
        self.prefixes = {}        # IPv4 first three octets (masked u32) -> "a.b.c."
        self.last_octets = {}     # dst_len -> ["0/len", ..., "255/len"]
        self.ips = {}             # gateway bytes -> string

    def feed(self, data, out):
        """Append the routes of one buffer of netlink messages to out; return the dump status.

        The loop inlines the common case of _shaped(): an IPv4 route of a known length whose
        shape is a plain template. It runs once per route, so each line of it shows in the benchmark.
        """
        if not isinstance(data, bytes):
            data = bytes(data)
        total = len(data)
        view = memoryview(data)[:total & ~3]
        u32, u16 = view.cast("I"), view.cast("H")
        shapes, gateway_shapes, prefixes, ips = self.shapes, self.gateway_shapes, self.prefixes, self.ips
        hints, append = self.gateway_hints.setdefault(_AF_INET, {}), out.append
        newroute, inet, gateway_header = _RTM_NEWROUTE, _AF_INET, _GATEWAY_HEADER_V4
        prefix_mask, octet_shift = _PREFIX_MASK, _LAST_OCTET_SHIFT
        status = 0
        off = 0
        while off + 20 <= total:
            length = u32[off >> 2]
            end = off + length
            # hints only has lengths that passed _message()'s checks for an IPv4 route (>= 44, aligned).
            if end <= total and u16[(off >> 1) + 2] == newroute and data[off + 16] == inet:
                hint = hints.get(length)
            else:
                hint = None
            if hint is None:
                if length < 16 or end > total:
                    break  # truncated
                status |= self._message(data, off, end, out)
                off = (end + 3) & ~3
                continue
            if hint and u32[(end - hint) >> 2] == gateway_header:
                gw_at = end - hint + 4
                key = data[off + 16:off + 40] + data[off + 44:gw_at] + data[gw_at + 4:end]
                shape = gateway_shapes.get(key) or self._shape(key, data, off, end, alen=4, gw_at=gw_at)
                template, tail, kind = shape
                if kind is None:
                    route = template.copy()
                    raw = data[gw_at:gw_at + 4]
                    route["gateway"] = ips.get(raw) or self._gateway(raw)
                    value = u32[(off >> 2) + 10]
                    route["dst"] = ((prefixes.get(value & prefix_mask) or self._prefix(value & prefix_mask))
                                    + tail[(value >> octet_shift) & 255])
                    append(route)
                    off = end
                    continue
            else:
                gw_at = 0
                key = data[off + 16:off + 40] + data[off + 44:end]
                shape = shapes.get(key) or self._shape(key, data, off, end, alen=4, gw_at=0)
                template, tail, kind = shape
                if kind is None:
                    route = template.copy()
                    value = u32[(off >> 2) + 10]
                    route["dst"] = ((prefixes.get(value & prefix_mask) or self._prefix(value & prefix_mask))
                                    + tail[(value >> octet_shift) & 255])
                    append(route)
                    off = end
                    continue
            self._emit(data, off, end, out, shape, alen=4, gw_at=gw_at)
            off = end
        return status

    def _message(self, data, off, end, out):
        """Any message the inline loop does not take: control messages, IPv6, the first IPv4
        route of each length, odd or truncated routes."""
        length, mtype, mflags = _NLMSGHDR.unpack_from(data, off)
        if mtype != _RTM_NEWROUTE:
            return _control(data, off, end, mtype, mflags)
        alen = _ADDR_LEN.get(data[off + 16]) if length > 16 and not length & 3 else None
        if alen is None or length < 40 + alen:
            self._decode_one(data, off, end, out)
            return 0
        hints = self.gateway_hints.setdefault(data[off + 16], {})
        if length not in hints:
            hints[length] = _gateway_hint(data, off, end, alen)
        self._shaped(data, off, end, out, alen)
        return 0

    def _shaped(self, data, off, end, out, alen):
        """One route message through the shape cache (any address family)."""
        hint = self.gateway_hints[data[off + 16]][end - off]
        dst_at = off + 40
        if hint and data[end - hint:end - hint + 4] == _NLA.pack(4 + alen, _RTA_GATEWAY):
            gw_at = end - hint + 4
            key = data[off + 16:dst_at] + data[dst_at + alen:gw_at] + data[gw_at + alen:end]
            shape = self.gateway_shapes.get(key) or self._shape(key, data, off, end, alen=alen, gw_at=gw_at)
        else:
            gw_at = 0
            key = data[off + 16:dst_at] + data[dst_at + alen:end]
            shape = self.shapes.get(key) or self._shape(key, data, off, end, alen=alen, gw_at=0)
        self._emit(data, off, end, out, shape, alen=alen, gw_at=gw_at)

    def _emit(self, data, off, end, out, shape, *, alen, gw_at):
        """Append the route of one message given its shape."""
        template, tail, kind = shape
        if kind is _GENERIC:
            self._decode_one(data, off, end, out)
            return
        if kind is _SKIP:
            return
        route = template.copy()
        dst_at = off + 40
        if alen == 4:
            route["dst"] = _ip(data[dst_at:dst_at + 4]).rsplit(".", 1)[0] + "." + tail[data[dst_at + 3]]
        else:
            route["dst"] = _ip(data[dst_at:dst_at + alen]) + tail
        if gw_at:
            raw = data[gw_at:gw_at + alen]
            route["gateway"] = self.ips.get(raw) or self._gateway(raw)
        if kind is _MULTIPATH:
            route["multipath"] = [dict(hop) for hop in route["multipath"]]
        out.append(route)

    def _decode_one(self, data, off, end, out):
        table, route, _shape = _route_message(data, off + 16, end, self.names)
        if route is not None and (self.table is None or table == self.table):
            out.append(route)

    def _shape(self, key, data, off, end, *, alen, gw_at):
        """Decode one message in full and cache under key what its shape is (a cache miss)."""
        table, route, attrs = _route_message(data, off + 16, end, self.names)
        dst_at = off + 40
        if self.table is not None and table != self.table:
            shape = (None, None, _SKIP)
        elif (route is not None and route["dst"] != "default" and attrs.get(_RTA_DST) == (dst_at, dst_at + alen)
              and (not gw_at or attrs.get(_RTA_GATEWAY) == (gw_at, gw_at + alen))):
            dst_len = data[off + 17]
            if alen == 4:
                tail = self.last_octets.get(dst_len)
                if tail is None:
                    tail = self.last_octets[dst_len] = [f"{octet}/{dst_len}" for octet in range(256)]
            else:
                tail = f"/{dst_len}"
            shape = (route, tail, None if route["multipath"] is None else _MULTIPATH)
        else:
            shape = (None, None, _GENERIC)
        if gw_at:
            cache = self.gateway_shapes
        else:
            cache = self.shapes
            hints = self.gateway_hints.setdefault(data[off + 16], {})
            if not hints.get(end - off):
                # Learn where messages of this length keep their gateway (the first one found wins).
                hints[end - off] = _gateway_hint(data, off, end, alen)
        if len(cache) < _MAX_SHAPES:
            cache[key] = shape
        return shape

    def _prefix(self, masked):
        prefix = self.prefixes[masked] = _ip(_U32.pack(masked)).rsplit(".", 1)[0] + "."
        return prefix

    def _gateway(self, raw):
        gateway = self.ips[raw] = _ip(raw)
        return gateway


def _gateway_hint(data, off, end, alen):
    """Where RTA_GATEWAY sits in this message, as a distance from its end (0: none after RTA_DST)."""
    span = _attrs(data, off + 16 + _RTMSG.size, end).get(_RTA_GATEWAY)
    if span is None or span[1] - span[0] != alen or span[0] - 4 < off + 40 + alen:
        return 0
    return end - (span[0] - 4)


def decode_routes(data, names=None, table=RT_TABLE_MAIN):
    """Route dicts of the RTM_NEWROUTE messages in data (kernel order), keeping only routes of
    ``table`` (None: every table). ``names`` maps ifindex -> name for the ``dev`` fields."""
    out = []
    _RouteDecoder(names, table).feed(data, out)
    return out


# ---------------------------------------------------------------------------------------------
# Links, addresses, neighbours, FDB, rules


def _link(data, start, end):
    if end - start < _IFINFOMSG.size:
        return None
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, start)
    attrs = _attrs(data, start + _IFINFOMSG.size, end)
    kind = vxlan = None
    info = attrs.get(_IFLA_LINKINFO)
    if info is not None:
        nested = _attrs(data, info[0], info[1])
        kind = _str(data, nested.get(_IFLA_INFO_KIND))
        if kind == "vxlan" and _IFLA_INFO_DATA in nested:
            vxlan = _vxlan(data, nested[_IFLA_INFO_DATA])
    address = _raw(data, attrs.get(_IFLA_ADDRESS))
    operstate = _u8(data, attrs.get(_IFLA_OPERSTATE))
    return {
        "index": index, "name": _str(data, attrs.get(_IFLA_IFNAME)), "kind": kind,
        "up": bool(flags & _IFF_UP), "operstate": OPERSTATES.get(operstate, operstate),
        "mtu": _u32(data, attrs.get(_IFLA_MTU)),
        # Ethernet-style hardware addresses only (tunl0 and friends carry an IPv4 address here).
        "mac": _mac(address) if address is not None and len(address) == 6 else None,
        "master": _u32(data, attrs.get(_IFLA_MASTER)) or None,
        "link": _u32(data, attrs.get(_IFLA_LINK)) or None,
        "vxlan": vxlan,
    }


def _vxlan(data, span):
    attrs = _attrs(data, span[0], span[1])
    port = attrs.get(_IFLA_VXLAN_PORT)
    return {
        "vni": _u32(data, attrs.get(_IFLA_VXLAN_ID)),
        "port": _BE16.unpack_from(data, port[0])[0] if port is not None and port[1] - port[0] >= 2 else None,
        "local": _addr(data, attrs.get(_IFLA_VXLAN_LOCAL) or attrs.get(_IFLA_VXLAN_LOCAL6)),
        "link": _u32(data, attrs.get(_IFLA_VXLAN_LINK)) or None,
    }


def _address(data, start, end):
    if end - start < _IFADDRMSG.size:
        return None
    family, prefixlen, flags, scope, index = _IFADDRMSG.unpack_from(data, start)
    version = _FAMILY_VERSION.get(family)
    if version is None:
        return None
    attrs = _attrs(data, start + _IFADDRMSG.size, end)
    flags32 = _u32(data, attrs.get(_IFA_FLAGS))
    if flags32 is not None:
        flags = flags32
    names = _flag_names(flags, _IFA_FLAG_NAMES)
    if flags & 0x01:
        names.insert(0, "secondary" if version == 4 else "temporary")
    local, address = attrs.get(_IFA_LOCAL), attrs.get(_IFA_ADDRESS)
    out = {
        "index": index, "family": version,
        # IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
        "address": _addr(data, local or address),
        "prefixlen": prefixlen, "scope": ADDRESS_SCOPES.get(scope, scope), "flags": names,
        "label": _str(data, attrs.get(_IFA_LABEL)),
    }
    # "peer" only when the address has one, the way netlink's AddrList (calico-node from v3.32)
    # tells: IPv4 sends both, differing when there is a peer; IPv6 sends IFA_LOCAL only with one.
    if local is not None and address is not None and (version == 6 or _raw(data, local) != _raw(data, address)):
        out["peer"] = _addr(data, address)
    return out


def _neighbour_fields(data, start, end):
    if end - start < _NDMSG.size:
        return None, None, None, None
    family, index, state, _flags, _type = _NDMSG.unpack_from(data, start)
    attrs = _attrs(data, start + _NDMSG.size, end)
    entry = {"index": index, "lladdr": _mac(_raw(data, attrs.get(_NDA_LLADDR))),
             "state": _flag_names(state, _NUD_STATE_NAMES) or ["none"]}
    return family, entry, attrs.get(_NDA_DST), index


def decode_links(data):
    """Link dicts of the RTM_NEWLINK messages in data."""
    out = []
    _feed(data, _RTM_NEWLINK, _link, out)
    return out


def decode_addresses(data):
    """Address dicts of the RTM_NEWADDR messages in data (IPv4 and IPv6, in message order)."""
    out = []
    _feed(data, _RTM_NEWADDR, _address, out)
    return out


def _neighbour_decoder(names):
    def decode(data, start, end):
        family, entry, dst, index = _neighbour_fields(data, start, end)
        version = _FAMILY_VERSION.get(family)
        if version is None or dst is None:
            return None
        return {"index": index, "dev": names.get(index), "family": version, "dst": _addr(data, dst),
                "lladdr": entry["lladdr"], "state": entry["state"]}
    return decode


def _fdb_decoder(names):
    def decode(data, start, end):
        family, entry, dst, index = _neighbour_fields(data, start, end)
        if family != _AF_BRIDGE or dst is None:
            return None
        return {"index": index, "dev": names.get(index), "lladdr": entry["lladdr"], "dst": _addr(data, dst),
                "state": entry["state"]}
    return decode


def decode_neighbours(data, names=None):
    """IPv4/IPv6 neighbour dicts of the RTM_NEWNEIGH messages in data."""
    out = []
    _feed(data, _RTM_NEWNEIGH, _neighbour_decoder(names or {}), out)
    return out


def decode_fdb(data, names=None):
    """Bridge FDB dicts (AF_BRIDGE RTM_NEWNEIGH) of the entries that have a dst (VXLAN remotes)."""
    out = []
    _feed(data, _RTM_NEWNEIGH, _fdb_decoder(names or {}), out)
    return out


def _rule(data, start, end):
    if end - start < _FIB_RULE_HDR.size:
        return None
    family, dst_len, src_len, _tos, table, _res1, _res2, _action, _flags = _FIB_RULE_HDR.unpack_from(data, start)
    version = _FAMILY_VERSION.get(family)
    if version is None:
        return None
    attrs = _attrs(data, start + _FIB_RULE_HDR.size, end)
    table_attr = _u32(data, attrs.get(_FRA_TABLE))
    return {
        "family": version, "priority": _u32(data, attrs.get(_FRA_PRIORITY)) or 0,
        "table": table if table_attr is None else table_attr,
        "src": _prefix(data, attrs.get(_FRA_SRC), src_len), "dst": _prefix(data, attrs.get(_FRA_DST), dst_len),
        "iif": _str(data, attrs.get(_FRA_IIFNAME)), "oif": _str(data, attrs.get(_FRA_OIFNAME)),
        "fwmark": _u32(data, attrs.get(_FRA_FWMARK)),
    }


def _prefix(data, span, length):
    address = _addr(data, span)
    return None if address is None or not length else f"{address}/{length}"


def decode_rules(data):
    """IPv4/IPv6 rule dicts of the RTM_NEWRULE messages in data."""
    out = []
    _feed(data, _RTM_NEWRULE, _rule, out)
    return out


def links_with_addresses(snap):
    """The fact's ``links``: each snapshot link (in the kernel's link-dump order, which calico-node's
    autodetection walks backwards: keep it) with its addresses (kernel order) under ``addresses``,
    without their ``index``."""
    by_index = {}
    for address in snap["addresses"]:
        by_index.setdefault(address["index"], []).append({k: v for k, v in address.items() if k != "index"})
    return [dict(link, addresses=by_index.get(link["index"], [])) for link in snap["links"]]


# ---------------------------------------------------------------------------------------------
# The socket


def _socket(netns):
    """An rtnetlink socket in this network namespace, or in the named one. A socket stays in the
    namespace it was made in, so the process enters the namespace only to make it (pyroute2's
    pushns/popns, in every release from 0.7.2; its create_socket came later), and never creates
    a namespace that is not there."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
    fd = os.open(netns if "/" in netns else os.path.join("/var/run/netns", netns), os.O_RDONLY)
    try:
        pushns(fd)
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
        finally:
            popns()
    finally:
        os.close(fd)


class Netlink:
    """An rtnetlink socket in the current network namespace, or in the named one (``ip netns``).

    pyroute2 encodes the requests; this class receives the raw replies and hands them to the
    decoders above.
    """

    def __init__(self, netns=None, timeout=_TIMEOUT):
        if not HAS_PYROUTE2:
            raise ImportError(missing_pyroute2())
        self._sock = _socket(netns)
        try:
            # Lets the kernel filter dumps (main table only); without it the decoders filter.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)
            self._sock.settimeout(timeout)
            self._sock.bind((0, 0))
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        self._buf = bytearray(_RECV_SIZE)
        self._names = {}

    def close(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, cls, mtype, flags, family, *, fields=(), attrs=()):
        self._seq += 1
        msg = cls()
        msg["header"]["type"] = mtype
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self._seq
        msg["header"]["pid"] = 0
        msg["family"] = family
        for name, value in fields:
            msg[name] = value
        msg["attrs"] = list(attrs)
        msg.encode()
        self._sock.send(msg.data)

    def _recv(self):
        size = self._sock.recv_into(self._buf, 0, socket.MSG_TRUNC)
        if size > len(self._buf):
            raise NetlinkError(errno.EMSGSIZE)
        return bytes(memoryview(self._buf)[:size])

    def _dump(self, cls, mtype, family, feed, *, fields=(), attrs=()):
        """Run one dump; returns what feed(data, out) appended. A dump the kernel marks as
        interrupted is repeated (at most _DUMP_ATTEMPTS times; the last one is kept)."""
        out = []
        for _attempt in range(_DUMP_ATTEMPTS):
            self._send(cls, mtype, _NLM_F_REQUEST | _NLM_F_DUMP, family, fields=fields, attrs=attrs)
            out = []
            status = 0
            while not status & _DONE:  # each recv waits at most `timeout` seconds
                status |= feed(self._recv(), out)
            if not status & _INTR:
                break
        return out

    def links(self):
        """Link dicts in the kernel's dump order (never sorted: calico-node's autodetection walks
        this order backwards; ascending ifindex on current kernels, hash-bucket order on older
        ones); their names also serve the ``dev`` fields of later calls."""
        links = self._dump(ifinfmsg, _RTM_GETLINK, _AF_UNSPEC, lambda data, out: _feed(data, _RTM_NEWLINK, _link, out),
                           attrs=[("IFLA_EXT_MASK", _RTEXT_FILTER_SKIP_STATS)])
        self._names = {link["index"]: link["name"] for link in links}
        return links

    def snapshot(self):
        """The snapshot dict of docs/development.md."""
        with _gc_paused():
            return self._snapshot()

    def _snapshot(self):
        links = self.links()
        names = self._names
        addresses = self._dump(ifaddrmsg, _RTM_GETADDR, _AF_UNSPEC,
                               lambda data, out: _feed(data, _RTM_NEWADDR, _address, out))
        decoder = _RouteDecoder(names)
        routes = []
        for family in (_AF_INET, _AF_INET6):
            routes += self._dump(rtmsg, _RTM_GETROUTE, family, decoder.feed,
                                 fields=[("table", RT_TABLE_MAIN)], attrs=[("RTA_TABLE", RT_TABLE_MAIN)])
        neighbour = _neighbour_decoder(names)
        neighbours = self._dump(ndmsg, _RTM_GETNEIGH, _AF_UNSPEC,
                                lambda data, out: _feed(data, _RTM_NEWNEIGH, neighbour, out))
        fdb_entry = _fdb_decoder(names)
        fdb = self._dump(ndmsg, _RTM_GETNEIGH, _AF_BRIDGE, lambda data, out: _feed(data, _RTM_NEWNEIGH, fdb_entry, out))
        rules = self._dump(fibmsg, _RTM_GETRULE, _AF_UNSPEC, lambda data, out: _feed(data, _RTM_NEWRULE, _rule, out))
        return {"links": links, "addresses": addresses, "routes": routes, "neighbours": neighbours,
                "fdb": fdb, "rules": rules}

    def _request_one(self, cls, mtype, family, wanted, decode_one, *, fields=(), attrs=()):
        self._send(cls, mtype, _NLM_F_REQUEST, family, fields=fields, attrs=attrs)
        out = []
        _feed(self._recv(), wanted, decode_one, out)
        return out[0] if out else None

    def link_name(self, index):
        """Name of the link with this ifindex (None if there is none)."""
        if index is None:
            return None
        if index not in self._names:
            try:
                link = self._request_one(ifinfmsg, _RTM_GETLINK, _AF_UNSPEC, _RTM_NEWLINK, _link,
                                         fields=[("index", index)], attrs=[("IFLA_EXT_MASK", _RTEXT_FILTER_SKIP_STATS)])
            except NetlinkError as exc:
                if exc.errno != errno.ENODEV:
                    raise
                link = None
            self._names[index] = link and link["name"]
        return self._names[index]

    def route_write(self, verb, route):
        """One route change as ``ip route VERB`` makes it (add, replace, prepend, del): one atomic
        kernel operation in the main table. ``route`` is a snapshot route dict (dst, type, protocol,
        gateway, dev, onlink, metric, scope, prefsrc). NetlinkError when the kernel refuses it."""
        mtype, flags = _ROUTE_VERBS[verb]
        dst = route["dst"]
        family = _AF_INET6 if route.get("family") == 6 or ":" in dst else _AF_INET
        types = {name: number for number, name in ROUTE_TYPES.items()}
        scopes = {name: number for number, name in ROUTE_SCOPES.items()}
        fields = [("table", RT_TABLE_MAIN), ("proto", route["protocol"]),
                  ("type", types[route.get("type") or "unicast"])]
        attrs = [("RTA_TABLE", RT_TABLE_MAIN)]
        if dst != "default":
            network = ipaddress.ip_network(dst, strict=False)
            fields.append(("dst_len", network.prefixlen))
            attrs.append(("RTA_DST", str(network.network_address)))
        if route.get("gateway"):
            attrs.append(("RTA_GATEWAY", route["gateway"]))
        if route.get("dev"):
            attrs.append(("RTA_OIF", self.link_index(route["dev"])))
        if route.get("metric"):
            attrs.append(("RTA_PRIORITY", route["metric"]))
        if verb == "del":
            fields.append(("scope", 255))  # RT_SCOPE_NOWHERE: a delete matches any scope
        else:
            fields.append(("scope", scopes.get(route.get("scope") or "universe", 0)))
            if route.get("onlink"):
                fields.append(("flags", _RTNH_F_ONLINK))
            if route.get("prefsrc"):
                attrs.append(("RTA_PREFSRC", route["prefsrc"]))
        self._send(rtmsg, mtype, _NLM_F_REQUEST | _NLM_F_ACK | flags, family, fields=fields, attrs=attrs)
        _feed(self._recv(), None, None, [])  # the acknowledgement; an error code raises NetlinkError

    def link_index(self, name):
        """The ifindex of the link called ``name``; NetlinkError(ENODEV) when there is none."""
        for index, known in self._names.items():
            if known == name:
                return index
        for link in self.links():
            if link["name"] == name:
                return link["index"]
        raise NetlinkError(errno.ENODEV)

    def neigh_write(self, verb, entry):
        """One neighbour change as ``ip neigh VERB ... nud permanent`` makes it (add, replace, del):
        ``entry`` = {"dst", "lladdr", "dev"}; one atomic kernel operation. NetlinkError when refused."""
        mtype, flags = _NEIGH_VERBS[verb]
        family = _AF_INET6 if ":" in entry["dst"] else _AF_INET
        attrs = [("NDA_DST", entry["dst"])]
        if verb != "del":
            attrs.append(("NDA_LLADDR", entry["lladdr"]))
        fields = [("ifindex", self.link_index(entry["dev"])), ("state", _NUD_PERMANENT), ("flags", 0),
                  ("ndm_type", 0)]
        self._send(ndmsg, mtype, _NLM_F_REQUEST | _NLM_F_ACK | flags, family, fields=fields, attrs=attrs)
        _feed(self._recv(), None, None, [])

    def fdb_write(self, verb, entry):
        """One VXLAN FDB change as ``bridge fdb VERB <lladdr> dev <dev> dst <dst> self permanent`` makes
        it (add, replace, del): ``entry`` = {"lladdr", "dst", "dev"}; one atomic kernel operation."""
        mtype, flags = _NEIGH_VERBS[verb]
        fields = [("ifindex", self.link_index(entry["dev"])), ("state", _NUD_PERMANENT), ("flags", _NTF_SELF),
                  ("ndm_type", 0)]
        attrs = [("NDA_LLADDR", entry["lladdr"]), ("NDA_DST", entry["dst"])]
        self._send(ndmsg, mtype, _NLM_F_REQUEST | _NLM_F_ACK | flags, _AF_BRIDGE, fields=fields, attrs=attrs)
        _feed(self._recv(), None, None, [])

    def route_get(self, dst):
        """The kernel's route lookup for one destination (what ``ip route get`` prints), as a
        snapshot route dict plus ``table``; None if the kernel has no usable route to it."""
        address = ipaddress.ip_address(dst)
        family = _AF_INET if address.version == 4 else _AF_INET6
        # IPv6 reports the route's own table and (with strict checking) refuses this flag.
        lookup_flags = _RTM_F_LOOKUP_TABLE if family == _AF_INET else 0

        def decode(data, start, end):
            table, route, _shape = _route_message(data, start, end, {})
            if route is not None:
                route["table"] = table
            return route

        try:
            route = self._request_one(rtmsg, _RTM_GETROUTE, family, _RTM_NEWROUTE, decode,
                                      fields=[("dst_len", address.max_prefixlen), ("flags", lookup_flags)],
                                      attrs=[("RTA_DST", str(address))])
        except NetlinkError as exc:
            if exc.errno in _NO_ROUTE:
                return None
            raise
        if route is not None:
            route["dev"] = self.link_name(route["oif"])
            for hop in route["multipath"] or ():
                hop["dev"] = self.link_name(hop["oif"])
        return route


def snapshot(netns=None):
    """Snapshot of the current network namespace (or of the named one): links, addresses,
    main-table routes (IPv4 then IPv6), neighbours, VXLAN FDB entries and rules."""
    with Netlink(netns) as nl:
        return nl.snapshot()


def route_get(dst, netns=None):
    """The kernel's route lookup for dst (``ip route get dst``): the route dict with its
    ``prefsrc`` (the source address the kernel picks), ``oif``/``dev``, ``gateway`` and ``table``;
    None when the kernel has no usable route (unreachable, prohibit, blackhole or none)."""
    with Netlink(netns) as nl:
        return nl.route_get(dst)
