# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The probe matrix's node half (issue 12): bounded probes from this node to at most k peers, run
inside calico_node_facts (no extra round trip).

Sources, best first: up to ``max_pods`` local pods (their network namespaces, found from the pods'
processes as calico_trace finds them), else the node's tunnel address (IPIP/VXLAN), else the node
itself (native BGP without a reachable pod: the underlay only). Destination per peer: the address
the controller gives (``overlay``), else the peer's VTEP address this node's own VXLAN state
resolves its node IP to, else the peer's node IP. From a pod, a probe to the peer's node IP crosses
this node's forwarding and the peer's route back to this node's pods; the peer's own probes cross
the other direction, so the matrix judges each pair from both ends.

Per source and peer: ``count`` ICMP echoes (loss, RTT), one TCP connect (``refused`` is reachable:
the RST came back), one ICMP echo of ``df_size`` bytes with DF set (the path MTU). Everything runs
in one select loop with sockets made in the pods' namespaces, bounded by ``deadline`` seconds.

Result: ``{peer: {"ok", "loss", "rtt_ms", "icmp": {"sent", "received"}, "tcp": "open" | "refused" |
"timeout" | "unreachable" | "error" | None, "df": {"size", "ok", "error"} | None, "df_ok", "dst",
"via": ["pod 198.18.1.1", ...], "failed_via": [...], "error"}}``; ``ok`` is ICMP or TCP reachability
from every source, ``df_ok`` the DF packet's.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time

from ansible_collections.netdoctor.calico.plugins.module_utils import _netlink

ICMP_ECHO, ICMP_ECHOREPLY, ICMP_UNREACH = 8, 0, 3
_IP_MTU_DISCOVER, _IP_PMTUDISC_DO = 10, 2
DEFAULTS = {"count": 3, "interval": 0.05, "timeout": 1.0, "deadline": 3.0, "tcp_port": 10250, "max_pods": 2}
DF_SEQ = 0x7F00


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_packet(ident, seq, size=64):
    """An ICMP echo request of ``size`` bytes (ICMP header included)."""
    payload = bytes((seq + i) & 0xFF for i in range(max(size - 8, 0)))
    header = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ICMP_ECHO, 0, checksum(header + payload), ident, seq) + payload


def parse_reply(data):
    """(kind, source, ident, seq) of an IPv4 datagram carrying ICMP: kind "reply" for an echo reply,
    "unreach" (with the quoted echo's ident/seq) for destination unreachable (frag needed included)."""
    if len(data) < 28:
        return None
    ihl = (data[0] & 0x0F) * 4
    src = socket.inet_ntoa(data[12:16])
    icmp = data[ihl:]
    if len(icmp) < 8:
        return None
    kind = icmp[0]
    if kind == ICMP_ECHOREPLY:
        ident, seq = struct.unpack("!HH", icmp[4:8])
        return "reply", src, ident, seq
    if kind == ICMP_UNREACH and len(icmp) >= 36:
        inner = icmp[8:]
        inner_ihl = (inner[0] & 0x0F) * 4
        quoted = inner[inner_ihl:]
        if len(quoted) >= 8 and quoted[0] == ICMP_ECHO:
            ident, seq = struct.unpack("!HH", quoted[4:8])
            return ("frag" if icmp[1] == 4 else "unreach"), socket.inet_ntoa(inner[16:20]), ident, seq
    return None


def _in_netns(netns, make):
    """``make()`` run with this thread inside ``netns`` (a path), or here for None."""
    if netns is None:
        return make()
    fd = os.open(netns, os.O_RDONLY)
    try:
        _netlink.pushns(fd)
        try:
            return make()
        finally:
            _netlink.popns()
    finally:
        os.close(fd)


def _fib_local(text):
    out, prev = set(), None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("/32 host LOCAL") and prev:
            out.add(prev)
        if line.startswith(("|--", "+--")):
            prev = line[3:].strip().split(" ", 1)[0]
    return out


