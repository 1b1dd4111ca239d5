# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""What a node's data plane shows beyond its routes: conntrack, the VXLAN device's offload
features, Felix's health and programming, the eBPF prerequisites, WireGuard, the MTU file and
the host firewall in front of the overlay (the ``dataplane`` part of the ``calico_node`` fact).

Each reader takes paths (``root``) or bytes and returns plain data; the parsers and the netlink
encoders/decoders are pure and tested on recorded bytes. Netlink is spoken directly with
``socket`` and ``struct`` (no pyroute2): generic netlink family ``ethtool``
(``ETHTOOL_MSG_FEATURES_GET`` / ``_SET``, what ``ethtool -k`` / ``-K`` use), nfnetlink
``nf_tables`` (chains, sets, rules of chosen chains) and ``ip_set`` (set names).

Cost on a healthy node: a few ``/proc`` and ``/sys`` files, one nf_tables chain and set dump, one
ipset name dump, one ethtool request when ``vxlan.calico`` exists, two HTTP requests to Felix's
health port on localhost when calico-node runs. ``nft -j list ruleset`` runs only when a host
firewall is in front of an overlay with peers, ``wg show`` only when a WireGuard device exists.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import struct
import time

from ansible_collections.netdoctor.calico.plugins.module_utils import _firewall, _node_files

# ---------------------------------------------------------------------------------------------
# netlink framing (pure)

NETLINK_NETFILTER = 12
NETLINK_GENERIC = 16
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0x3FFF
_HDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
MAX_MESSAGES = 100000  # bounded reads: no dump this module asks for comes near it


def _align(n):
    return (n + 3) & ~3


def nla(kind, data):
    """One netlink attribute (padded)."""
    raw = _NLA.pack(_NLA.size + len(data), kind) + data
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def nla_str(kind, text):
    return nla(kind, text.encode() + b"\0")


def nla_nested(kind, *children):
    return nla(kind | NLA_F_NESTED, b"".join(children))


def message(mtype, flags, seq, payload):
    return _HDR.pack(_HDR.size + len(payload), mtype, flags, seq, 0) + payload


def parse_messages(data):
    """[(type, flags, seq, payload)] of a buffer of netlink messages."""
    out, off = [], 0
    while off + _HDR.size <= len(data) and len(out) < MAX_MESSAGES:
        length, mtype, flags, seq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > len(data):
            break
        out.append((mtype, flags, seq, data[off + _HDR.size:off + length]))
        off += _align(length)
    return out


def parse_attrs(data, off=0):
    """{type: [payload]} of the attributes in data[off:] (NLA_F_* flags masked off)."""
    out = {}
    while off + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size:
            break
        out.setdefault(kind & NLA_TYPE_MASK, []).append(data[off + _NLA.size:off + length])
        off += _align(length)
    return out


def _first(attrs, kind):
    values = attrs.get(kind)
    return values[0] if values else None


