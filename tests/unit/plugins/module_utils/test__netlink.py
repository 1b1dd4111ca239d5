"""_netlink's byte decoders, fed messages built with pyroute2's own encoders (an independent
implementation of the netlink formats) or packed by hand. No kernel, no socket."""

import errno
import ipaddress
import random
import struct

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _netlink as nl
from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

NAMES = {2: "eth0", 5: "vxlan.calico", 7: "tunl0", 9: "cali1234567890a"}
NLM_F_MULTI = 0x2


def encode(msg, mtype, **fields):
    msg["header"]["type"] = mtype
    msg["header"]["flags"] = NLM_F_MULTI
    msg["header"]["sequence_number"] = 1
    for name, value in fields.items():
        msg[name] = value
    msg.encode()
    return msg.data


def route(dst=None, dst_len=None, *, family=2, table=254, proto=3, scope=0, rtype=1, flags=0, attrs=(),
          table_attr="first"):
    """An RTM_NEWROUTE with the kernel's attribute order: RTA_TABLE, RTA_DST, then attrs
    (table_attr "last" or "none" moves RTA_TABLE to the end or leaves it out)."""
    msg = rtmsg()
    head = [("RTA_DST", dst)] if dst is not None else []
    tail = [("RTA_TABLE", table)] if table_attr == "last" else []
    if table_attr == "first":
        head.insert(0, ("RTA_TABLE", table))
    msg["attrs"] = head + list(attrs) + tail
    if dst_len is None:
        dst_len = 0 if dst is None else (32 if family == 2 else 128)
    # Tables above 255 only fit RTA_TABLE; the header then says RT_TABLE_COMPAT (252), as the kernel does.
    return encode(msg, 24, family=family, dst_len=dst_len, table=table if table < 256 else 252, proto=proto,
                  scope=scope, type=rtype, flags=flags)


def patched(data, offset, fmt, value):
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def with_attr(data, kind, payload):
    """data (one message) with one more attribute, packed by hand."""
    attr = struct.pack("=HH", 4 + len(payload), kind) + payload + bytes(-len(payload) % 4)
    return patched(data + attr, 0, "=I", len(data) + len(attr))


def done(flags=NLM_F_MULTI):
    return struct.pack("=IHHIIi", 20, 3, flags, 1, 0, 0)


def error(code):
    return struct.pack("=IHHIIi", 36, 2, 0, 1, 0, -code) + struct.pack("=IHHII", 16, 26, 0x301, 1, 0)


def expected_route(dst, **changes):
    base = {"family": 4, "dst": dst, "type": "unicast", "protocol": 3, "scope": "universe", "gateway": None,
            "oif": None, "dev": None, "metric": None, "prefsrc": None, "onlink": False, "multipath": None}
    base.update(changes)
    return base


# --- routes: the shapes Calico programs -------------------------------------------------------

def test_blackhole_block_of_bird():
    data = route("198.18.1.0", 26, proto=12, rtype=6)
    assert nl.decode_routes(data, NAMES) == [expected_route("198.18.1.0/26", type="blackhole", protocol=12)]


def test_ipip_remote_block_via_tunl0_onlink():
    data = route("198.18.2.0", 26, proto=12, flags=4, attrs=[("RTA_GATEWAY", "192.0.2.12"), ("RTA_OIF", 7)])
    assert nl.decode_routes(data, NAMES) == [expected_route(
        "198.18.2.0/26", protocol=12, gateway="192.0.2.12", oif=7, dev="tunl0", onlink=True)]


def test_workload_host_route_scope_link_proto_boot():
    data = route("198.18.1.5", 32, proto=3, scope=253, attrs=[("RTA_OIF", 9)])
    assert nl.decode_routes(data, NAMES) == [expected_route(
        "198.18.1.5/32", scope="link", oif=9, dev="cali1234567890a")]


def test_felix_route_protocol_80_and_unnamed_interface():
    data = route("198.18.3.0", 26, proto=80, flags=4, attrs=[("RTA_GATEWAY", "198.18.3.0"), ("RTA_OIF", 42)])
    (got,) = nl.decode_routes(data, NAMES)
    assert (got["protocol"], got["dev"], got["oif"]) == (80, None, 42)
    assert nl.PROTOCOL_NAMES[got["protocol"]] == "felix"


