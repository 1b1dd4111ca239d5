# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: not a public API, may change at any time without notice.

"""NetworkManager's configuration as NetworkManager 1.42 reads it.

Discovery order, shadowing, ``[.config] enable=``, ``+=``/``-=`` merging, NetworkManager-intern.conf
and device-spec matching follow NetworkManager.conf(5) and the source (src/core/nm-config.c
read_entire_config/read_config/intern_config_read, nm-config-data.c _merge_keyfiles and the
[device*] section lookup, nm-core-utils.c nm_match_spec_split/join/device). Everything here is pure
except ``discover()``, which only reads files under a root directory.
"""

from __future__ import annotations

import os
from collections import deque

CALICO_DEVICES = ("cali*", "tunl*", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali")

DEFAULT_DIRS = {
    "system": "/usr/lib/NetworkManager/conf.d",
    "run": "/run/NetworkManager/conf.d",
    "main": "/etc/NetworkManager/NetworkManager.conf",
    "etc": "/etc/NetworkManager/conf.d",
    "intern": "/var/lib/NetworkManager/NetworkManager-intern.conf",
}
# Read instead of NetworkManager.conf when present (compatibility with old installs).
OLD_MAIN_FILE = "/etc/NetworkManager/nm-system-settings.conf"

MATCH, NEG_MATCH, NO_MATCH = "match", "neg-match", "no-match"

# Linux interface names are at most IFNAMSIZ - 1 bytes.
IFNAME_MAX = 15

_KIND_RANK = {"system": 0, "run": 1, "main": 2, "etc": 3}
_ASCII_SPACE = " \t\n\v\f\r"
_UNMANAGED = ("keyfile", "unmanaged-devices")
_SPEC_TAGS = (
    ("type:", "type"),
    ("mac:", "mac"),
    ("interface-name:", "name"),
    ("driver:", "driver"),
    ("s390-subchannels:", "s390"),
    ("dhcp-plugin:", "dhcp-plugin"),
)


class KeyfileError(ValueError):
    """A file GLib's key-file parser rejects (NetworkManager then refuses the whole configuration)."""


# ---------------------------------------------------------------------------------------------
# GKeyFile syntax


def parse_keyfile(text):
    """Parse key-file text the way GLib does for NetworkManager.

    Returns ``{group: [(key, raw_value), ...]}`` in file order. A repeated ``[group]`` continues the
    first one and repeated keys stay in the list, as ``g_key_file_get_keys()`` returns them; values are
    raw (escapes kept). Translations (``key[locale]``) are dropped, as NetworkManager loads without
    them. Raises ``KeyfileError`` where GLib fails.
    """
    groups = {}
    current = None
    for lineno, raw_line in enumerate(text.split("\n"), 1):
        line = (raw_line[:-1] if raw_line.endswith("\r") else raw_line).lstrip(_ASCII_SPACE)
        if not line or line.startswith("#"):
            continue
        close = line.find("]")
        if line.startswith("[") and close > 0 and not line[close + 1:].strip(" \t"):
            name = line[1:close]
            if not name or "[" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
                raise KeyfileError(f"line {lineno}: invalid group name {line!r}")
            current = groups.setdefault(name, [])
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise KeyfileError(f"line {lineno}: {line!r} is not a key-value pair, group or comment")
        if current is None:
            raise KeyfileError(f"line {lineno}: key file does not start with a group")
        key = key.rstrip(_ASCII_SPACE)
        if "[" in key:
            if not key.endswith("]") or key.index("[") == 0 or "]" in key[:-1]:
                raise KeyfileError(f"line {lineno}: invalid key name {key!r}")
            continue
        if "]" in key:
            raise KeyfileError(f"line {lineno}: invalid key name {key!r}")
        current.append((key, value.lstrip(_ASCII_SPACE)))
    return groups


def _unescape(raw):
    """``g_key_file_get_string()``: None where GLib reports an invalid escape."""
    out = []
    chars = iter(raw)
    for c in chars:
        if c != "\\":
            out.append(c)
            continue
        esc = next(chars, "")
        mapped = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(esc)
        if mapped is None:
            return None
        out.append(mapped)
    return "".join(out)


def parse_bool(raw, default):
    """NetworkManager's boolean parsing (``_nm_utils_ascii_str_to_bool``)."""
    if raw is None:
        return default
    value = raw.strip(_ASCII_SPACE).lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    return default


def split_specs(value):
    """``nm_match_spec_split()``: split on unescaped ``,`` or ``;``, trim, honour ``\\`` escapes."""
    if not value:
        return []
    pieces = []
    cur = []
    trailing_ws = 0
    i = 0
    n = len(value)
    while i < n and value[i] in _ASCII_SPACE:
        i += 1
    while i < n:
        c = value[i]
        if c == "\\":
            i += 1
            if i == n:
                break
            e = value[i]
            cur.extend({"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\", ",": ",", ";": ";"}.get(e, "\\" + e))
            trailing_ws = 0
            i += 1
        elif c in ",;":
            piece = "".join(cur[: len(cur) - trailing_ws])
            if piece:
                pieces.append(piece)
            cur = []
            trailing_ws = 0
            i += 1
            while i < n and value[i] in _ASCII_SPACE:
                i += 1
        else:
            cur.append(c)
            # NetworkManager resets this count only at escapes and separators, so whitespace inside a
            # spec cuts as many characters off its end ("a b,c" -> "a ", "c"); copied as it behaves.
            if c in _ASCII_SPACE:
                trailing_ws += 1
            i += 1
    piece = "".join(cur[: len(cur) - trailing_ws])
    if piece:
        pieces.append(piece)
    return pieces


def _escape_spec(spec):
    body = spec.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace(",", "\\,").replace(";", "\\;")
    # leading and trailing whitespace would be trimmed by split_specs()
    for ws, esc in ((" ", "\\s"), ("\t", "\\t")):
        if body.startswith(ws):
            body = esc + body[1:]
        if body.endswith(ws):
            body = body[:-1] + esc
    return body


def join_specs(specs):
    """``nm_match_spec_join()``: the inverse of ``split_specs`` (``,``-separated, escaped)."""
    return ",".join(_escape_spec(s) for s in specs if s)


# ---------------------------------------------------------------------------------------------
# Discovery (the only I/O in this module)


def _order(entries):
    """NetworkManager's parse order: system dir, run dir, main file, etc dir (each sorted by name).

    A name in the etc dir hides the same name in the run and system dirs, a name in the run dir hides
    it in the system dir. Returns ``(kept, shadowed)``.
    """
    by_kind = {}
    for e in entries:
        by_kind.setdefault(e["kind"], {})[os.path.basename(e["path"])] = e
    kept, shadowed = [], []
    for e in entries:
        name = os.path.basename(e["path"])
        hidden_by = {"system": ("etc", "run"), "run": ("etc",)}.get(e["kind"], ())
        if any(name in by_kind.get(k, {}) for k in hidden_by):
            shadowed.append(e["path"])
        else:
            kept.append(e)
    kept.sort(key=lambda e: (_KIND_RANK[e["kind"]], os.path.basename(e["path"]).encode()))
    return kept, sorted(shadowed)


def _read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8"), None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _conf_names(path):
    try:
        return [n for n in os.listdir(path) if n.endswith(".conf")]
    except OSError:
        return []


def discover(root="/", main_file=None, config_dir=None, system_config_dir=None, intern_file=None):
    """Find and read NetworkManager's configuration files under ``root``.

    The keyword arguments are NetworkManager's ``--config``, ``--config-dir``, ``--system-config-dir``
    and ``--intern-config``. Paths in the result are as seen on the host (without ``root``)::

        {"dirs": {"system", "run", "main", "etc", "intern"},
         "files": [{"path", "kind": "system"|"run"|"main"|"etc", "text": str|None, "error": str|None}],
         "shadowed": [path], "intern": {"path", "text"} | None}
    """

    def host(path):
        return os.path.join(root, path.lstrip("/"))

    dirs = dict(DEFAULT_DIRS)
    dirs.update({k: v for k, v in (("main", main_file), ("etc", config_dir), ("system", system_config_dir),
                                   ("intern", intern_file)) if v})
    # NetworkManager skips the run dir when it coincides with one of the others.
    if dirs["run"] in (dirs["system"], dirs["etc"]):
        dirs["run"] = ""
    entries = []
    for kind in ("system", "run", "etc"):
        if dirs[kind]:
            entries += [{"path": os.path.join(dirs[kind], n), "kind": kind} for n in _conf_names(host(dirs[kind]))]
    if main_file:
        entries.append({"path": main_file, "kind": "main"})
    else:
        for candidate in (OLD_MAIN_FILE, DEFAULT_DIRS["main"]):
            if os.path.exists(host(candidate)):
                entries.append({"path": candidate, "kind": "main"})
                break
    kept, shadowed = _order(entries)
    files = []
    for e in kept:
        text, error = _read_text(host(e["path"]))
        files.append({"path": e["path"], "kind": e["kind"], "text": text, "error": error})
    intern = None
    if os.path.exists(host(dirs["intern"])):
        text, _error = _read_text(host(dirs["intern"]))
        # NetworkManager ignores (and rewrites) an unreadable intern file.
        if text is not None:
            intern = {"path": dirs["intern"], "text": text}
    return {"dirs": dirs, "files": files, "shadowed": shadowed, "intern": intern}


def with_dropin(discovered, path, text):
    """``discovered`` as it would be after writing ``text`` to ``path`` (pure; for check mode)."""
    dirs = discovered["dirs"]
    mains = [f["path"] for f in discovered["files"] if f["kind"] == "main"]
    if path in mains or (not mains and path == dirs["main"]):
        kind = "main"
    else:
        kind = next((k for k in ("etc", "run", "system") if dirs[k] and os.path.dirname(path) == dirs[k]), None)
        if kind is None or not path.endswith(".conf"):
            raise ValueError(f"{path} is not a file NetworkManager reads")
    entries = [dict(f) for f in discovered["files"] if f["path"] != path]
    entries.append({"path": path, "kind": kind, "text": text, "error": None})
    kept, shadowed = _order(entries)
    return dict(discovered, files=kept, shadowed=sorted(set(discovered["shadowed"]) | set(shadowed)))


# ---------------------------------------------------------------------------------------------
# Merge


def _is_spec_key(group, key):
    """Keys whose ``+=``/``-=`` NetworkManager merges as device (or connection) specs."""
    return (
        (group, key) in {("main", "no-auto-default"), ("main", "ignore-carrier"), ("main", "assume-ipv6ll-only"),
                         _UNMANAGED}
        or (key == "match-device" and group.startswith(("connection", "device")))
        or (key == "allowed-connections" and group.startswith("device"))
    )


def _sorted_groups(names):
    """``_nm_config_sort_groups``: other groups first, then [device*] and [connection*] reversed."""
    plain = [g for g in names if not g.startswith(("device", "connection"))]
    device = [g for g in names if g.startswith("device")]
    connection = [g for g in names if g.startswith("connection")]
    return plain + device[::-1] + connection[::-1]


def _config_match(specs, nm_version, env_tag):
    """``nm_match_spec_config`` for ``[.config] enable=``; None when it depends on an unknown version."""
    unknown = False

    def version_match(tag, arg):
        parts = arg.strip().split(".")
        if not arg.strip() or len(parts) > 3 or not all(p.isdigit() for p in parts):
            return False
        want = [int(p) for p in parts]
        cur = [int(p) for p in nm_version.split(".")[:3]]
        for i, (c, v) in enumerate(zip(cur, want)):
            last = i == len(want) - 1
            if tag == "nm-version:" or not last:
                if c != v:
                    return False
            elif (tag == "nm-version-min:" and c < v) or (tag == "nm-version-max:" and c > v):
                return False
        return True

    def test(spec):
        nonlocal unknown
        low = spec.lower()
        for tag in ("nm-version:", "nm-version-min:", "nm-version-max:"):
            if low.startswith(tag):
                if nm_version is None:
                    unknown = True
                    return False
                return version_match(tag, spec[len(tag):])
        if low.startswith("env:"):
            return bool(env_tag) and spec[4:] == env_tag
        return False

    result = _match_result([(exc, test(body)) for exc, body in (_strip_except(s) for s in specs)])
    return None if unknown else result


def _strip_except(spec):
    if spec[:7].lower() == "except:":
        return True, spec[7:]
    return False, spec


def _match_result(evaluated):
    """``_match_result``: ``evaluated`` is ``[(is_except, matched)]``."""
    has_except = any(exc for exc, _m in evaluated)
    has_not_except = any(not exc for exc, _m in evaluated)
    has_match = any(m for exc, m in evaluated if not exc)
    has_match_except = any(m for exc, m in evaluated if exc)
    if has_except and not has_not_except:
        return NEG_MATCH if has_match_except else MATCH
    if has_match_except:
        return NEG_MATCH
    return MATCH if has_match else NO_MATCH


def _enabled(groups, nm_version, env_tag):
    """True, False, or None when ``enable=`` depends on a version we were not told."""
    entries = groups.get(".config", [])
    raw = dict(entries).get("enable") if entries else None
    if raw is None:
        return True
    as_bool = parse_bool(raw, None)
    if as_bool is not None:
        return as_bool
    result = _config_match(split_specs(raw), nm_version, env_tag)
    return None if result is None else result == MATCH


def merge(discovered, nm_version=None, env_tag=""):
    """Merge the discovered files into NetworkManager's effective configuration.

    ``nm_version`` ("1.42.4") and ``env_tag`` (``NM_CONFIG_ENABLE_TAG``) decide ``[.config] enable=``;
    a snippet whose ``enable=`` needs the version when none is given is read and listed in
    ``assumed_enabled``. Returns::

        {"files": [path] (NetworkManager's parse order), "shadowed": [path], "disabled": [path],
         "assumed_enabled": [path], "errors": [{"file", "error"}], "warnings": [str],
         "unmanaged_devices": [spec], "history": [{"file", "op": "="|"+="|"-=", "value": [spec]}],
         "device_sections": [{"group", "match_device": [spec]|None, "managed": str|None, "stop_match": bool}],
         "groups": {group: {key: raw_value}}}

    ``device_sections`` are in NetworkManager's lookup order (first match wins, literal [device] last).
    ``+=``/``-=`` on NetworkManager's three string-list keys (main.plugins, main.debug,
    logging.domains) are not merged here.
    """
    merged = {}
    result = {"files": [], "shadowed": list(discovered["shadowed"]), "disabled": [], "assumed_enabled": [],
              "errors": [], "warnings": [], "history": []}
    for f in discovered["files"]:
        path = f["path"]
        result["files"].append(path)
        if f["error"]:
            result["errors"].append({"file": path, "error": f["error"]})
            continue
        try:
            groups = parse_keyfile(f["text"])
        except KeyfileError as exc:
            result["errors"].append({"file": path, "error": str(exc)})
            continue
        if f["kind"] != "main":
            enabled = _enabled(groups, nm_version, env_tag)
            if enabled is False:
                result["disabled"].append(path)
                continue
            if enabled is None:
                result["assumed_enabled"].append(path)
        groups.pop(".config", None)
        for group in _sorted_groups(list(groups)):
            if group.startswith(".intern."):
                continue
            _merge_group(merged, group, groups[group], path, result)
    if discovered.get("intern"):
        _apply_intern(merged, discovered["intern"], result)
    result["unmanaged_devices"] = split_specs(merged.get("keyfile", {}).get("unmanaged-devices"))
    result["device_sections"] = _device_sections(merged)
    result["groups"] = merged
    return result


def _merge_group(merged, group, entries, path, result):
    last = dict(entries)
    # like GLib, a group exists in the merged config only once a key is set in it
    target = merged.get(group, {})
    for key, _first_value in entries:
        # GLib returns the last value of a repeated key at each of its positions.
        value = last[key]
        if key.startswith((".was.", ".set.")) or key == ".was":
            continue
        op_char = key[-1] if len(key) > 1 and key[-1] in "+-" else ""
        base = key[:-1] if op_char else key
        if base == "unmanaged-devices" and group != "keyfile":
            warning = f"{path}: unmanaged-devices in [{group}] has no effect (it belongs in [keyfile])"
            if warning not in result["warnings"]:
                result["warnings"].append(warning)
        if not op_char:
            target[key] = value
            merged[group] = target
            if (group, key) == _UNMANAGED:
                result["history"].append({"file": path, "op": "=", "value": split_specs(value)})
            continue
        if not _is_spec_key(group, base):
            continue
        old = split_specs(target.get(base))
        new = split_specs(value)
        if op_char == "+":
            combined = old + [s for s in new if s not in old]
        else:
            combined = [s for s in old if s not in new]
        target[base] = join_specs(combined)
        merged[group] = target
        if (group, base) == _UNMANAGED:
            result["history"].append({"file": path, "op": op_char + "=", "value": new})


def _apply_intern(merged, intern, result):
    """NetworkManager-intern.conf: ``.set.KEY`` (or a lone ``.was.KEY``, which hides the key) applies
    only while ``.was.KEY`` still equals the user configuration's raw value."""
    try:
        groups = parse_keyfile(intern["text"])
    except KeyfileError:
        return
    for group, entries in groups.items():
        if group == ".config" or group.startswith(".intern."):
            continue
        values = dict(entries)
        for key, value in values.items():
            for prefix in (".set.", ".was."):
                if key.startswith(prefix) and len(key) > len(prefix):
                    base = key[len(prefix):]
                    break
            else:
                continue
            if key.startswith(".was.") and ".set." + base in values:
                continue
            if values.get(".was." + base) != merged.get(group, {}).get(base):
                continue
            if key.startswith(".set."):
                merged.setdefault(group, {})[base] = value
                new = split_specs(value)
            else:
                merged.get(group, {}).pop(base, None)
                new = []
            if (group, base) == _UNMANAGED:
                result["history"].append({"file": intern["path"], "op": "=", "value": new})


def _device_sections(merged):
    names = [g for g in merged if g.startswith("device") and g != "device"][::-1]
    if "device" in merged:
        names.append("device")
    sections = []
    for name in names:
        keys = merged[name]
        managed = keys.get("managed")
        sections.append({
            "group": name,
            "match_device": split_specs(keys["match-device"]) if "match-device" in keys else None,
            "managed": None if managed is None else _unescape(managed),
            "stop_match": parse_bool(keys.get("stop-match"), False),
        })
    return sections


# ---------------------------------------------------------------------------------------------
# Device specs


def parse_spec(spec):
    """``(is_except, kind, arg)``; kind is one of all, never, name-glob, name-exact, fuzzy, mac, type,
    driver, s390, dhcp-plugin. ``fuzzy`` is an unqualified spec: an exact name or a MAC address."""
    exc, body = _strip_except(spec)
    if body == "*":
        return exc, "all", ""
    low = body.lower()
    for tag, kind in _SPEC_TAGS:
        if low.startswith(tag):
            arg = body[len(tag):]
            if kind != "name":
                return exc, kind, arg
            if arg.startswith("="):
                return exc, "name-exact", arg[1:]
            return exc, "name-glob", arg[1:] if arg.startswith("~") else arg
    # after except: a spec must be qualified; NetworkManager then never matches it
    return exc, "never" if exc else "fuzzy", body


def _hwaddr(text):
    digits = text.replace(":", "").replace("-", "").lower()
    if len(digits) % 2 or not 2 <= len(digits) // 2 <= 20 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return digits


def _match_list(specs, test, lean):
    """Evaluate a spec list. ``test(kind, arg)`` answers True, False or None (unknown). With ``lean``
    None an unknown is a non-match (NetworkManager's answer for an absent attribute); with True/False
    unknowns are resolved so the list's result leans towards matching / not matching."""
    evaluated = []
    for spec in specs:
        exc, kind, arg = parse_spec(spec)
        r = test(kind, arg)
        if r is None:
            r = False if lean is None else lean != exc
        evaluated.append((exc, r))
    return _match_result(evaluated)


def _device_test(name, mac, dev_type, driver, driver_version):
    mac_digits = _hwaddr(mac) if mac else None

    def test(kind, arg):
        if kind in ("all", "never"):
            return kind == "all"
        if kind == "name-glob":
            return glob_match(arg, name)
        if kind == "name-exact":
            return arg == name
        if kind in ("fuzzy", "mac"):
            if kind == "fuzzy" and arg == name:
                return True
            if _hwaddr(arg) is None:
                return False
            return None if mac_digits is None else _hwaddr(arg) == mac_digits
        if kind == "type":
            return None if dev_type is None else arg == dev_type
        if kind == "driver":
            if driver is None:
                return None
            drv, slash, version = arg.rpartition("/")
            if not slash:
                return arg == driver
            if drv != driver:
                return False
            return glob_match(version, driver_version or "")
        return None

    return test


def match_specs(specs, name, *, mac=None, dev_type=None, driver=None, driver_version=None):
    """``nm_match_spec_device()`` for one device: MATCH, NEG_MATCH or NO_MATCH.

    ``dev_type`` is NetworkManager's type name (``nmcli -f GENERAL.TYPE``); attributes not given are
    treated as absent, as NetworkManager treats a device without them.
    """
    return _match_list(specs, _device_test(name, mac, dev_type, driver, driver_version), None)


def _unmanaged(config, test, assume_unmanaged=False):
    """Unmanaged by ``[keyfile] unmanaged-devices`` (strict) or by the first ``[device*]`` section that
    sets ``managed`` and matches. Unknown attributes are resolved against the device being unmanaged,
    or for it with ``assume_unmanaged``."""
    if _match_list(config["unmanaged_devices"], test, assume_unmanaged) == MATCH:
        return True
    for section in config["device_sections"]:
        if section["managed"] is None and not section["stop_match"]:
            continue
        managed = parse_bool(section["managed"], True)
        spec = section["match_device"]
        if spec is None or _match_list(spec, test, managed != assume_unmanaged) == MATCH:
            return not managed
    return False


def device_unmanaged(config, name, *, mac=None, dev_type=None, driver=None, driver_version=None):
    """Whether NetworkManager's configuration (``merge()`` result) leaves device ``name`` unmanaged.

    An attribute not given is unknown, and an unknown never makes the device look unmanaged. udev rules
    (``NM_UNMANAGED``) and runtime ``nmcli device set`` are not configuration and not seen here.
    """
    return _unmanaged(config, _device_test(name, mac, dev_type, driver, driver_version))


# ---------------------------------------------------------------------------------------------
# Globs: g_pattern_match_simple (only * and ?, no ranges, no escapes)


class _Glob:
    # Wildcards are 1-tuples so that a literal "*" in an exact name stays a plain character.
    def __init__(self, pattern, literal=False):
        self.tokens = list(pattern) if literal else [(c,) if c in "*?" else c for c in pattern]
        self.start = self._closure({0})

    def _closure(self, states):
        out = set(states)
        for start in sorted(states):
            i = start
            while i < len(self.tokens) and self.tokens[i] == ("*",):
                i += 1
                out.add(i)
        return frozenset(out)

    def step(self, states, ch):
        nxt = set()
        for i in states:
            if i < len(self.tokens):
                t = self.tokens[i]
                if t == ("*",):
                    nxt.add(i)
                elif t in (("?",), ch):
                    nxt.add(i + 1)
        return self._closure(nxt)

    def accepts(self, states):
        return len(self.tokens) in states

    def literals(self):
        return {t for t in self.tokens if isinstance(t, str)}


def glob_match(pattern, name):
    g = _Glob(pattern)
    states = g.start
    for ch in name:
        states = g.step(states, ch)
        if not states:
            return False
    return g.accepts(states)


def managed_example(config, pattern, max_len=IFNAME_MAX, assume_unmanaged=False):
    """The shortest interface name (at most ``max_len`` characters) matching the glob ``pattern`` that
    NetworkManager's configuration would leave managed, or None when it leaves all of them unmanaged.

    Explores the product of the pattern's and every interface-name spec's automata over the characters
    they mention plus one other, so the answer is exact for name-based specs. Specs on other attributes
    (mac:, type:, driver:, ...) are unknown for a pattern: they never count as protecting it unless
    ``assume_unmanaged``.
    """
    lists = [config["unmanaged_devices"]] + [s["match_device"] or [] for s in config["device_sections"]]
    name_specs = sorted({(kind, arg) for specs in lists for _e, kind, arg in map(parse_spec, specs)
                         if kind in ("name-glob", "name-exact", "fuzzy")})
    globs = [_Glob(arg, literal=kind != "name-glob") for kind, arg in name_specs]
    target = _Glob(pattern)
    literals = set(target.literals()).union(*(g.literals() for g in globs))
    alphabet = sorted(literals) + [next(c for c in "0123456789abcdefghijklmnopqrstuvwxyz_-@" + chr(0x7f)
                                        if c not in literals)]
    start = (target.start, tuple(g.start for g in globs))
    seen = {start}
    queue = deque([(start, "")])
    while queue:
        (states, spec_states), name = queue.popleft()
        if target.accepts(states):
            accepted = {key for key, g, s in zip(name_specs, globs, spec_states) if g.accepts(s)}

            def test(kind, arg, accepted=accepted):
                if kind in ("name-glob", "name-exact", "fuzzy") and (kind, arg) in accepted:
                    return True
                if kind in ("name-glob", "name-exact", "never") or (kind == "fuzzy" and _hwaddr(arg) is None):
                    return False
                return True if kind == "all" else None

            if not _unmanaged(config, test, assume_unmanaged):
                return name
        if len(name) >= max_len:
            continue
        for ch in alphabet:
            nxt_states = target.step(states, ch)
            if not nxt_states:
                continue
            nxt = (nxt_states, tuple(g.step(s, ch) for g, s in zip(globs, spec_states)))
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, name + ch))
    return None


def calico_devices(config, patterns=CALICO_DEVICES):
    """For Calico's device names and patterns::

        {"calico_devices": {pattern: True when every matching name is unmanaged},
         "managed_calico_devices": [pattern], "managed_examples": {pattern: a name NetworkManager manages},
         "undetermined": [pattern]}

    ``undetermined`` lists the managed patterns whose verdict hinges on specs about attributes a name
    does not tell (``*,except:mac:...``): the live device states decide those.
    """
    examples = {p: managed_example(config, p) for p in patterns}
    managed = [p for p in patterns if examples[p] is not None]
    return {
        "calico_devices": {p: examples[p] is None for p in patterns},
        "managed_calico_devices": managed,
        "managed_examples": {p: examples[p] for p in managed},
        "undetermined": [p for p in managed if managed_example(config, p, assume_unmanaged=True) is None],
    }


# ---------------------------------------------------------------------------------------------
# Enforcement helpers


def render_dropin(devices=CALICO_DEVICES, extra=()):
    """A drop-in that adds ``interface-name:<device>`` for each device (and the specs in ``extra``
    verbatim) to ``[keyfile] unmanaged-devices`` with ``+=``, keeping what other files set."""
    specs = ["interface-name:" + d for d in devices] + list(extra)
    for s in specs:
        if not s or any(c in s for c in "\n\r"):
            raise ValueError(f"invalid device spec {s!r}")
    return "[keyfile]\nunmanaged-devices+=" + ";".join(_escape_spec(s) for s in specs) + "\n"


def later_overrides(discovered, path, specs):
    """Files NetworkManager reads after ``path`` that would undo ``specs`` added there: a
    ``[keyfile] unmanaged-devices=`` (replaces the list) or a ``-=`` removing one of ``specs``.

    Returns ``[{"file", "op": "=" | "-=", "value": [spec]}]`` in parse order. ``path`` need not exist
    yet; its position is where NetworkManager would read it.
    """
    placed = with_dropin(discovered, path, "")
    order = [f["path"] for f in placed["files"]]
    found = []
    for f in placed["files"][order.index(path) + 1:]:
        if f["error"]:
            continue
        try:
            groups = parse_keyfile(f["text"])
        except KeyfileError:
            continue
        if f["kind"] != "main" and _enabled(groups, None, "") is False:
            continue
        entries = groups.get("keyfile", [])
        last = dict(entries)
        for key, _v in entries:
            value = split_specs(last[key])
            if key == "unmanaged-devices":
                found.append({"file": f["path"], "op": "=", "value": value})
            elif key == "unmanaged-devices-" and set(value) & set(specs):
                found.append({"file": f["path"], "op": "-=", "value": value})
    return found


# ---------------------------------------------------------------------------------------------
# Live state and the fact


NM_PID_FILE = "/run/NetworkManager/NetworkManager.pid"


_NAME_HAS_OWNER = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner")


def running(run, nmcli, busctl=None, dbus_send=None, *, proc="/proc", pid_file=NM_PID_FILE):
    """Whether NetworkManager runs, decided from what answers for it: ``nmcli -t -f RUNNING general``,
    else whether its name is owned on the system bus (busctl or dbus-send), else its pid file naming
    a live NetworkManager (written only when it daemonizes itself). Never from process names: a
    transient ``NetworkManager --version`` (the facts module runs one) is no daemon.
    ``run(argv) -> (rc, stdout, stderr)``."""
    if nmcli:
        rc, out, _err = run([nmcli, "-t", "-f", "RUNNING", "general"])
        return rc == 0 and out.strip() == "running"
    if busctl:
        rc, out, _err = run([busctl, "--system", "call", *_NAME_HAS_OWNER, "s", "org.freedesktop.NetworkManager"])
        return rc == 0 and out.strip() == "b true"
    if dbus_send:
        rc, out, _err = run([dbus_send, "--system", "--print-reply", f"--dest={_NAME_HAS_OWNER[0]}",
                             _NAME_HAS_OWNER[1], f"{_NAME_HAS_OWNER[2]}.{_NAME_HAS_OWNER[3]}",
                             "string:org.freedesktop.NetworkManager"])
        return rc == 0 and "boolean true" in out
    try:
        with open(pid_file) as fh:
            pid = int(fh.read().strip())
        with open(os.path.join(proc, str(pid), "comm")) as fh:
            return fh.read().strip() == "NetworkManager"
    except (OSError, ValueError):
        return False


def parse_nmcli_devices(text):
    """``nmcli -t -f DEVICE,TYPE,STATE device`` output -> ``[{"device", "type", "state"}]``.

    Terse mode escapes ``:`` and ``\\`` in values with a backslash.
    """
    devices = []
    for line in text.splitlines():
        fields, cur, chars = [], [], iter(line)
        for c in chars:
            if c == "\\":
                cur.append(next(chars, ""))
            elif c == ":":
                fields.append("".join(cur))
                cur = []
            else:
                cur.append(c)
        fields.append("".join(cur))
        if len(fields) == 3 and fields[0]:
            devices.append({"device": fields[0], "type": fields[1], "state": fields[2]})
    return devices


def network_manager_facts(discovered, installed, running, devices=None, nm_version=None):
    """The ``network_manager`` part of the ``calico_node`` fact (see docs/development.md)."""
    config = merge(discovered, nm_version=nm_version)
    facts = {
        "installed": installed,
        "running": running,
        "files": config["files"],
        "shadowed": config["shadowed"],
        "disabled": config["disabled"],
        "errors": config["errors"],
        "warnings": config["warnings"],
        "unmanaged_devices": config["unmanaged_devices"],
        "history": config["history"],
        "devices": devices,
    }
    facts.update(calico_devices(config))
    return facts