def _cstr(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") if raw is not None else None


def _be32(raw, signed=False):
    if raw is None or len(raw) < 4:
        return None
    return struct.unpack(">i" if signed else ">I", raw[:4])[0]


def error_code(payload):
    """The (negative) errno of an NLMSG_ERROR payload; 0 for an ACK."""
    return struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else -errno.EPROTO


def check_reply(messages):
    """The messages with their payload, raising OSError for an NLMSG_ERROR that is not an ACK."""
    out = []
    for mtype, flags, seq, payload in messages:
        if mtype == NLMSG_ERROR:
            code = error_code(payload)
            if code:
                raise OSError(-code, os.strerror(-code))
            continue
        if mtype == NLMSG_DONE:
            continue
        out.append((mtype, flags, seq, payload))
    return out


def talk(protocol, request, timeout=2.0, sock=None):
    """Send one request and read until its DONE (dump) or ACK/ERROR; the raw reply buffers.
    Bounded: a deadline and MAX_MESSAGES."""
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    try:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        sock.send(request)
        deadline = time.monotonic() + timeout
        chunks, count = [], 0
        while time.monotonic() < deadline and count < MAX_MESSAGES:
            data = sock.recv(1 << 20)
            chunks.append(data)
            messages = parse_messages(data)
            count += len(messages)
            if any(m[0] in (NLMSG_DONE, NLMSG_ERROR) for m in messages) or not messages:
                break
            if not any(m[1] & NLM_F_MULTI for m in messages):
                break
        return chunks
    finally:
        if own:
            sock.close()


def _replies(chunks):
    return check_reply([m for chunk in chunks for m in parse_messages(chunk)])


# ---------------------------------------------------------------------------------------------
# ethtool over generic netlink: the feature bits (`ethtool -k`), and turning some off (`ethtool -K`)

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
_GENL = struct.Struct("=BBH")
ETHTOOL_GENL_NAME = "ethtool"
ETHTOOL_GENL_VERSION = 1
ETHTOOL_MSG_FEATURES_GET = 11
ETHTOOL_MSG_FEATURES_SET = 12
ETHTOOL_A_FEATURES_HEADER = 1
ETHTOOL_A_FEATURES_HW = 2
ETHTOOL_A_FEATURES_WANTED = 3
ETHTOOL_A_FEATURES_ACTIVE = 4
ETHTOOL_A_FEATURES_NOCHANGE = 5
ETHTOOL_A_HEADER_DEV_NAME = 2
ETHTOOL_A_HEADER_FLAGS = 3
ETHTOOL_FLAG_OMIT_REPLY = 1 << 1
ETHTOOL_A_BITSET_NOMASK = 1
ETHTOOL_A_BITSET_BITS = 3
ETHTOOL_A_BITSET_BITS_BIT = 1
ETHTOOL_A_BITSET_BIT_NAME = 2
ETHTOOL_A_BITSET_BIT_VALUE = 3
# The bits that decide VXLAN checksum offload (calico#3145, #9433, #11435) and what rides on them.
TX_CHECKSUM = ("tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6")
FEATURES_OF_INTEREST = (*TX_CHECKSUM, "tx-checksum-sctp", "tx-scatter-gather", "tx-tcp-segmentation",
                        "tx-tcp6-segmentation", "tx-generic-segmentation", "tx-udp_tnl-segmentation",
                        "tx-udp_tnl-csum-segmentation", "rx-checksum", "rx-gro", "rx-udp-gro-forwarding")


def encode_getfamily(name, seq=1):
    return message(GENL_ID_CTRL, NLM_F_REQUEST, seq,
                   _GENL.pack(CTRL_CMD_GETFAMILY, 1, 0) + nla_str(CTRL_ATTR_FAMILY_NAME, name))


def decode_family_id(chunks):
    """The id of the family a CTRL_CMD_GETFAMILY answer names."""
    for _t, _f, _s, payload in _replies(chunks):
        value = _first(parse_attrs(payload, _GENL.size), CTRL_ATTR_FAMILY_ID)
        if value is not None:
            return struct.unpack("=H", value[:2])[0]
    raise OSError(errno.ENOENT, "no generic netlink family id in the answer")


def encode_features_get(family_id, ifname, seq=2):
    header = nla_nested(ETHTOOL_A_FEATURES_HEADER, nla_str(ETHTOOL_A_HEADER_DEV_NAME, ifname))
    return message(family_id, NLM_F_REQUEST, seq,
                   _GENL.pack(ETHTOOL_MSG_FEATURES_GET, ETHTOOL_GENL_VERSION, 0) + header)


def encode_features_set(family_id, ifname, wanted, seq=3):
    """Only the named bits change (a bitset without NOMASK): {name: bool}."""
    bits = b"".join(
        nla_nested(ETHTOOL_A_BITSET_BITS_BIT, nla_str(ETHTOOL_A_BITSET_BIT_NAME, name),
                   *([nla(ETHTOOL_A_BITSET_BIT_VALUE, b"")] if on else []))
        for name, on in sorted(wanted.items()))
    header = nla_nested(ETHTOOL_A_FEATURES_HEADER, nla_str(ETHTOOL_A_HEADER_DEV_NAME, ifname),
                        nla(ETHTOOL_A_HEADER_FLAGS, struct.pack("=I", ETHTOOL_FLAG_OMIT_REPLY)))
    body = header + nla_nested(ETHTOOL_A_FEATURES_WANTED, nla_nested(ETHTOOL_A_BITSET_BITS, bits))
    return message(family_id, NLM_F_REQUEST | NLM_F_ACK, seq,
                   _GENL.pack(ETHTOOL_MSG_FEATURES_SET, ETHTOOL_GENL_VERSION, 0) + body)


def _bitset(raw):
    """The names of the bits set in a verbose (non-compact) bitset: with NOMASK every listed bit is
    set; otherwise the listed bits with a VALUE flag."""
    attrs = parse_attrs(raw)
    nomask = ETHTOOL_A_BITSET_NOMASK in attrs
    names = set()
    for bits in attrs.get(ETHTOOL_A_BITSET_BITS, []):
        for bit in parse_attrs(bits).get(ETHTOOL_A_BITSET_BITS_BIT, []):
            battrs = parse_attrs(bit)
            name = _cstr(_first(battrs, ETHTOOL_A_BITSET_BIT_NAME))
            if name and (nomask or ETHTOOL_A_BITSET_BIT_VALUE in battrs):
                names.add(name)
    return names


def decode_features(chunks):
    """{"hw": set, "wanted": set, "active": set, "nochange": set} of a FEATURES_GET answer (hw: the
    bits that can be changed; ethtool prints the others ``[fixed]``)."""
    for _t, _f, _s, payload in _replies(chunks):
        attrs = parse_attrs(payload, _GENL.size)
        if ETHTOOL_A_FEATURES_ACTIVE in attrs:
            return {key: _bitset(_first(attrs, kind)) if kind in attrs else set()
                    for key, kind in (("hw", ETHTOOL_A_FEATURES_HW), ("wanted", ETHTOOL_A_FEATURES_WANTED),
                                      ("active", ETHTOOL_A_FEATURES_ACTIVE),
                                      ("nochange", ETHTOOL_A_FEATURES_NOCHANGE))}
    raise OSError(errno.ENODATA, "no features in the ethtool answer")


def features_view(decoded, names=FEATURES_OF_INTEREST):
    """{name: {"on", "fixed", "requested"}} as ``ethtool -k`` shows them: ``on``/``off``, ``[fixed]``
    when the bit cannot be changed, ``[requested on|off]`` when what was asked differs."""
    out = {}
    for name in names:
        on = name in decoded["active"]
        wanted = name in decoded["wanted"]
        out[name] = {"on": on, "fixed": name not in decoded["hw"] or name in decoded["nochange"],
                     "requested": None if wanted == on else wanted}
    return out


def ethtool_text(view):
    """The view as `ethtool -k` prints those lines (for evidence and comparisons)."""
    lines = []
    for name, bit in view.items():
        text = "on" if bit["on"] else "off"
        if bit["fixed"]:
            text += " [fixed]"
        elif bit["requested"] is not None:
            text += f" [requested {'on' if bit['requested'] else 'off'}]"
        lines.append(f"{name}: {text}")
    return lines


def _genl(request_for, timeout=2.0):
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        family = decode_family_id(talk(NETLINK_GENERIC, encode_getfamily(ETHTOOL_GENL_NAME), timeout, sock))
    finally:
        sock.close()
    return talk(NETLINK_GENERIC, request_for(family), timeout)


def read_features(ifname, timeout=2.0):
    """The ``features_view`` of a device through ethtool's netlink interface; OSError when it cannot."""
    return features_view(decode_features(_genl(lambda fam: encode_features_get(fam, ifname), timeout)))


def set_features(ifname, wanted, timeout=2.0):
    """Ask the kernel to turn bits on/off ({name: bool}); OSError with its errno when it refuses."""
    _replies(_genl(lambda fam: encode_features_set(fam, ifname, wanted), timeout))


# ---------------------------------------------------------------------------------------------
# nf_tables and ip_set over nfnetlink: chains, sets, the rules of chosen chains, ipset names

NFNL_SUBSYS_IPSET = 6
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWCHAIN, NFT_MSG_GETCHAIN = 3, 4   # a dump answers GET* with NEW* messages
NFT_MSG_NEWRULE, NFT_MSG_GETRULE = 6, 7
NFT_MSG_NEWSET, NFT_MSG_GETSET = 9, 10
_NFGEN = struct.Struct("=BBH")
NFT_FAMILIES = {1: "inet", 2: "ip", 3: "arp", 5: "netdev", 7: "bridge", 10: "ip6"}
NFT_FAMILY_NUMBERS = {v: k for k, v in NFT_FAMILIES.items()}
HOOKS = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting", 5: "ingress"}
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK, NFTA_CHAIN_POLICY, NFTA_CHAIN_TYPE = 1, 3, 4, 5, 7
NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY = 1, 2
NFTA_SET_TABLE, NFTA_SET_NAME = 1, 2
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_EXPRESSIONS = 1, 2, 3, 4
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_IMMEDIATE_DATA = 2
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
VERDICTS = {0: "drop", 1: "accept", 3: "queue", -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}
IPSET_CMD_LIST = 7
IPSET_ATTR_PROTOCOL, IPSET_ATTR_SETNAME, IPSET_ATTR_FLAGS = 1, 2, 6
IPSET_FLAG_LIST_SETNAME = 1 << 1
IPSET_PROTOCOL = 6


def encode_nft_dump(msg, seq=1, family=0, attrs=b""):
    return message((NFNL_SUBSYS_NFTABLES << 8) | msg, NLM_F_REQUEST | NLM_F_DUMP, seq,
                   _NFGEN.pack(family, 0, 0) + attrs)


def encode_rule_dump(family, table, chain, seq=1):
    """A rule dump of one chain (the kernel filters on table and chain)."""
    return encode_nft_dump(NFT_MSG_GETRULE, seq, NFT_FAMILY_NUMBERS[family],
                           nla_str(NFTA_RULE_TABLE, table) + nla_str(NFTA_RULE_CHAIN, chain))


def encode_ipset_list(seq=1):
    attrs = (nla(IPSET_ATTR_PROTOCOL, struct.pack("B", IPSET_PROTOCOL))
             + nla(IPSET_ATTR_FLAGS | NLA_F_NET_BYTEORDER, struct.pack(">I", IPSET_FLAG_LIST_SETNAME)))
    return message((NFNL_SUBSYS_IPSET << 8) | IPSET_CMD_LIST, NLM_F_REQUEST | NLM_F_DUMP, seq,
                   _NFGEN.pack(socket.AF_INET, 0, 0) + attrs)


def _nft_payloads(chunks, msg):
    for mtype, _f, _s, payload in _replies(chunks):
        if mtype == (NFNL_SUBSYS_NFTABLES << 8) | msg and len(payload) >= _NFGEN.size:
            yield NFT_FAMILIES.get(payload[0], str(payload[0])), parse_attrs(payload, _NFGEN.size)


def decode_chains(chunks):
    """[{family, table, name, hook, priority, policy, type}] (hook etc. None for a regular chain)."""
    out = []
    for family, attrs in _nft_payloads(chunks, NFT_MSG_NEWCHAIN):
        hook = _first(attrs, NFTA_CHAIN_HOOK)
        hattrs = parse_attrs(hook) if hook is not None else {}
        policy = _be32(_first(attrs, NFTA_CHAIN_POLICY))
        number = _be32(_first(hattrs, NFTA_HOOK_HOOKNUM))
        out.append({"family": family, "table": _cstr(_first(attrs, NFTA_CHAIN_TABLE)),
                    "name": _cstr(_first(attrs, NFTA_CHAIN_NAME)),
                    "hook": HOOKS.get(number, number) if hook is not None else None,
                    "priority": _be32(_first(hattrs, NFTA_HOOK_PRIORITY), signed=True) if hook is not None else None,
                    "policy": {0: "drop", 1: "accept"}.get(policy, policy) if policy is not None else None,
                    "type": _cstr(_first(attrs, NFTA_CHAIN_TYPE))})
    return out


def decode_sets(chunks):
    return [{"family": family, "table": _cstr(_first(attrs, NFTA_SET_TABLE)),
             "name": _cstr(_first(attrs, NFTA_SET_NAME))} for family, attrs in _nft_payloads(chunks, NFT_MSG_NEWSET)]


def _expr_summary(raw):
    attrs = parse_attrs(raw)
    name = _cstr(_first(attrs, NFTA_EXPR_NAME))
    out = {"expr": name}
    if name == "immediate":
        data = parse_attrs(_first(attrs, NFTA_EXPR_DATA) or b"")
        verdict = _first(parse_attrs(_first(data, NFTA_IMMEDIATE_DATA) or b""), NFTA_DATA_VERDICT)
        if verdict is not None:
            vattrs = parse_attrs(verdict)
            code = _be32(_first(vattrs, NFTA_VERDICT_CODE), signed=True)
            out["verdict"] = VERDICTS.get(code, code)
            target = _cstr(_first(vattrs, NFTA_VERDICT_CHAIN))
            if target:
                out["target"] = target
    return out


def decode_rules(chunks):
    """[{family, table, chain, handle, exprs: [{"expr", "verdict"?, "target"?}]}]: what a rule does
    in outline (the names of its expressions and its immediate verdict), not its matches."""
    out = []
    for family, attrs in _nft_payloads(chunks, NFT_MSG_NEWRULE):
        handle = _first(attrs, NFTA_RULE_HANDLE)
        exprs = []
        for lst in attrs.get(NFTA_RULE_EXPRESSIONS, []):
            exprs += [_expr_summary(e) for e in parse_attrs(lst).get(NFTA_LIST_ELEM, [])]
        out.append({"family": family, "table": _cstr(_first(attrs, NFTA_RULE_TABLE)),
                    "chain": _cstr(_first(attrs, NFTA_RULE_CHAIN)),
                    "handle": struct.unpack(">Q", handle[:8])[0] if handle and len(handle) >= 8 else None,
                    "exprs": exprs})
    return out


def decode_ipset_names(chunks):
    names = []
    for mtype, _f, _s, payload in _replies(chunks):
        if mtype == (NFNL_SUBSYS_IPSET << 8) | IPSET_CMD_LIST and len(payload) >= _NFGEN.size:
            name = _cstr(_first(parse_attrs(payload, _NFGEN.size), IPSET_ATTR_SETNAME))
            if name and name not in names:
                names.append(name)
    return names


# Tables and chains of programs that are not a host firewall: Felix's (``calico`` in ip/ip6, chains
# ``cali-*``) and kube-proxy's (``kube-proxy`` nftables mode; ``KUBE-*`` chains of iptables mode).
OTHER_OWNERS = ("calico", "kube-proxy")


def _foreign(family, table, chain=""):
    return ((family in ("ip", "ip6") and table in OTHER_OWNERS) or chain.startswith("cali-")
            or chain.startswith("KUBE-"))


def firewall_base_chains(chains):
    """The input/output filter base chains a host firewall could drop overlay packets in (Felix's and
    kube-proxy's left out)."""
    return [c for c in chains if c["hook"] in ("input", "output") and c["family"] in ("ip", "ip6", "inet")
            and c["type"] in ("filter", "route") and not _foreign(c["family"], c["table"])]


def blocking_rule(rule):
    """Whether a rule may drop: a drop/reject/queue, a verdict map, or a jump into a chain that is not
    Felix's or kube-proxy's. An accept, a jump to ``cali-*``/``KUBE-*`` and a rule without a verdict
    (counter, log) do not."""
    names = [e["expr"] for e in rule["exprs"]]
    if any(n in ("reject", "queue") for n in names):
        return True
    if "lookup" in names and "immediate" not in names:
        return True  # a verdict map: its verdicts are in the map
    for e in rule["exprs"]:
        verdict = e.get("verdict")
        if verdict in ("drop", "queue"):
            return True
        if verdict in ("jump", "goto") and not _foreign(rule["family"], rule["table"], e.get("target", "")):
            return True
    return False


def host_firewall(chains, rules_by_chain):
    """[{family, table, chain, hook, policy, rules, blocking}] of the base chains that make a host
    firewall: a drop policy, or a rule that may drop (``blocking_rule``). Empty: nothing in front of
    the overlay, and ``nft -j list ruleset`` need not be read."""
    out = []
    for c in firewall_base_chains(chains):
        rules = rules_by_chain.get((c["family"], c["table"], c["name"])) or []
        blocking = [r["handle"] for r in rules if blocking_rule(r)]
        if c["policy"] == "drop" or blocking:
            out.append({"family": c["family"], "table": c["table"], "chain": c["name"], "hook": c["hook"],
                        "policy": c["policy"], "rules": len(rules), "blocking": blocking[:10]})
    return out


def read_nftables(timeout=2.0):
    """{"chains", "sets", "host_firewall"} from nf_tables over netlink; OSError when it cannot."""
    chains = decode_chains(talk(NETLINK_NETFILTER, encode_nft_dump(NFT_MSG_GETCHAIN), timeout))
    sets = decode_sets(talk(NETLINK_NETFILTER, encode_nft_dump(NFT_MSG_GETSET), timeout))
    rules = {}
    for c in firewall_base_chains(chains):
        if c["policy"] != "drop":
            decoded = decode_rules(talk(NETLINK_NETFILTER, encode_rule_dump(c["family"], c["table"], c["name"]),
                                        timeout))
            rules[(c["family"], c["table"], c["name"])] = decoded
    return {"chains": chains, "sets": sets, "host_firewall": host_firewall(chains, rules)}


def read_ipset_names(timeout=2.0):
    return decode_ipset_names(talk(NETLINK_NETFILTER, encode_ipset_list(), timeout))


# ---------------------------------------------------------------------------------------------
# files under /proc and /sys


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


def _read(root, path, limit=1 << 20):
    try:
        with open(_path(root, path), encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None


def _int(text):
    try:
        return int(text.strip())
    except (AttributeError, ValueError):
        return None


def parse_conntrack_stat(text):
    """``/proc/net/stat/nf_conntrack``: a header line, then one line of hex counters per CPU. The
    per-CPU counters summed (``entries`` is the table's count, the same on every line)."""
    lines = [line.split() for line in (text or "").splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    header, totals = lines[0], {}
    for row in lines[1:]:
        for name, value in zip(header, row):
            try:
                number = int(value, 16)
            except ValueError:
                continue
            totals[name] = number if name == "entries" else totals.get(name, 0) + number
    return totals


def read_conntrack(root="/"):
    """{"count", "max", "buckets", "ratio", "stats": {drop, early_drop, insert_failed, ...}} or None
    without nf_conntrack. count and stats are this network namespace's; max is the kernel's."""
    count = _int(_read(root, "/proc/sys/net/netfilter/nf_conntrack_count"))
    maximum = _int(_read(root, "/proc/sys/net/netfilter/nf_conntrack_max"))
    if count is None and maximum is None:
        return None
    stats = parse_conntrack_stat(_read(root, "/proc/net/stat/nf_conntrack"))
    kept = ("drop", "early_drop", "insert_failed", "invalid", "search_restart", "clashres")
    buckets = _int(_read(root, "/proc/sys/net/netfilter/nf_conntrack_buckets"))
    return {"count": count, "max": maximum, "buckets": buckets,
            "ratio": round(count / maximum, 4) if count is not None and maximum else None,
            "stats": {k: stats[k] for k in kept if k in stats} if stats else None}


def parse_kernel_version(release):
    """'6.8.0-45-generic' -> (6, 8, 0); None when it does not start with a version."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release or "")
    return tuple(int(g or 0) for g in match.groups()) if match else None


def read_kernel(root="/"):
    release = (_read(root, "/proc/sys/kernel/osrelease") or "").strip() or None
    version = parse_kernel_version(release)
    return {"release": release, "version": list(version) if version else None}


def read_driver(name, root="/"):
    """The driver of a NIC (``/sys/class/net/<name>/device/driver``), None for a virtual device."""
    if not name or "/" in name:
        return None
    link = _path(root, f"/sys/class/net/{name}/device/driver")
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return None


def read_mtu_file(root="/"):
    """``/var/lib/calico/mtu`` (Felix writes the pod MTU there; the CNI plugin reads it)."""
    text = _read(root, "/var/lib/calico/mtu", 64)
    return {"path": "/var/lib/calico/mtu", "value": _int(text), "raw": None if text is None else text.strip()[:32],
            "exists": text is not None}


# Felix's settings (env FELIX_<NAME>, case-insensitive) that these checks read; an allow-list, so
# that no credential is ever returned.
FELIX_KEYS = (
    "HEALTHENABLED", "HEALTHHOST", "HEALTHPORT", "BPFENABLED", "FEATUREDETECTOVERRIDE", "VXLANPORT",
    "VXLANENABLED", "IPINIPENABLED", "WIREGUARDENABLED", "WIREGUARDENABLEDV6", "WIREGUARDLISTENINGPORT",
    "WIREGUARDLISTENINGPORTV6", "WIREGUARDMTU", "WIREGUARDMTUV6", "WIREGUARDINTERFACENAME", "MTUIFACEPATTERN",
    "IPINIPMTU", "VXLANMTU", "VXLANMTUV6", "TYPHAK8SSERVICENAME", "TYPHAADDR", "IPTABLESBACKEND", "NFTABLESMODE",
    "BPFKUBEPROXYIPTABLESCLEANUPENABLED",
)


def felix_env(pid, proc="/proc"):
    """Felix's allow-listed settings from calico-node's environment ({KEY: value}, KEY without the
    FELIX_ prefix); {} when it cannot be read."""
    env = _node_files.process_environ(pid, proc)
    out = {}
    for key, value in env.items():
        upper = key.upper()
        if upper.startswith("FELIX_") and upper[6:] in FELIX_KEYS:
            out[upper[6:]] = value
    return out


def parse_bool(value):
    """Felix's bool parsing (strconv.ParseBool); None when unset or not a bool."""
    text = str(value).strip().lower() if value is not None else ""
    if text in ("1", "t", "true"):
        return True
    if text in ("0", "f", "false"):
        return False
    return None


def parse_overrides(value):
    """FeatureDetectOverride's key=value list (``ChecksumOffloadBroken=true,IPIPDeviceIsL3=false``)."""
    out = {}
    for item in re.split(r"\s*,\s*", (value or "").strip()):
        key, sep, val = item.partition("=")
        if sep and key.strip():
            out[key.strip()] = val.strip()
    return out


# ---------------------------------------------------------------------------------------------
# Felix's health endpoint (libcalico-go lib/health: 200/204 good, 503 bad, a table of reporters)

HEALTH_PATHS = ("readiness", "liveness")


def parse_health_table(body):
    """[{component, timeout, liveness, readiness, detail}] of the reporters' table Felix answers with."""
    rows = []
    for raw in (body or "").splitlines():
        line = raw.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 5 or cells[0] == "COMPONENT":
            continue
        rows.append({"component": cells[0], "timeout": cells[1], "liveness": cells[2], "readiness": cells[3],
                     "detail": " | ".join(cells[4:]).strip()})
    return rows


def probe_health(host, port, path, timeout=1.0):
    """{"status", "ok", "components", "error"} of one GET (no subprocess)."""
    import http.client  # noqa: PLC0415 - only when calico-node runs

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/" + path)
        response = conn.getresponse()
        body = response.read(16384).decode("utf-8", "replace")
        return {"status": response.status, "ok": 200 <= response.status < 400,
                "components": parse_health_table(body)[:20], "error": None}
    except (OSError, http.client.HTTPException) as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
            "timed out" if isinstance(exc, socket.timeout) else f"{type(exc).__name__}: {exc}")
        return {"status": None, "ok": None, "components": [], "error": reason}
    finally:
        conn.close()


def felix_health(env, running, probe=probe_health):
    """The ``felix_health`` part: where Felix's endpoint is (FELIX_HEALTHHOST/PORT, localhost:9099),
    whether the env enables it, and each endpoint's answer; not probed when calico-node does not run."""
    host = env.get("HEALTHHOST") or "localhost"
    port = _int(env.get("HEALTHPORT")) or 9099
    out = {"host": host, "port": port, "enabled": parse_bool(env.get("HEALTHENABLED")), "probed": False}
    if not running:
        return out
    out["probed"] = True
    for path in HEALTH_PATHS:
        out[path] = probe(host, port, path)
    return out


# ---------------------------------------------------------------------------------------------
# eBPF prerequisites (felix/bpf: SupportsBPFDataplane, MaybeMountBPFfs, MaybeMountCgroupV2)

BPF_MIN_KERNEL = (5, 3, 0)       # bpf.go v5Dot3Dot0 (Ubuntu and every other distribution)
BPF_MIN_KERNEL_RHEL = (4, 18, 0)  # 4.18.0-193 and later RHEL kernels
BPF_MAP_DIR = "/sys/fs/bpf/tc/globals"  # felix bpf.MapPinDir()


def parse_mounts(text):
    """[(mountpoint, fstype)] of /proc/mounts."""
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((parts[1].replace("\\040", " "), parts[2]))
    return out


def rhel_kernel(release):
    """4.18.0-193.el8 and later: the RHEL kernels Felix accepts below 5.3."""
    match = re.match(r"4\.18\.0-(\d+)", release or "")
    return bool(match and int(match.group(1)) >= 193 and ".el" in release)


def read_bpf(root="/", kernel=None):
    mounts = parse_mounts(_read(root, "/proc/mounts"))
    try:
        maps = sorted(n for n in os.listdir(_path(root, BPF_MAP_DIR)) if n.startswith("cali_"))
    except OSError:
        maps = []
    release = (kernel or {}).get("release")
    version = tuple((kernel or {}).get("version") or ()) or None
    supported = None
    if version:
        supported = version >= BPF_MIN_KERNEL or rhel_kernel(release)
    return {
        "bpffs": any(point == "/sys/fs/bpf" and fstype == "bpf" for point, fstype in mounts),
        "bpffs_mounts": [point for point, fstype in mounts if fstype == "bpf"][:5],
        "cgroup2": [point for point, fstype in mounts if fstype == "cgroup2"][:5],
        "btf": os.path.exists(_path(root, "/sys/kernel/btf/vmlinux")),
        "kernel_supported": supported,
        "maps": len(maps), "map_examples": maps[:5],
    }


def kube_proxy_running(proc="/proc"):
    """Whether a kube-proxy process runs in this network namespace (it runs with hostNetwork)."""
    return any("kube-proxy" in (os.path.basename(a) for a in argv[:2])
               for _pid, argv in _node_files.host_processes(proc))


# ---------------------------------------------------------------------------------------------
# WireGuard (`wg show <device> dump`, wireguard-tools show.c dump_print)

WG_DEVICES = ("wireguard.cali", "wg-v6.cali")
REJECT_AFTER = 180  # WireGuard's REJECT_AFTER_TIME: a handshake older than this no longer carries data


def parse_wg_dump(text):
    """``wg show <device> dump``: the interface line (private key, public key, listen port, fwmark;
    the private key is dropped here and never returned), then one line per peer (public key,
    preshared key, endpoint, allowed ips, latest handshake, rx, tx, persistent keepalive)."""
    lines = [line.split("\t") for line in (text or "").splitlines() if line.strip()]
    if not lines or len(lines[0]) < 4:
        return None
    head = lines[0]
    out = {"public_key": None if head[1] == "(none)" else head[1], "listen_port": _int(head[2]),
           "fwmark": None if head[-1] == "off" else head[-1], "peers": []}
    for fields in lines[1:]:
        if len(fields) < 8:
            continue
        endpoint = None if fields[2] == "(none)" else fields[2]
        host = endpoint.rsplit(":", 1)[0].strip("[]") if endpoint else None
        out["peers"].append({
            "public_key": fields[0], "preshared_key": fields[1] != "(none)", "endpoint": endpoint,
            "endpoint_ip": host, "allowed_ips": [] if fields[3] == "(none)" else fields[3].split(","),
            "latest_handshake": _int(fields[4]) or 0, "rx": _int(fields[5]) or 0, "tx": _int(fields[6]) or 0,
            "keepalive": None if fields[7] == "off" else _int(fields[7])})
    return out


def read_wireguard(links, *, run=None, wg=None, now=None, root="/"):
    """{device: {"mtu", "up", "dump": parse_wg_dump | None, "error", "read_at"}} for the WireGuard
    devices that exist; ``module_loaded`` whether the kernel has WireGuard at all."""
    devices = {}
    for link in links:
        if link["name"] not in WG_DEVICES:
            continue
        entry = {"mtu": link.get("mtu"), "up": link.get("up"), "dump": None, "error": None,
                 "read_at": int(now if now is not None else time.time())}
        if not (run and wg):
            entry["error"] = "wg not found" if run else "not read"
        else:
            rc, out, err = run([wg, "show", link["name"], "dump"])
            if rc == 0:
                entry["dump"] = parse_wg_dump(out)
            else:
                entry["error"] = f"wg show {link['name']} dump exited {rc}: {(err or out).strip()[:200]}"
        devices[link["name"]] = entry
    return {"module_loaded": os.path.isdir(_path(root, "/sys/module/wireguard")), "devices": devices}


# ---------------------------------------------------------------------------------------------
# the MTU Felix computes (int_dataplane.go findHostMTU, ConfigureDefaultMTUs, determinePodMTU)

MTU_IFACE_PATTERN = r"^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"
OVERHEAD = {"ipip": 20, "vxlan": 50, "vxlan-v6": 70, "wireguard": 60, "wireguard-v6": 80}
DEFAULT_HOST_MTU = 1460  # what Felix assumes when no interface matches


def felix_host_mtu(links, pattern=None):
    """(host MTU, [matched interfaces with their MTU]) as Felix finds it: the smallest MTU of the
    oper-up links whose name matches mtuIfacePattern (Go regexp MatchString: unanchored); 1460
    when none matches. IFF_RUNNING is read as operstate UP or UNKNOWN."""
    try:
        regex = re.compile(pattern or MTU_IFACE_PATTERN)
    except re.error:
        regex = re.compile(MTU_IFACE_PATTERN)
    matched = [{"name": lk["name"], "mtu": lk.get("mtu"), "up": lk.get("operstate") in ("UP", "UNKNOWN")}
               for lk in links if regex.search(lk["name"])]
    up = [m["mtu"] for m in matched if m["up"] and m["mtu"]]
    return (min(up) if up else DEFAULT_HOST_MTU), matched


def felix_pod_mtu(host_mtu, encaps, configured=None):
    """The pod MTU Felix writes: the smallest MTU of the enabled encapsulations (configured, else host
    MTU minus the overhead), the host MTU when none is enabled."""
    configured = configured or {}
    mtus = [configured.get(e) or host_mtu - OVERHEAD[e] for e in encaps if e in OVERHEAD]
    return min(mtus) if mtus else host_mtu


# ---------------------------------------------------------------------------------------------
# the overlay and its peers, as this node's devices show them

def _encaps(snapshot):
    """{flow name: (device, port, version)} of the overlay devices on the node, by link kind (a
    device's kind decides what goes on the wire)."""
    out = {}
    for link in snapshot.get("links") or ():
        name, kind = link["name"], link.get("kind")
        if name in ("vxlan.calico", "vxlan-v6.calico", "tunl0") and kind == "vxlan":
            flow = "vxlan-v6" if "v6" in name else "vxlan"
            out.setdefault(flow, (name, (link.get("vxlan") or {}).get("port") or 4789, 6 if flow == "vxlan-v6" else 4))
        elif name == "tunl0" and kind == "ipip":
            out["ipip"] = (name, None, 4)
        elif name in WG_DEVICES and kind == "wireguard":
            out["wireguard-v6" if "v6" in name else "wireguard"] = (name, None, 6 if "v6" in name else 4)
    return out


def _valid(address, version):
    try:
        ip = ipaddress.ip_address(address)
    except (TypeError, ValueError):
        return None
    return ip if ip.version == version and not (ip.is_loopback or ip.is_unspecified or ip.is_multicast) else None


def overlay_peers(snapshot, device, version, wireguard=None):
    """The remote node addresses an overlay device talks to: VXLAN - its FDB's dst; IPIP - the
    gateways of routes on it; WireGuard - the peers' endpoints."""
    index = next((lk["index"] for lk in snapshot.get("links") or () if lk["name"] == device), None)
    found = []
    if device in WG_DEVICES:
        dump = (((wireguard or {}).get("devices") or {}).get(device) or {}).get("dump") or {}
        found = [p.get("endpoint_ip") for p in dump.get("peers") or ()]
    else:
        found = [f.get("dst") for f in snapshot.get("fdb") or () if f.get("index") == index]
        if not found:
            found = [r.get("gateway") for r in snapshot.get("routes") or () if r.get("dev") == device]
    peers = []
    for address in found:
        ip = _valid(address, version)
        if ip and ip not in peers:
            peers.append(ip)
    return sorted(peers, key=int)


MAX_PEERS = 1000


def overlay_firewall(snapshot, nft_summary, wireguard, env, *, run=None, nft=None, local=()):
    """The host firewall walked for each overlay flow the node's devices use (``_firewall``), with
    their peers: {"checked", "reason", "flows": {flow: {"device", "port", "peers", "blocking": {peer:
    [record]}}}}. ``nft -j list ruleset`` runs only when nf_tables shows a host firewall
    (``host_firewall``) and some flow has peers."""
    flows = {}
    for name, (device, device_port, version) in sorted(_encaps(snapshot).items()):
        port = device_port
        if name.startswith("wireguard"):
            dump = ((wireguard.get("devices") or {}).get(device) or {}).get("dump") or {}
            key = "WIREGUARDLISTENINGPORTV6" if name.endswith("v6") else "WIREGUARDLISTENINGPORT"
            port = dump.get("listen_port") or _int(env.get(key)) or _firewall.FLOWS[name]["port"]
        peers = overlay_peers(snapshot, device, version, wireguard)
        flows[name] = {"device": device, "port": port, "peers": [str(p) for p in peers[:MAX_PEERS]],
                       "peer_count": len(peers), "blocking": {}}
    out = {"checked": False, "reason": None, "flows": flows, "host_firewall": (nft_summary or {}).get("host_firewall")}
    if not any(f["peers"] for f in flows.values()):
        out["reason"] = "no overlay peers"
        return out
    if nft_summary is None:
        out["reason"] = "nf_tables could not be read"
        return out
    if not nft_summary.get("host_firewall"):
        out["reason"] = "no host firewall in front of the overlay"
        return out
    if not (run and nft):
        out["reason"] = "nft not found"
        return out
    rc, stdout, stderr = run([nft, "-j", "list", "ruleset"])
    if rc != 0:
        out["reason"] = f"nft -j list ruleset exited {rc}: {(stderr or stdout).strip()[:200]}"
        return out
    try:
        import json  # noqa: PLC0415 - only on a node with a host firewall

        rs = _firewall.parse(json.loads(stdout))
        for name, entry in flows.items():
            spec = _firewall.flow(name, entry["port"])
            mine = [ip for ip in local if ip.version in spec["versions"]]
            entry["blocking"] = {peer: records for peer, records in _firewall.blocking_by_peer(
                rs, entry["peers"], local=mine, spec=spec).items() if records}
    except (ValueError, KeyError, TypeError) as exc:
        out["reason"] = f"cannot judge the ruleset: {exc}"
        return out
    out["checked"] = True
    return out


# ---------------------------------------------------------------------------------------------
# Felix's programming: workload chains and the sets its encapsulation rules use

def felix_programming(nft_summary, ipsets, workloads, calico):
    """What Felix has programmed that this node can see: its backend (nftables: ``table ip calico``
    holds ``filter-*`` chains; iptables-nft: ``cali-*`` chains in the ip filter table; neither:
    iptables-legacy, BPF or nothing), per workload interface whether its to/from chains exist, and
    whether the set of allowed tunnel sources its encapsulation needs exists (nft set or ipset):
    ``cali40all-vxlan-net`` with ``vxlan.calico``, ``cali40all-hosts-net`` in IPIP mode (the calico
    view's mode: a tunl0 that carries routes; the kernel creates tunl0 whenever ipip loads)."""
    chains = (nft_summary or {}).get("chains")
    if chains is None:
        return {"backend": None, "checked": False, "reason": "nf_tables could not be read"}
    names = {(c["family"], c["table"], c["name"]) for c in chains}
    nft_mode = any(f in ("ip", "ip6") and t == "calico" and n.startswith("filter-") for f, t, n in names)
    ipt_nft = any(f == "ip" and t == "filter" and n.startswith("cali-") for f, t, n in names)
    backend = "nftables" if nft_mode else "iptables-nft" if ipt_nft else None
    out = {"backend": backend, "checked": backend is not None,
           "reason": None if backend else "no Felix chains in nf_tables (iptables-legacy, BPF, or Felix not running)"}
    missing = []
    if backend:
        for w in workloads:
            iface = w.get("interface") or ""
            want = [f"cali-tw-{iface}", f"cali-fw-{iface}"]
            if nft_mode:
                have = [n for n in want if ("ip", "calico", f"filter-{n}") in names]
            else:
                have = [n for n in want if ("ip", "filter", n) in names]
            if len(have) < len(want):
                missing.append({"interface": iface, "ip": w.get("ip"), "missing": [n for n in want if n not in have]})
    out["workloads"] = len(workloads)
    out["workloads_missing_chains"] = missing[:20]
    out["workloads_missing_count"] = len(missing)
    set_names = {s["name"] for s in (nft_summary or {}).get("sets") or ()} | set(ipsets or ())
    wanted = []
    if ((calico or {}).get("vxlan") or {}).get("device") == "vxlan.calico":
        wanted.append("cali40all-vxlan-net")
    if (calico or {}).get("mode") == "ipip":
        wanted.append("cali40all-hosts-net")
    out["sets_wanted"] = wanted
    out["sets_missing"] = [s for s in wanted if s not in set_names] if backend or ipsets is not None else []
    out["ipsets"] = None if ipsets is None else len(ipsets)
    return out


# ---------------------------------------------------------------------------------------------
# assembly


def _safe(fn, *args, **kwargs):
    """(value, None) or (None, error text): a reader that fails never fails the facts."""
    try:
        return fn(*args, **kwargs), None
    except (OSError, ValueError, KeyError, TypeError, struct.error) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def dataplane_facts(snapshot, calico, identity, *, run=None, which=None, root="/", proc="/proc", now=None,
                    local_addresses=()):
    """The ``dataplane`` part of the ``calico_node`` fact (docs/development.md). ``run(argv)`` gives
    (rc, stdout, stderr) and ``which(name)`` a binary's path (the module's run_command and
    get_bin_path); without them nothing is run."""
    links = snapshot.get("links") or []
    by_name = {lk["name"]: lk for lk in links}
    node = (identity or {}).get("calico_node") or {}
    env = felix_env(node.get("pid"), proc)
    errors = {}
    kernel = read_kernel(root)

    # VXLAN: one ethtool request per device that exists.
    vxlan = {}
    for name in ("vxlan.calico", "vxlan-v6.calico"):
        link = by_name.get(name)
        if not link:
            continue
        parent = by_name.get(next((lk["name"] for lk in links
                                   if lk["index"] == ((link.get("vxlan") or {}).get("link") or link.get("link"))),
                                  None) or "")
        features, error = _safe(read_features, name)
        vxlan[name] = {"features": features, "error": error, "mtu": link.get("mtu"),
                       "parent": parent["name"] if parent else None,
                       "parent_driver": read_driver(parent["name"], root) if parent else None,
                       "parent_mtu": parent.get("mtu") if parent else None}

    nft_summary, error = _safe(read_nftables)
    if error:
        errors["nftables"] = error
    ipsets, error = _safe(read_ipset_names)
    if error and "Protocol not supported" not in error and "No such file" not in error:
        errors["ipset"] = error

    wg_bin = which("wg") if which and any(n in by_name for n in WG_DEVICES) else None
    wireguard = read_wireguard(links, run=run, wg=wg_bin, now=now, root=root)
    nft_bin = which("nft") if which else None
    local = {}
    for address in local_addresses:
        try:
            ip = ipaddress.ip_interface(str(address)).ip
        except ValueError:
            continue
        local.setdefault(ip.version, ip)
    firewall = overlay_firewall(snapshot, nft_summary, wireguard, env, run=run, nft=nft_bin, local=list(local.values()))

    bpf = read_bpf(root, kernel)
    if parse_bool(env.get("BPFENABLED")):
        bpf["kube_proxy_running"] = kube_proxy_running(proc)
        chains = (nft_summary or {}).get("chains") or []
        bpf["kube_proxy_rules"] = any(c["name"] in ("KUBE-SERVICES", "services") or c["table"] == "kube-proxy"
                                      for c in chains)

    return {
        "kernel": kernel,
        "felix_env": env,
        "conntrack": read_conntrack(root),
        "vxlan": vxlan,
        "felix_health": felix_health(env, bool(node.get("pid"))),
        "felix_programming": felix_programming(nft_summary, ipsets, (calico or {}).get("workloads") or [], calico),
        "bpf": bpf,
        "wireguard": wireguard,
        "mtu_file": read_mtu_file(root),
        "overlay_firewall": firewall,
        "errors": errors,
    }