def test_protocol_names_cover_the_owners():
    assert {p: nl.PROTOCOL_NAMES[p] for p in (2, 3, 4, 12, 16, 80)} == {
        2: "kernel", 3: "boot", 4: "static", 12: "bird", 16: "dhcp", 80: "felix"}


def test_prefsrc_and_metric():
    data = route("203.0.113.0", 24, proto=4, attrs=[
        ("RTA_PRIORITY", 100), ("RTA_PREFSRC", "192.0.2.11"), ("RTA_GATEWAY", "192.0.2.1"), ("RTA_OIF", 2)])
    assert nl.decode_routes(data, NAMES) == [expected_route(
        "203.0.113.0/24", protocol=4, metric=100, prefsrc="192.0.2.11", gateway="192.0.2.1", oif=2, dev="eth0")]


def test_default_route():
    data = route(None, attrs=[("RTA_GATEWAY", "192.0.2.1"), ("RTA_OIF", 2)], proto=16)
    assert nl.decode_routes(data, NAMES) == [expected_route(
        "default", protocol=16, gateway="192.0.2.1", oif=2, dev="eth0")]


def test_multipath_with_weights_onlink_and_via():
    hops = [{"oif": 2, "hops": 0, "flags": 4, "attrs": [("RTA_GATEWAY", "192.0.2.12")]},
            {"oif": 7, "hops": 2, "attrs": [("RTA_VIA", {"family": 10, "addr": "2001:db8::13"})]}]
    data = route("198.18.4.0", 26, proto=12, attrs=[("RTA_MULTIPATH", hops)])
    assert nl.decode_routes(data, NAMES) == [expected_route("198.18.4.0/26", protocol=12, multipath=[
        {"gateway": "192.0.2.12", "oif": 2, "dev": "eth0", "onlink": True, "weight": 1},
        {"gateway": "2001:db8::13", "oif": 7, "dev": "tunl0", "onlink": False, "weight": 3}])]


def test_multipath_hops_are_not_shared_between_routes():
    hops = [{"oif": 2, "hops": 0, "attrs": [("RTA_GATEWAY", "192.0.2.12")]},
            {"oif": 2, "hops": 0, "attrs": [("RTA_GATEWAY", "192.0.2.13")]}]
    data = b"".join(route(f"198.18.4.{i}", 32, attrs=[("RTA_MULTIPATH", hops)]) for i in range(3))
    routes = nl.decode_routes(data, NAMES)
    routes[0]["multipath"][0]["gateway"] = "changed"
    assert [r["multipath"][0]["gateway"] for r in routes] == ["changed", "192.0.2.12", "192.0.2.12"]
    assert [r["dst"] for r in routes] == ["198.18.4.0/32", "198.18.4.1/32", "198.18.4.2/32"]


def test_ipv6_routes():
    data = (route("2001:db8:1::", 64, family=10, proto=12,
                  attrs=[("RTA_PRIORITY", 1024), ("RTA_GATEWAY", "fe80::1"), ("RTA_OIF", 2), ("RTA_PREF", 0)])
            + route("2001:db8:2::", 48, family=10, proto=80, rtype=6, attrs=[("RTA_PRIORITY", 1024)])
            + route("::ffff:198.51.100.0", 120, family=10, attrs=[("RTA_OIF", 2)]))
    assert nl.decode_routes(data, NAMES) == [
        expected_route("2001:db8:1::/64", family=6, protocol=12, metric=1024, gateway="fe80::1", oif=2, dev="eth0"),
        expected_route("2001:db8:2::/48", family=6, protocol=80, type="blackhole", metric=1024),
        # ipaddress's spelling, not inet_ntop's dotted one
        expected_route(f"{ipaddress.IPv6Address('::ffff:198.51.100.0')}/120", family=6, oif=2, dev="eth0"),
    ]


def test_other_tables_are_skipped_unless_asked_for():
    data = (route("198.18.5.0", 26, table=100, attrs=[("RTA_OIF", 2)])
            + route("192.0.2.11", 32, table=255, rtype=2, scope=254, attrs=[("RTA_OIF", 2)])
            + route("198.18.6.0", 26, table=1000, attrs=[("RTA_OIF", 2)])
            + route("198.18.7.0", 26, attrs=[("RTA_OIF", 2)]))
    assert [r["dst"] for r in nl.decode_routes(data, NAMES)] == ["198.18.7.0/26"]
    assert [r["dst"] for r in nl.decode_routes(data, NAMES, table=1000)] == ["198.18.6.0/26"]
    assert [r["dst"] for r in nl.decode_routes(data, NAMES, table=None)] == [
        "198.18.5.0/26", "192.0.2.11/32", "198.18.6.0/26", "198.18.7.0/26"]


