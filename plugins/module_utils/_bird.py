# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: not a public API, may change at any time without notice.

"""BIRD (1.6, Calico's fork) control-socket client: what ``calicoctl node status`` reads, as data.

BIRD answers each command with lines ``CODE-text`` (more follows), ``CODE text`` (last line of the
reply) or `` text`` (continues the previous code): 0001 banner, 1000 version, 1011 router id and
times, 0013 daemon status, 2002 protocol table header, 1002 protocol rows, 1006 protocol details,
0000 end, 8xxx run-time and 9xxx parse errors. Parsing is pure; ``bird_facts()`` is the only I/O.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time

DEFAULT_SOCKET = "/var/run/calico/bird.ctl"
DEFAULT_COMMANDS = ("show status", "show protocols all")

# calicoctl node status: peers are the BGP protocols named <Type>_<address with _ for . or :>;
# Calico's templates append _port_<n> for a peer on a non-default port.
PEER_TYPES = {"Mesh": "node-to-node mesh", "Node": "node specific", "Global": "global"}
_PEER_NAME = re.compile(r"^(Global|Node|Mesh)_(.+?)(?:_port_(\d+))?$")
_HEADINGS = ["name", "proto", "table", "state", "since", "info"]
_FINAL_LINE = re.compile(rb"(?:^|\n)\d{4} [^\n]*\n")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_DETAIL_KEYS = {
    "Description": "description",
    "BGP state": "bgp_state",
    "Neighbor address": "neighbor_address",
    "Neighbor AS": "neighbor_as",
    "Neighbor ID": "neighbor_id",
    "Source address": "source_address",
    "Last error": "last_error",
    "Routes": "routes",
}
_ROUTES = re.compile(r"(\d+) imported, (?:(\d+) filtered, )?(\d+) exported, (\d+) preferred")


class BirdReplyError(ValueError):
    """Text that is not a BIRD reply, or a reply with an error code."""


def parse_reply(text):
    """``[(code, text)]`` for every line; continuation lines carry the code of the line before."""
    lines = []
    code = None
    for line in text.splitlines():
        if len(line) >= 5 and line[:4].isdigit() and line[4] in "- ":
            code = int(line[:4])
            lines.append((code, line[5:]))
        elif line.startswith(" ") and code is not None:
            lines.append((code, line[1:]))
        elif line:
            raise BirdReplyError(f"unexpected line from BIRD: {line!r}")
    return lines


def reply_error(lines):
    """The first 8xxx/9xxx line as ``"9001 syntax error"``, else None."""
    for code, text in lines:
        if code >= 8000:
            return f"{code:04d} {text}".strip()
    return None


def parse_status(text):
    """``show status`` -> ``{"version", "router_id", "server_time", "last_reboot",
    "last_reconfiguration", "status"}`` (None where absent)."""
    lines = parse_reply(text)
    error = reply_error(lines)
    if error:
        raise BirdReplyError(error)
    out = dict.fromkeys(("version", "router_id", "server_time", "last_reboot", "last_reconfiguration", "status"))
    prefixes = (("Router ID is ", "router_id"), ("Current server time is ", "server_time"),
                ("Last reboot on ", "last_reboot"), ("Last reconfiguration on ", "last_reconfiguration"))
    for code, raw in lines:
        line = raw.strip()
        if code == 1000 and line.startswith("BIRD "):
            out["version"] = line[5:].strip()
        elif code == 1011:
            for prefix, key in prefixes:
                if line.startswith(prefix):
                    out[key] = line[len(prefix):].strip()
        elif code == 13:
            out["status"] = line
    return out


def _split_row(row):
    """A ``show protocols`` row -> protocol dict; the since column may be a date and a time."""
    cols = row.split()
    if len(cols) < 5:
        raise BirdReplyError(f"protocol row with fewer than 5 columns: {row!r}")
    since, rest = cols[4], cols[5:]
    if _DATE.match(since) and rest and _TIME.match(rest[0]):
        since, rest = f"{since} {rest[0]}", rest[1:]
    return {"name": cols[0], "proto": cols[1], "table": cols[2], "state": cols[3], "since": since,
            "info": " ".join(rest)}


def _add_detail(proto, line):
    key, sep, value = line.strip().partition(":")
    name = _DETAIL_KEYS.get(key)
    if not sep or name is None:
        return
    value = value.strip()
    if name == "neighbor_as":
        proto[name] = int(value) if value.isdigit() else value
    elif name == "routes":
        m = _ROUTES.match(value)
        if m:
            proto[name] = {"imported": int(m.group(1)), "filtered": int(m.group(2) or 0),
                           "exported": int(m.group(3)), "preferred": int(m.group(4))}
    else:
        proto[name] = value


def parse_protocols(text):
    """``show protocols`` or ``show protocols all`` -> ``[{"name", "proto", "table", "state", "since",
    "info"}]`` plus, from ``all``, ``description``, ``routes`` and for BGP ``bgp_state``,
    ``neighbor_address``, ``neighbor_as``, ``neighbor_id``, ``source_address``, ``last_error``."""
    lines = parse_reply(text)
    error = reply_error(lines)
    if error:
        raise BirdReplyError(error)
    protocols = []
    for code, line in lines:
        if code == 2002:
            if line.split() != _HEADINGS:
                raise BirdReplyError(f"unknown BIRD protocol table heading: {line!r}")
        elif code == 1002:
            protocols.append(_split_row(line))
        elif code == 1006 and protocols:
            _add_detail(protocols[-1], line)
    return protocols


def peer_from_name(name):
    """Calico's protocol name -> ``{"type", "address", "port"}``, or None for other names.

    ``Mesh_192_0_2_12`` -> node-to-node mesh 192.0.2.12; ``Node_2001_db8__12`` -> node specific
    2001:db8::12; ``Global_203_0_113_7_port_1179`` -> global 203.0.113.7 port 1179. The address is
    None when the rest of the name is not one.
    """
    m = _PEER_NAME.match(name)
    if not m:
        return None
    body = m.group(2)
    text = body.replace("_", ".") if re.fullmatch(r"\d+(_\d+){3}", body) else body.replace("_", ":")
    try:
        address = str(ipaddress.ip_address(text))
    except ValueError:
        address = None
    return {"type": PEER_TYPES[m.group(1)], "address": address, "port": int(m.group(3)) if m.group(3) else None}


def peers(protocols):
    """The BGP protocols as ``calicoctl node status`` rows, with what ``show protocols all`` adds.

    ``info`` is calicoctl's INFO column (BGP state and any message); ``established`` is True when
    the session is up. A BGP protocol whose name is not Calico's has ``type`` None and its
    address from BIRD's ``Neighbor address``.
    """
    rows = []
    for p in protocols:
        if p["proto"] != "BGP":
            continue
        named = peer_from_name(p["name"]) or {"type": None, "address": None, "port": None}
        bgp_state = p.get("bgp_state") or (p["info"].split()[0] if p["info"] else None)
        rows.append({
            "name": p["name"],
            "address": named["address"] or p.get("neighbor_address"),
            "port": named["port"],
            "type": named["type"],
            "state": p["state"],
            "since": p["since"],
            "info": p["info"],
            "bgp_state": bgp_state,
            "established": bgp_state == "Established",
            "neighbor_address": p.get("neighbor_address"),
            "neighbor_as": p.get("neighbor_as"),
            "source_address": p.get("source_address"),
            "last_error": p.get("last_error"),
        })
    return rows


def facts_from_replies(path, replies):
    """Assemble the ``bird`` fact from the raw replies ``query()`` returns (pure)."""
    facts = {"socket": path, "available": True, "error": None, "version": None, "router_id": None,
             "status": None, "peers": [], "protocols": []}
    errors = []
    banner = re.match(r"0001 BIRD (\S+) ready", replies.get("banner", ""))
    if banner:
        facts["version"] = banner.group(1)
    if "show status" in replies:
        try:
            status = parse_status(replies["show status"])
            facts.update(version=status["version"] or facts["version"], router_id=status["router_id"],
                         status=status["status"])
        except BirdReplyError as exc:
            errors.append(f"show status: {exc}")
    protocols_cmd = next((c for c in ("show protocols all", "show protocols") if c in replies), None)
    if protocols_cmd:
        try:
            facts["protocols"] = parse_protocols(replies[protocols_cmd])
            facts["peers"] = peers(facts["protocols"])
        except BirdReplyError as exc:
            errors.append(f"{protocols_cmd}: {exc}")
    facts["error"] = "; ".join(errors) or None
    return facts


def _read_reply(sock, buf, timeout):
    """Read until a reply's final line; returns ``(reply, rest)``."""
    deadline = time.monotonic() + timeout
    late = f"no complete reply from BIRD within {timeout:g} s"
    while True:
        m = _FINAL_LINE.search(buf)
        if m:
            return buf[:m.end()].decode("utf-8", "replace"), buf[m.end():]
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(late)
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(late) from None
        if not chunk:
            raise ConnectionError("BIRD closed the connection")
        buf += chunk


def query(path=DEFAULT_SOCKET, commands=DEFAULT_COMMANDS, timeout=2.0):
    """Send ``commands`` over BIRD's control socket; ``{"banner": text, command: reply_text}``.

    ``timeout`` bounds the connect and each reply. Raises OSError (missing socket, refused, timeout,
    closed) or BirdReplyError (no 0001 banner).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        banner, buf = _read_reply(sock, b"", timeout)
        if not banner.startswith("0001 "):
            raise BirdReplyError(f"unexpected BIRD banner: {banner.strip()!r}")
        replies = {"banner": banner}
        for command in commands:
            sock.sendall(command.encode() + b"\n")
            replies[command], buf = _read_reply(sock, buf, timeout)
    return replies


def bird_facts(path=DEFAULT_SOCKET, timeout=2.0):
    """The ``bird`` part of the ``calico_node`` fact. Never raises: a missing socket, a refused
    connection, a timeout or a garbled reply is ``available: False`` with the reason in ``error``."""
    try:
        replies = query(path, timeout=timeout)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return {"socket": path, "available": False, "error": f"{type(exc).__name__}: {reason}", "version": None,
                "router_id": None, "status": None, "peers": [], "protocols": []}
    return facts_from_replies(path, replies)
