# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: not a public API, may change at any time without notice.

"""Files a Calico node's identity and plumbing depend on: /var/lib/calico/nodename, the CNI config,
/etc/hosts, calico-node's environment, systemd-networkd .network files and the sysctls.

Parsers are pure; readers take the root (or /proc, /proc/sys) they read under, so tests use temp
trees. Nothing here writes.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import shlex
import tempfile

CNI_DIR = "/etc/cni/net.d"
# libcni's ConfFiles extensions; runtimes take the first valid file in name order.
CNI_EXTENSIONS = (".conf", ".conflist", ".json")

# The calico-node environment that decides addresses, routing and MTUs. An allow-list, so that
# credentials (datastore keys, tokens) can never be returned.
CALICO_ENV_KEYS = (
    "NODENAME", "IP", "IP6", "IP_AUTODETECTION_METHOD", "IP6_AUTODETECTION_METHOD", "CALICO_NETWORKING_BACKEND",
    "CALICO_IPV4POOL_CIDR", "CALICO_IPV6POOL_CIDR", "CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_VXLAN",
    "CALICO_ROUTER_ID", "AUTODETECT_POLL_INTERVAL",
    # host-local IPAM on the Nodes' pod CIDRs: how the datastore's blocks and tunnel address are read
    "USE_POD_CIDR",
)
# Felix reads FELIX_* case-insensitively.
FELIX_ENV_KEYS = (
    "FELIX_IPINIPMTU", "FELIX_VXLANMTU", "FELIX_VXLANMTUV6", "FELIX_WIREGUARDMTU", "FELIX_WIREGUARDMTUV6",
    "FELIX_MTUIFACEPATTERN", "FELIX_DEVICEROUTEPROTOCOL", "FELIX_INTERFACEPREFIX",
)

# systemd-networkd's search path, highest priority first (same file name: the first dir wins).
NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network", "/usr/local/lib/systemd/network",
                 "/usr/lib/systemd/network", "/lib/systemd/network")

# Calico's devices with sample names and the values their [Match] attributes can have (None: not
# known without the device). Kind is the netlink kind; Type is the udev DEVTYPE when the kernel sets
# one (vxlan, wireguard), else the ARPHRD name (veth: ether, ipip: tunnel).
CALICO_LINKS = (
    {"device": "cali*", "names": ("cali0a1b2c3d4e5", "calif9e8d7c6b5a"), "Kind": ("veth",), "Type": ("ether",),
     "Driver": ("veth",)},
    {"device": "tunl*", "names": ("tunl0",), "Kind": ("ipip",), "Type": ("tunnel", "ipip"), "Driver": None},
    {"device": "vxlan.calico", "names": ("vxlan.calico",), "Kind": ("vxlan",), "Type": ("vxlan", "ether"),
     "Driver": ("vxlan",)},
    {"device": "vxlan-v6.calico", "names": ("vxlan-v6.calico",), "Kind": ("vxlan",), "Type": ("vxlan", "ether"),
     "Driver": ("vxlan",)},
    {"device": "wireguard.cali", "names": ("wireguard.cali",), "Kind": ("wireguard",), "Type": ("wireguard", "none"),
     "Driver": None},
    {"device": "wg-v6.cali", "names": ("wg-v6.cali",), "Kind": ("wireguard",), "Type": ("wireguard", "none"),
     "Driver": None},
)


def host_path(root, path):
    """``path`` as seen from ``root`` (the node's file system mounted elsewhere, in tests)."""
    return os.path.join(root, path.lstrip("/"))


def read_text(path, limit=1 << 20):
    """A text file's first ``limit`` characters, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None


def staged(path, text, mode=0o644):
    """``text`` written to a new temporary file beside ``path``, for the module's atomic_move onto
    it: the name starts with a dot and ends in .tmp, so no daemon reading the directory (NetworkManager,
    networkd, udev) takes it for configuration meanwhile. The directory is created when missing."""
    directory = os.path.dirname(path)
    os.makedirs(directory, 0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8", "surrogateescape"))
        os.chmod(tmp, mode)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def config_entries(dirs, root="/"):
    """(directory as given, its real path, entry name) for the entries of every directory of
    ``dirs`` in order, names sorted; each real directory once (/lib is often a symlink to /usr/lib)."""
    seen = set()
    for d in dirs:
        real = os.path.realpath(host_path(root, d))
        if real in seen:
            continue
        seen.add(real)
        try:
            names = sorted(os.listdir(real))
        except OSError:
            continue
        for name in names:
            yield d, real, name


def masked(path):
    """An empty file or a symlink to /dev/null: systemd's way to mask a configuration file."""
    if os.path.islink(path) and os.readlink(path) == "/dev/null":
        return True
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Node name, CNI config, /etc/hosts


def read_nodename(root="/"):
    """The name calico-node registered with (``/var/lib/calico/nodename``), or None."""
    text = read_text(host_path(root, "/var/lib/calico/nodename"))
    if text is None:
        return None
    return text.strip() or None


def _int_or_value(value):
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def parse_cni_config(text):
    """The calico plugin of a CNI ``.conflist`` (``plugins[]``) or ``.conf`` (top-level ``type``).

    Returns ``{"type", "nodename", "ipam_type", "log_level", "mtu", "datastore_type"}``, or None when
    the config has no calico plugin. Raises ValueError for text that is not a CNI config.
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a CNI config is a JSON object")
    plugins = data["plugins"] if isinstance(data.get("plugins"), list) else [data]
    for plugin in plugins:
        if isinstance(plugin, dict) and plugin.get("type") == "calico":
            ipam = plugin.get("ipam") if isinstance(plugin.get("ipam"), dict) else {}
            return {
                "type": "calico",
                "nodename": plugin.get("nodename"),
                "ipam_type": ipam.get("type"),
                "log_level": plugin.get("log_level"),
                "mtu": _int_or_value(plugin.get("mtu")),
                "datastore_type": plugin.get("datastore_type"),
            }
    return None


def read_cni_config(root="/", conf_dir=CNI_DIR):
    """The first CNI config file (in name order) with a calico plugin, or None.

    ``active`` tells whether it is the first valid CNI config in the directory, the one container
    runtimes use; a file named ``*calico*`` that does not parse is returned with ``error``.
    """
    try:
        names = sorted(n for n in os.listdir(host_path(root, conf_dir)) if n.endswith(CNI_EXTENSIONS))
    except OSError:
        return None
    first_valid = None
    for name in names:
        path = os.path.join(conf_dir, name)
        text = read_text(host_path(root, path))
        if text is None:
            continue
        try:
            calico = parse_cni_config(text)
        except ValueError as exc:
            if "calico" in name:
                return {"file": path, "type": None, "nodename": None, "ipam_type": None, "log_level": None,
                        "mtu": None, "datastore_type": None, "active": False, "error": f"invalid CNI config: {exc}"}
            continue
        if first_valid is None:
            first_valid = path
        if calico:
            return dict(calico, file=path, active=first_valid == path, error=None)
    return None


def parse_hosts(text):
    """``/etc/hosts`` -> ``[(address, [names])]``; lines without a valid address are ignored."""
    entries = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
        except ValueError:
            continue
        entries.append((address, fields[1:]))
    return entries


def hosts_addresses(text, hostname):
    """Addresses ``/etc/hosts`` gives ``hostname`` (names compare case-insensitively, as glibc does)."""
    wanted = hostname.lower()
    return [address for address, names in parse_hosts(text) if wanted in (n.lower() for n in names)]


# ---------------------------------------------------------------------------------------------
# calico-node's environment


def parse_environ(data):
    """``/proc/<pid>/environ`` bytes -> dict (later duplicates win, as getenv does not guarantee)."""
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def calico_env(env):
    """Only the allow-listed keys (``CALICO_ENV_KEYS``, ``FELIX_ENV_KEYS`` in any case)."""
    kept = {k: v for k, v in env.items() if k in CALICO_ENV_KEYS}
    kept.update({k.upper(): v for k, v in env.items() if k.upper() in FELIX_ENV_KEYS})
    return kept


def calico_node_rank(argv):
    """0 for calico-node's Felix process, 1 for another calico-node process, None otherwise.

    ``calico-node -felix`` (v3.x), ``calico component felix`` (master), ``calico-felix`` (old).
    """
    if not argv:
        return None
    prog = os.path.basename(argv[0])
    if prog == "calico-node":
        return 0 if "-felix" in argv[1:] else 1
    if prog == "calico" and argv[1:2] == ["component"]:
        return 0 if argv[2:3] == ["felix"] else 1
    if prog == "calico-felix":
        return 0
    return None


def _net_namespace(proc, pid):
    try:
        return os.stat(os.path.join(proc, str(pid), "ns", "net")).st_ino
    except OSError:
        return None


def host_processes(proc="/proc"):
    """``(pid, argv)`` of the processes in this process's network namespace, lowest pid first.

    calico-node and NetworkManager run in the host's network namespace (hostNetwork), so a
    process in another one (a container, or another lab node sharing this PID namespace) is
    not this node's.
    """
    own = _net_namespace(proc, "self")
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return
    for pid in pids:
        if own is not None and _net_namespace(proc, pid) != own:
            continue
        try:
            with open(os.path.join(proc, str(pid), "cmdline"), "rb") as f:
                argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0")]
        except OSError:
            continue
        while argv and not argv[-1]:
            argv.pop()
        if argv:
            yield pid, argv


def read_calico_node(proc="/proc"):
    """``{"pid", "env", "error"}`` for calico-node's Felix process (else another calico-node
    process, lowest pid first), or None when none runs. ``env`` is filtered by ``calico_env``."""
    best = None
    for pid, argv in host_processes(proc):
        rank = calico_node_rank(argv)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, pid)
    if best is None:
        return None
    pid = best[1]
    try:
        with open(os.path.join(proc, str(pid), "environ"), "rb") as f:
            return {"pid": pid, "env": calico_env(parse_environ(f.read())), "error": None}
    except OSError as exc:
        return {"pid": pid, "env": None, "error": f"{type(exc).__name__}: {exc.strerror or exc}"}


def identity_facts(hostname, root="/", proc="/proc"):
    """The ``identity`` part of the ``calico_node`` fact."""
    hosts = read_text(host_path(root, "/etc/hosts"))
    addresses = hosts_addresses(hosts, hostname) if hosts is not None else []
    return {
        "nodename_file": read_nodename(root),
        "cni": read_cni_config(root),
        "hosts_resolves_hostname": bool(addresses),
        "hosts_addresses": addresses,
        "calico_node": read_calico_node(proc),
    }


# ---------------------------------------------------------------------------------------------
# systemd-networkd


def parse_unit_ini(text):
    """systemd's ini syntax -> ``{section: [(key, value)]}`` (comments ``#``/``;``, ``\\`` continuation)."""
    sections = {}
    current = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None and "=" in line:
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
    return sections