def test_same_shape_routes_keep_their_own_destination_and_gateway():
    data = b"".join(route(f"198.18.{i}.{j * 64}", 26, proto=12, flags=4,
                          attrs=[("RTA_GATEWAY", f"192.0.2.{i}"), ("RTA_OIF", 7)])
                    for i in range(1, 4) for j in range(4))
    got = [(r["dst"], r["gateway"]) for r in nl.decode_routes(data, NAMES)]
    assert got == [(f"198.18.{i}.{j * 64}/26", f"192.0.2.{i}") for i in range(1, 4) for j in range(4)]


def test_same_shape_routes_share_one_cached_template():
    decoder = nl._RouteDecoder(NAMES)
    data = b"".join(route(f"198.18.{i}.0", 26, proto=12, flags=4,
                          attrs=[("RTA_GATEWAY", f"192.0.2.{i}"), ("RTA_OIF", 7)]) for i in range(50))
    out = []
    decoder.feed(data, out)
    assert len(out) == 50
    assert len(decoder.shapes) + len(decoder.gateway_shapes) == 1


def test_a_gateway_lookalike_at_the_learnt_gateway_place_is_not_cut_out():
    # Length 68, kernel order: the first message teaches that the gateway header sits 16 bytes
    # before the end. The next two carry, at that place, a nested RTAX value that looks like an
    # RTA_GATEWAY header, followed by an attribute header (RTA_PRIORITY vs RTA_OIF) that a
    # careless cache would cut out as the "gateway" and so mix the two up.
    def nla(kind, payload):
        return struct.pack("=HH", 4 + len(payload), kind) + payload + bytes(-len(payload) % 4)

    def hand_route(*attrs):
        body = struct.pack("=BBBBBBBBI", 2, 32, 0, 0, 254, 3, 0, 1, 0) + b"".join(attrs)
        return struct.pack("=IHHII", 16 + len(body), 24, NLM_F_MULTI, 1, 0) + body

    table, dst = nla(15, struct.pack("=I", 254)), nla(1, bytes([198, 18, 0, 1]))
    lookalike = nla(8, nla(2, struct.pack("=HH", 8, 5)))  # RTA_METRICS { RTAX_MTU = 0x00050008 }
    learn = hand_route(table, dst, nla(6, struct.pack("=I", 5)), nla(5, bytes([192, 0, 2, 1])),
                       nla(4, struct.pack("=I", 2)))
    first = hand_route(table, dst, lookalike, nla(6, struct.pack("=I", 9)), nla(0, b""))
    second = hand_route(table, dst, lookalike, nla(4, struct.pack("=I", 9)), nla(0, b""))
    assert len(learn) == len(first) == len(second) == 68
    got = nl.decode_routes(learn + first + second, NAMES)
    assert [(r["gateway"], r["metric"], r["oif"]) for r in got] == [
        ("192.0.2.1", 5, 2), (None, 9, None), (None, None, 9)]


def _oracle(data):
    """What the snapshot should say about one route message, from pyroute2's own decoder."""
    msg = rtmsg(data)
    msg.decode()
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    family = {2: 4, 10: 6}[msg["family"]]
    hops = None
    if msg.get_attr("RTA_MULTIPATH") is not None:
        hops = [{"gateway": hop.get_attr("RTA_GATEWAY"), "oif": hop["oif"], "dev": NAMES.get(hop["oif"]),
                 "onlink": bool(hop["flags"] & 4), "weight": hop["hops"] + 1} for hop in msg.get_attr("RTA_MULTIPATH")]
    dst = msg.get_attr("RTA_DST")
    return table, {
        "family": family,
        "dst": f"{ipaddress.ip_address(dst)}/{msg['dst_len']}" if msg["dst_len"] else "default",
        "type": nl.ROUTE_TYPES[msg["type"]], "protocol": msg["proto"],
        "scope": nl.ROUTE_SCOPES.get(msg["scope"], msg["scope"]),
        "gateway": msg.get_attr("RTA_GATEWAY") and str(ipaddress.ip_address(msg.get_attr("RTA_GATEWAY"))),
        "oif": msg.get_attr("RTA_OIF"), "dev": NAMES.get(msg.get_attr("RTA_OIF")),
        "metric": msg.get_attr("RTA_PRIORITY"), "prefsrc": msg.get_attr("RTA_PREFSRC"),
        "onlink": bool(msg["flags"] & 4), "multipath": hops,
    }