def find_pod_netns(ips, limit, proc="/proc"):
    """{pod ip: netns path} for up to ``limit`` of ``ips``, from the processes whose network namespace
    holds them (a pod's pause container); each namespace is read once, the node's own never."""
    wanted, found = set(ips), {}
    if not wanted or limit <= 0:
        return found
    try:
        own = os.stat(f"{proc}/self/ns/net").st_ino
        pids = sorted((int(p) for p in os.listdir(proc) if p.isdigit()), reverse=True)
    except OSError:
        return found
    seen = {own}
    for pid in pids:
        try:
            ino = os.stat(f"{proc}/{pid}/ns/net").st_ino
        except OSError:
            continue
        if ino in seen:
            continue
        seen.add(ino)
        try:
            with open(f"{proc}/{pid}/net/fib_trie", encoding="ascii", errors="replace") as handle:
                local = _fib_local(handle.read())
        except OSError:
            continue
        for ip in sorted(local & wanted):
            found[ip] = f"{proc}/{pid}/ns/net"
            wanted.discard(ip)
        if len(found) >= limit or not wanted:
            break
    return found


def _open_icmp(netns, bind, df):
    def make():
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.setblocking(False)
        if df:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO)
        if bind:
            sock.bind((bind, 0))
        return sock
    return _in_netns(netns, make)


def _open_tcp(netns, bind):
    def make():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if bind:
            sock.bind((bind, 0))
        return sock
    return _in_netns(netns, make)