def _words(value):
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def parse_match(sections):
    """A systemd unit's ``[Match]`` -> ``{key: (inverted, [globs])}``: repeated keys extend the list,
    an empty assignment resets it, a leading ``!`` inverts it (.network and .link files alike)."""
    match = {}
    for key, value in sections.get("Match", []):
        if not value:
            match.pop(key, None)
            continue
        inverted, globs = match.get(key, (False, []))
        if value.startswith("!"):
            inverted = True
        match[key] = (inverted, globs + _words(value[1:] if value.startswith("!") else value))
    return match


def process_environ(pid, proc="/proc"):
    """A process's environment ({KEY: value}); {} when it cannot be read."""
    if not pid:
        return {}
    try:
        with open(os.path.join(proc, str(pid), "environ"), "rb") as f:
            return parse_environ(f.read())
    except OSError:
        return {}


def parse_network_file(text):
    """A ``.network`` file (with its drop-ins appended) -> ``{"match": {key: (inverted, [globs])},
    "unmanaged": bool}``."""
    sections = parse_unit_ini(text)
    match = parse_match(sections)
    unmanaged = False
    for key, value in sections.get("Link", []):
        if key == "Unmanaged":
            unmanaged = value.lower() in ("1", "yes", "true", "on")
    return {"match": match, "unmanaged": unmanaged}