def _random_route(rng, n):
    """A route of one of many shapes; values repeat (so shapes get cached) or are unique."""
    family = 10 if rng.random() < 0.2 else 2
    if family == 2:
        dst = str(ipaddress.IPv4Address("198.18.0.0") + n)
        dst_len = rng.choice((0, 24, 26, 32, 32))
        gateways = [f"192.0.2.{i}" for i in range(1, 6)] + [str(ipaddress.IPv4Address("198.19.0.0") + n)]
    else:
        dst = str(ipaddress.IPv6Address("2001:db8:1::") + (n << 64))
        dst_len = rng.choice((0, 64, 128))
        gateways = ["fe80::1", "2001:db8::12", str(ipaddress.IPv6Address("2001:db8:ff::") + n)]
    attrs = []
    if rng.random() < 0.3:
        # 0x00050008 looks like an RTA_GATEWAY header when read where one might be.
        attrs.append(("RTA_PRIORITY", rng.choice((100, 1024, 0x00050008))))
    if rng.random() < 0.15:
        attrs.append(("RTA_METRICS", {"attrs": [("RTAX_MTU", rng.choice((1400, 0x00050008)))]}))
    if family == 2 and rng.random() < 0.2:
        attrs.append(("RTA_PREFSRC", rng.choice(("192.0.2.11", "198.51.100.11"))))
    if rng.random() < 0.1:
        hop_gateways = rng.sample(gateways, 2)
        attrs.append(("RTA_MULTIPATH", [{"oif": rng.choice((2, 7)), "hops": rng.randrange(3),
                                         "flags": rng.choice((0, 4)), "attrs": [("RTA_GATEWAY", g)]}
                                        for g in hop_gateways]))
    else:
        if rng.random() < 0.7:
            attrs.append(("RTA_GATEWAY", rng.choice(gateways)))
        if rng.random() < 0.9:
            attrs.append(("RTA_OIF", rng.choice(sorted(NAMES))))
    if rng.random() < 0.3:
        rng.shuffle(attrs)
    return route(dst if dst_len else None, dst_len, family=family, table=rng.choice((254, 254, 254, 100, 255)),
                 proto=rng.choice((2, 3, 12, 80)), scope=rng.choice((0, 253)), rtype=rng.choice((1, 1, 6)),
                 flags=rng.choice((0, 4)), attrs=attrs, table_attr=rng.choice(("first",) * 8 + ("last", "none")))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cached_shapes_agree_with_pyroute2_on_mixed_tables(seed):
    rng = random.Random(seed)
    messages = [_random_route(rng, n) for n in range(1500)]
    expected = [r for table, r in map(_oracle, messages) if table == 254]
    assert nl.decode_routes(b"".join(messages), NAMES) == expected
    # The same through one decoder fed several buffers, as a dump arrives.
    decoder, got = nl._RouteDecoder(NAMES), []
    for start in range(0, len(messages), 97):
        decoder.feed(b"".join(messages[start:start + 97]), got)
    assert got == expected


# --- control messages and damaged input -------------------------------------------------------

def test_done_error_and_interrupted_dump_status():
    decoder, out = nl._RouteDecoder(NAMES), []
    one = route("198.18.1.0", 26, attrs=[("RTA_OIF", 2)])
    assert decoder.feed(one, out) == 0
    assert decoder.feed(one + done(), out) == nl._DONE
    assert decoder.feed(done(NLM_F_MULTI | 0x10), out) == nl._DONE | nl._INTR
    assert len(out) == 2
    with pytest.raises(nl.NetlinkError) as caught:
        nl.decode_routes(error(errno.EBUSY))
    assert caught.value.errno == errno.EBUSY
    assert nl.decode_links(error(0)) == []  # an ACK


def test_truncated_buffer_keeps_the_whole_messages():
    first = route("198.18.1.0", 26, attrs=[("RTA_OIF", 2)])
    second = route("198.18.2.0", 26, attrs=[("RTA_GATEWAY", "192.0.2.1"), ("RTA_OIF", 2)])
    for cut in (1, 5, 17, 30, 41, len(second) - 1):
        assert [r["dst"] for r in nl.decode_routes(first + second[:cut], NAMES)] == ["198.18.1.0/26"]