def run(sources, targets, *, count=3, interval=0.05, timeout=1.0, deadline=3.0, tcp_port=10250, df_size=None,
        clock=time.monotonic):  # noqa: C901, PLR0912, PLR0915 - one bounded event loop
    """Probe every target from every source. ``sources``: [{"label", "netns" | None, "bind" | None}];
    ``targets``: [{"host", "dst"}]. Returns {host: result} (see the module docstring)."""
    start = clock()
    stop_at = start + deadline
    base = (os.getpid() * 7) & 0x7FFF
    pairs, socks, tcps, errors = [], {}, {}, {}
    for si, source in enumerate(sources):
        try:
            icmp = _open_icmp(source.get("netns"), source.get("bind"), False)
            dfs = _open_icmp(source.get("netns"), source.get("bind"), True) if df_size else None
        except OSError as exc:
            errors[si] = f"{source['label']}: cannot open an ICMP socket: {exc}"
            continue
        socks[icmp.fileno()] = (icmp, si)
        if dfs is not None:
            socks[dfs.fileno()] = (dfs, si)
        for ti, target in enumerate(targets):
            pair = {"si": si, "ti": target["host"], "dst": target["dst"], "ident": (base + si * 1024 + ti) & 0xFFFF,
                    "icmp": icmp, "dfs": dfs, "sent": 0, "rtts": [], "sent_at": {}, "df": None, "tcp": None,
                    "unreach": False}
            pairs.append(pair)
            if tcp_port:
                try:
                    sock = _open_tcp(source.get("netns"), source.get("bind"))
                    code = sock.connect_ex((target["dst"], tcp_port))
                    if code in (0, errno.EINPROGRESS):
                        tcps[sock.fileno()] = (sock, pair)
                        pair["tcp"] = "pending"
                    else:
                        pair["tcp"] = "refused" if code == errno.ECONNREFUSED else "unreachable"
                        sock.close()
                except OSError:
                    pair["tcp"] = "error"
    by_ident = {p["ident"]: p for p in pairs}
    next_send, sent_rounds = clock(), 0
    last_send = start
    try:
        while True:
            now = clock()
            if sent_rounds < count and now >= next_send:
                for pair in pairs:
                    try:
                        pair["icmp"].sendto(echo_packet(pair["ident"], sent_rounds), (pair["dst"], 0))
                        pair["sent_at"][sent_rounds] = clock()
                        pair["sent"] += 1
                    except OSError:
                        pair["sent"] += 1
                    if sent_rounds == 0 and pair["dfs"] is not None:
                        try:
                            pair["dfs"].sendto(echo_packet(pair["ident"], DF_SEQ, df_size - 20), (pair["dst"], 0))
                            pair["sent_at"][DF_SEQ] = clock()
                            pair["df"] = {"size": df_size, "ok": False, "error": None}
                        except OSError as exc:
                            pair["df"] = {"size": df_size, "ok": False,
                                          "error": "message too long here: a local MTU is smaller"
                                          if exc.errno == errno.EMSGSIZE else str(exc)}
                sent_rounds += 1
                last_send = clock()
                next_send = last_send + interval
            if sent_rounds >= count:
                done = all(len(p["rtts"]) >= p["sent"] and (p["df"] is None or p["df"]["ok"] or p["df"]["error"])
                           and p["tcp"] != "pending" for p in pairs)
                if done or now >= last_send + timeout:
                    break
            if now >= stop_at:
                break
            until = next_send if sent_rounds < count else last_send + timeout
            wait = max(0.0, min(until, stop_at) - clock())
            readers = [s for s, _si in socks.values()]
            writers = [s for s, _p in tcps.values()]
            readable, writable, _errors = select.select(readers, writers, [], wait)
            for sock in readable:
                for _i in range(64):
                    try:
                        data = sock.recv(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    parsed = parse_reply(data)
                    if not parsed:
                        continue
                    kind, src, ident, seq = parsed
                    pair = by_ident.get(ident)
                    if pair is None or socks.get(sock.fileno(), (None, -1))[1] != pair["si"]:
                        continue
                    if kind == "reply" and src == pair["dst"]:
                        if seq == DF_SEQ and pair["df"] is not None:
                            pair["df"]["ok"] = True
                        elif seq in pair["sent_at"] and len(pair["rtts"]) < pair["sent"]:
                            pair["rtts"].append((clock() - pair["sent_at"].pop(seq)) * 1000)
                    elif kind == "frag" and seq == DF_SEQ and pair["df"] is not None:
                        pair["df"]["error"] = "fragmentation needed on the path"
                    elif kind == "unreach":
                        pair["unreach"] = True
            for sock in writable:
                entry = tcps.pop(sock.fileno(), None)
                if entry is None:
                    continue
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                entry[1]["tcp"] = ("open" if code == 0 else "refused" if code == errno.ECONNREFUSED
                                   else "unreachable")
                sock.close()
    finally:
        for sock, pair in tcps.values():
            if pair["tcp"] == "pending":
                pair["tcp"] = "timeout"
            sock.close()
        for sock, _si in socks.values():
            sock.close()
    return _results(sources, targets, pairs, errors)


def _results(sources, targets, pairs, errors):
    out = {}
    for target in targets:
        mine = [p for p in pairs if p["ti"] == target["host"]]
        sent = sum(p["sent"] for p in mine)
        received = sum(len(p["rtts"]) for p in mine)
        rtts = [r for p in mine for r in p["rtts"]]
        failed = [sources[p["si"]]["label"] for p in mine
                  if not p["rtts"] and p["tcp"] not in ("open", "refused")]
        dfs = [p["df"] for p in mine if p["df"] is not None]
        df = None
        if dfs:
            bad = [d for d in dfs if not d["ok"]]
            df = {"size": dfs[0]["size"], "ok": not bad,
                  "error": (bad[0]["error"] or "no reply to the DF packet") if bad else None}
        tcp = [p["tcp"] for p in mine if p["tcp"]]
        out[target["host"]] = {
            "ok": bool(mine) and not failed,
            "loss": round(1 - received / sent, 3) if sent else 1.0,
            "rtt_ms": round(sorted(rtts)[len(rtts) // 2], 3) if rtts else None,
            "icmp": {"sent": sent, "received": received},
            "tcp": (next((t for t in tcp if t not in ("open", "refused")), tcp[0]) if tcp else None),
            "df": df, "df_ok": None if df is None else df["ok"],
            "dst": target["dst"], "via": [sources[p["si"]]["label"] for p in mine], "failed_via": failed,
            "error": "; ".join(errors.values()) or None if not mine else None,
        }
    return out


def sources_for(calico, workloads, netns_of, node_ip=None):
    """The probe's sources: the local pods whose namespace was found, else the tunnel address, else
    the node."""
    pods = [{"label": f"pod {w['ip']}", "netns": netns_of[w["ip"]], "bind": None}
            for w in workloads if w.get("ip") in netns_of]
    if pods:
        return pods
    tunnel = ((calico or {}).get("tunnel") or {}).get("address")
    if tunnel:
        return [{"label": f"tunnel {tunnel.split('/')[0]}", "netns": None, "bind": tunnel.split("/")[0]}]
    return [{"label": f"node {node_ip}" if node_ip else "node", "netns": None, "bind": None}]


def destinations(targets, vxlan_l2=None):
    """[{host, dst}]: the controller's overlay address, else the VTEP this node's VXLAN state gives
    the peer's node IP, else the node IP."""
    vtep_of = {}
    for vtep, (_mac, node_ip, _state) in (vxlan_l2 or {}).items():
        if node_ip:
            vtep_of.setdefault(node_ip, vtep)
    return [{"host": t["host"], "dst": t.get("overlay") or vtep_of.get(t["ip"]) or t["ip"]}
            for t in targets if t.get("ip")]