def network_matches(match, link, name_key="Name"):
    """Whether a [Match] catches ``link`` (``{"name", "Kind", "Type", "Driver"}``, the last three
    tuples of possible values): True, False or None when it depends on something not known here
    (MACAddress=, Path=, Host=, ...). All keys must hold; a [Match] without conditions catches
    every link (networkd warns about it). ``name_key``: the key that names the device (a .link
    file's is OriginalName)."""
    results = []
    for key, (inverted, globs) in match.items():
        values = (link["name"],) if key == name_key else link.get(key) if key in ("Kind", "Type", "Driver") else None
        if values is None:
            results.append(None)
            continue
        hits = {any(fnmatch.fnmatchcase(v, g) for g in globs) != inverted for v in values}
        results.append(hits.pop() if len(hits) == 1 else None)
    if False in results:
        return False
    return None if None in results else True


def _describe_match(match):
    return " ".join(f"{k}={'!' if inv else ''}{' '.join(globs)}" for k, (inv, globs) in match.items())


def discover_networkd(root="/"):
    """``{"files": [{"path", "text"}] in networkd's order, "masked": [path], "overridden": [path]}``.

    Files sort by name across all directories; a name in a higher-priority directory replaces the
    others, and an empty file or a symlink to /dev/null masks the name. Drop-ins
    (``<name>.network.d/*.conf``) are appended to the text.
    """
    by_name, overridden, dropins = {}, [], {}
    for d, real, name in config_entries(NETWORKD_DIRS, root):
        path = os.path.join(d, name)
        if name.endswith(".network"):
            if name in by_name:
                overridden.append(path)
            else:
                by_name[name] = path
        elif name.endswith(".network.d") and os.path.isdir(os.path.join(real, name)):
            for conf in sorted(os.listdir(os.path.join(real, name))):
                if conf.endswith(".conf"):
                    dropins.setdefault(name[:-2], {}).setdefault(conf, os.path.join(path, conf))
    files, masked_paths = [], []
    for name in sorted(by_name):
        path = by_name[name]
        host = host_path(root, path)
        if masked(host):
            masked_paths.append(path)
            continue
        text = read_text(host) or ""
        for conf in sorted(dropins.get(name, {})):
            text += "\n" + (read_text(host_path(root, dropins[name][conf])) or "")
        files.append({"path": path, "text": text})
    return {"files": files, "masked": masked_paths, "overridden": overridden}