def test_odd_messages_do_not_crash_or_loop():
    good = route("198.18.1.0", 26, attrs=[("RTA_OIF", 2)])
    assert nl.decode_routes(b"") == []
    assert nl.decode_routes(struct.pack("=IHHII", 0, 24, 0, 0, 0) + good) == []  # nlmsg_len 0 ends the walk
    assert nl.decode_routes(struct.pack("=IHHII", 8, 24, 0, 0, 0) + good) == []
    short = struct.pack("=IHHII", 20, 24, 2, 1, 0) + b"\x02\x1a\x00\x00"  # rtmsg cut short
    assert [r["dst"] for r in nl.decode_routes(short + good, NAMES)] == ["198.18.1.0/26"]
    # An attribute claiming more bytes than the message holds is dropped; the rest decodes.
    overrun = route("198.18.3.0", 26, attrs=[("RTA_GATEWAY", "192.0.2.1"), ("RTA_OIF", 2)])
    overrun = patched(overrun, len(overrun) - 8, "=H", 200)
    assert nl.decode_routes(overrun, NAMES) == [expected_route("198.18.3.0/26", gateway="192.0.2.1")]
    # Lengths that are not multiples of 4, and a bytearray.
    assert [r["dst"] for r in nl.decode_routes(bytearray(good + b"\x00\x01\x02"), NAMES)] == ["198.18.1.0/26"]
    unaligned = patched(good, 0, "=I", len(good) - 2)  # the last attribute loses its last bytes
    assert [r["oif"] for r in nl.decode_routes(unaligned + good, NAMES)] == [None, 2]
    # Unknown address families (here AF_MPLS) are not routes of the snapshot.
    assert nl.decode_routes(patched(good, 16, "=B", 28)) == []


# --- links, addresses, neighbours, FDB, rules -------------------------------------------------

def link(index, name, *, flags=1, attrs=()):
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", name), *attrs]
    return encode(msg, 16, index=index, flags=flags)


def test_links():
    vxlan_info = {"attrs": [("IFLA_INFO_KIND", "vxlan"), ("IFLA_INFO_DATA", {"attrs": [
        ("IFLA_VXLAN_ID", 4096), ("IFLA_VXLAN_LINK", 2), ("IFLA_VXLAN_LOCAL", "192.0.2.11"),
        ("IFLA_VXLAN_PORT", 4789)]})]}
    data = (link(1, "lo", flags=0x9,
                 attrs=[("IFLA_MTU", 65536), ("IFLA_ADDRESS", "00:00:00:00:00:00"), ("IFLA_OPERSTATE", "UNKNOWN")])
            + link(2, "eth0", attrs=[("IFLA_MTU", 1500), ("IFLA_ADDRESS", "52:54:00:12:34:56"),
                                     ("IFLA_OPERSTATE", "UP"), ("IFLA_MASTER", 3), ("IFLA_LINK", 4),
                                     ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth")]})])
            + link(5, "vxlan.calico", attrs=[("IFLA_MTU", 1450), ("IFLA_ADDRESS", "66:aa:bb:cc:dd:ee"),
                                             ("IFLA_OPERSTATE", "UNKNOWN"), ("IFLA_LINKINFO", vxlan_info)])
            + link(7, "tunl0", flags=0, attrs=[("IFLA_MTU", 1480), ("IFLA_OPERSTATE", "DOWN"),
                                               ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "ipip")]})])
            + done())
    assert nl.decode_links(data) == [
        {"index": 1, "name": "lo", "kind": None, "up": True, "operstate": "UNKNOWN", "mtu": 65536,
         "mac": "00:00:00:00:00:00", "master": None, "link": None, "vxlan": None},
        {"index": 2, "name": "eth0", "kind": "veth", "up": True, "operstate": "UP", "mtu": 1500,
         "mac": "52:54:00:12:34:56", "master": 3, "link": 4, "vxlan": None},
        {"index": 5, "name": "vxlan.calico", "kind": "vxlan", "up": True, "operstate": "UNKNOWN", "mtu": 1450,
         "mac": "66:aa:bb:cc:dd:ee", "master": None, "link": None,
         "vxlan": {"vni": 4096, "port": 4789, "local": "192.0.2.11", "link": 2}},
        {"index": 7, "name": "tunl0", "kind": "ipip", "up": False, "operstate": "DOWN", "mtu": 1480,
         "mac": None, "master": None, "link": None, "vxlan": None},
    ]
    # IPIP devices carry their (IPv4) local address as IFLA_ADDRESS: not a MAC.
    ipip = with_attr(link(7, "tunl0"), 1, bytes(4))
    assert nl.decode_links(ipip)[0]["mac"] is None


def address(index, family, local, prefixlen, *, flags=0, scope=0, attrs=()):
    msg = ifaddrmsg()
    msg["attrs"] = [("IFA_ADDRESS", local), ("IFA_LOCAL", local), *attrs] if family == 2 else [
        ("IFA_ADDRESS", local), *attrs]
    return encode(msg, 20, family=family, prefixlen=prefixlen, flags=flags, scope=scope, index=index)


def test_addresses_in_message_order():
    peer = ifaddrmsg()
    peer["attrs"] = [("IFA_ADDRESS", "192.0.2.99"), ("IFA_LOCAL", "192.0.2.98"), ("IFA_LABEL", "ptp0")]
    data = (address(2, 2, "192.0.2.11", 24, flags=0x80, attrs=[("IFA_LABEL", "eth0"), ("IFA_FLAGS", 0x280)])
            + address(2, 2, "192.0.2.99", 24, flags=0x81, attrs=[("IFA_LABEL", "eth0:vip")])
            + encode(peer, 20, family=2, prefixlen=32, index=8)
            + address(2, 10, "2001:db8::11", 64, flags=0x80, attrs=[("IFA_FLAGS", 0x80)])
            + address(2, 10, "fe80::1", 64, flags=0x41, scope=253))
    assert nl.decode_addresses(data) == [
        {"index": 2, "family": 4, "address": "192.0.2.11", "prefixlen": 24, "scope": "global",
         "flags": ["permanent", "noprefixroute"], "label": "eth0"},
        {"index": 2, "family": 4, "address": "192.0.2.99", "prefixlen": 24, "scope": "global",
         "flags": ["secondary", "permanent"], "label": "eth0:vip"},
        {"index": 8, "family": 4, "address": "192.0.2.98", "prefixlen": 32, "scope": "global", "flags": [],
         "label": "ptp0", "peer": "192.0.2.99"},
        {"index": 2, "family": 6, "address": "2001:db8::11", "prefixlen": 64, "scope": "global",
         "flags": ["permanent"], "label": None},
        {"index": 2, "family": 6, "address": "fe80::1", "prefixlen": 64, "scope": "link",
         "flags": ["temporary", "tentative"], "label": None},
    ]


def neighbour(family, index, state, attrs):
    msg = ndmsg()
    msg["attrs"] = attrs
    return encode(msg, 28, family=family, ifindex=index, state=state)


def test_neighbours_and_fdb():
    data = (neighbour(2, 5, 0x80, [("NDA_DST", "198.18.2.0"), ("NDA_LLADDR", "66:aa:bb:cc:dd:01")])
            + neighbour(10, 2, 0x04, [("NDA_DST", "fe80::1"), ("NDA_LLADDR", "52:54:00:00:00:01")])
            + neighbour(2, 2, 0x20, [("NDA_DST", "192.0.2.77")])
            + neighbour(7, 5, 0x80, [("NDA_LLADDR", "66:aa:bb:cc:dd:01"), ("NDA_DST", "192.0.2.12")])
            + neighbour(7, 5, 0xC0, [("NDA_LLADDR", "00:00:00:00:00:00"), ("NDA_DST", "192.0.2.13")])
            + neighbour(7, 2, 0x80, [("NDA_LLADDR", "33:33:00:00:00:01")])  # no dst: not a VXLAN remote
            + neighbour(2, 2, 0x00, [("NDA_DST", "192.0.2.78")])
            + done())
    assert nl.decode_neighbours(data, NAMES) == [
        {"index": 5, "dev": "vxlan.calico", "family": 4, "dst": "198.18.2.0", "lladdr": "66:aa:bb:cc:dd:01",
         "state": ["permanent"]},
        {"index": 2, "dev": "eth0", "family": 6, "dst": "fe80::1", "lladdr": "52:54:00:00:00:01",
         "state": ["stale"]},
        {"index": 2, "dev": "eth0", "family": 4, "dst": "192.0.2.77", "lladdr": None, "state": ["failed"]},
        {"index": 2, "dev": "eth0", "family": 4, "dst": "192.0.2.78", "lladdr": None, "state": ["none"]},
    ]
    assert nl.decode_fdb(data, NAMES) == [
        {"index": 5, "dev": "vxlan.calico", "lladdr": "66:aa:bb:cc:dd:01", "dst": "192.0.2.12",
         "state": ["permanent"]},
        {"index": 5, "dev": "vxlan.calico", "lladdr": "00:00:00:00:00:00", "dst": "192.0.2.13",
         "state": ["noarp", "permanent"]},
    ]