def networkd_calico_matches(files, links=CALICO_LINKS):
    """Which ``.network`` file networkd would apply to each Calico device (the first that matches).

    Returns ``[{"file", "match", "devices": [pattern], "possible": [pattern], "unmanaged": bool}]``:
    ``devices`` are caught for certain, ``possible`` depend on conditions not known from the name
    and kind. ``unmanaged`` (``[Link] Unmanaged=yes``) means the file protects those devices.
    """
    parsed = [(f["path"], parse_network_file(f["text"])) for f in files]
    found = {}
    for link in links:
        for name in link["names"]:
            sample = dict(link, name=name)
            for path, net in parsed:
                hit = network_matches(net["match"], sample)
                if hit is False:
                    continue
                entry = found.setdefault(path, {"file": path, "match": _describe_match(net["match"]),
                                                "devices": [], "possible": [], "unmanaged": net["unmanaged"]})
                bucket = entry["devices"] if hit else entry["possible"]
                if link["device"] not in bucket:
                    bucket.append(link["device"])
                if hit:
                    break
    order = [path for path, _net in parsed]
    return sorted(found.values(), key=lambda e: order.index(e["file"]))


def networkd_facts(root="/"):
    """The ``networkd`` part of the ``calico_node`` fact."""
    found = discover_networkd(root)
    return {
        "files": [f["path"] for f in found["files"]],
        "masked": found["masked"],
        "overridden": found["overridden"],
        "matching_calico": networkd_calico_matches(found["files"]),
    }


# ---------------------------------------------------------------------------------------------
# sysctls


def _sysctl(root, *parts):
    text = read_text(os.path.join(root, *parts))
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def read_sysctls(interfaces, root="/proc/sys"):
    """The ``sysctls`` part of the fact: ip_forward, rp_filter for all/default, and rp_filter,
    proxy_arp and forwarding of each interface given (None where the file does not exist)."""
    conf = ("net", "ipv4", "conf")
    result = {
        "net.ipv4.ip_forward": _sysctl(root, "net", "ipv4", "ip_forward"),
        "net.ipv4.conf.all.rp_filter": _sysctl(root, *conf, "all", "rp_filter"),
        "net.ipv4.conf.default.rp_filter": _sysctl(root, *conf, "default", "rp_filter"),
        "interfaces": {},
    }
    for name in interfaces:
        # a name is one path component: never let one walk out of /proc/sys/net/ipv4/conf
        if not name or "/" in name or name in (".", ".."):
            continue
        result["interfaces"][name] = {key: _sysctl(root, *conf, name, key)
                                      for key in ("rp_filter", "proxy_arp", "forwarding")}
    return result