def rule(family, *, table=254, src_len=0, dst_len=0, attrs=()):
    msg = fibmsg()
    msg["attrs"] = list(attrs)
    return encode(msg, 32, family=family, table=table, src_len=src_len, dst_len=dst_len, action=1)


def test_rules():
    data = (rule(2, table=255, attrs=[("FRA_TABLE", 255)])
            + rule(2, table=100, src_len=16, attrs=[("FRA_TABLE", 100), ("FRA_PRIORITY", 100),
                                                    ("FRA_SRC", "198.18.0.0"), ("FRA_FWMARK", 16),
                                                    ("FRA_IIFNAME", "eth0"), ("FRA_OIFNAME", "tunl0")])
            + rule(2, table=252, dst_len=24, attrs=[("FRA_TABLE", 1000), ("FRA_PRIORITY", 200),
                                                    ("FRA_DST", "203.0.113.0")])
            + rule(10, attrs=[("FRA_TABLE", 254), ("FRA_PRIORITY", 32766)])
            + rule(128, attrs=[("FRA_TABLE", 254)]))  # RTNL_FAMILY_IPMR: not an IP rule
    none = {"src": None, "dst": None, "iif": None, "oif": None, "fwmark": None}
    assert nl.decode_rules(data) == [
        {"family": 4, "priority": 0, "table": 255, **none},
        {"family": 4, "priority": 100, "table": 100, **none, "src": "198.18.0.0/16", "fwmark": 16, "iif": "eth0",
         "oif": "tunl0"},
        {"family": 4, "priority": 200, "table": 1000, **none, "dst": "203.0.113.0/24"},
        {"family": 6, "priority": 32766, "table": 254, **none},
    ]


def test_truncated_link_and_address_dumps():
    data = link(1, "lo") + link(2, "eth0", attrs=[("IFLA_MTU", 1500)])
    assert [x["name"] for x in nl.decode_links(data[:-3])] == ["lo"]
    cut_attr = link(3, "eth1", attrs=[("IFLA_MTU", 1500)])
    cut_attr = patched(cut_attr, len(cut_attr) - 8, "=H", 64)  # IFLA_MTU overruns the message
    assert [(x["name"], x["mtu"]) for x in nl.decode_links(cut_attr)] == [("eth1", None)]
    addresses = address(2, 2, "192.0.2.11", 24) + address(2, 2, "192.0.2.12", 24)
    assert [a["address"] for a in nl.decode_addresses(addresses[:-1])] == ["192.0.2.11"]


def test_links_with_addresses():
    snap = {"links": [{"index": 1, "name": "lo"}, {"index": 2, "name": "eth0"}, {"index": 3, "name": "eth1"}],
            "addresses": [{"index": 2, "family": 4, "address": "192.0.2.11"},
                          {"index": 1, "family": 4, "address": "127.0.0.1"},
                          {"index": 2, "family": 6, "address": "2001:db8::11"},
                          {"index": 9, "family": 4, "address": "198.51.100.9"}]}
    assert nl.links_with_addresses(snap) == [
        {"index": 1, "name": "lo", "addresses": [{"family": 4, "address": "127.0.0.1"}]},
        {"index": 2, "name": "eth0", "addresses": [{"family": 4, "address": "192.0.2.11"},
                                                   {"family": 6, "address": "2001:db8::11"}]},
        {"index": 3, "name": "eth1", "addresses": []},
    ]
    assert "addresses" not in snap["links"][0]


@pytest.mark.parametrize("text", ["::", "::1", "::ffff:192.0.2.1", "::192.0.2.1", "2001:db8::1",
                                  "2001:db8:0:1:1:1:1:1", "2001:0:0:1::1", "fe80::1:0:0:1", "ff02::1:ff00:1"])
def test_ipv6_text_is_what_ipaddress_prints(text):
    raw = ipaddress.IPv6Address(text).packed
    assert nl._ip(raw) == str(ipaddress.IPv6Address(text))
