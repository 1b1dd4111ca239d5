# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Where the running kernel has each kernel module, looked up the way ``calicoctl node checksystem``
does: ``/sys/module``, ``/proc/modules`` (lsmod), ``modules.builtin``, ``modules.dep``, then the
kernel's ``.config`` (also ``/proc/config.gz``, the running kernel's own). Read-only, standard
library only, Python 3.8+.

A module's status is ``present`` (seen in the running kernel: loaded, or built in with a
``/sys/module`` entry), ``builtin``, ``loadable``, ``missing`` or ``unknown`` (no source could
tell), each with the evidence that decided it. ``scan(entries)`` is what
``calico_node_facts``' ``kernel_modules`` option returns; the parsers are pure (text in).
"""

from __future__ import annotations

import gzip
import os
import re
import zlib

STATUSES = ("present", "builtin", "loadable", "unknown", "missing")  # best first: an entry takes its best name
RANK = {status: i for i, status in enumerate(STATUSES)}
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
CONFIG_RE = re.compile(r"^CONFIG_[A-Z0-9_]+$")
# Where a kernel's .config may be, in the order the lookup tries them ({release} is uname -r).
CONFIG_FILES = ("/boot/config-{release}", "/usr/src/linux/.config", "/usr/src/linux-{release}/.config",
                "/usr/src/linux-headers-{release}/.config", "/lib/modules/{release}/build/.config")
PROC_CONFIG = "/proc/config.gz"
# modules.dep names compressed objects too.
_KO = re.compile(r"\.ko(\.gz|\.xz|\.zst|\.bz2)?$")


def sysfs_name(name):
    """The name the kernel uses for a module (``/sys/module``, ``/proc/modules``): ``-`` becomes ``_``."""
    return name.replace("-", "_")


def entry_errors(entries):
    """What is wrong with a list of ``{names, config, optional}`` entries (empty: nothing): every
    entry needs ``names`` (module names of letters, digits, ``_`` and ``-``) and ``config`` (its
    kernel option, ``CONFIG_...``)."""
    errors = []
    if not isinstance(entries, (list, tuple)):
        return [f"expected a list of entries, got {type(entries).__name__}"]
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.append(f"entry {i + 1} is not a dict: {entry!r}")
            continue
        names = entry.get("names")
        if not isinstance(names, (list, tuple)) or not names:
            errors.append(f"entry {i + 1} has no names (a list of module names)")
        else:
            errors.extend(f"entry {i + 1}: module name {n!r} is not letters, digits, _ and -"
                          for n in names if not isinstance(n, str) or not NAME_RE.match(n))
        config = entry.get("config")
        if not isinstance(config, str) or not CONFIG_RE.match(config):
            errors.append(f"entry {i + 1}: config {config!r} is not a kernel option (CONFIG_ and capitals, digits, _)")
    return errors


def parse_proc_modules(text):
    """Names of the loaded modules (``/proc/modules``: the first field of each line)."""
    return {line.split(" ", 1)[0] for line in text.splitlines() if line.strip()}


def _object_name(path):
    """``kernel/net/ipv4/ip_tables.ko.zst`` -> ``ip_tables``; None without a directory or ``.ko``."""
    if "/" not in path:
        return None
    base = path.rsplit("/", 1)[1]
    match = _KO.search(base)
    return sysfs_name(base[:match.start()]) if match else None


def parse_modules_builtin(text):
    """Names (``_`` form) of the modules built into the kernel (``modules.builtin``: ``dir/name.ko``
    per line)."""
    out = set()
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith(".ko"):
            name = _object_name(line)
            if name:
                out.add(name)
    return out


def parse_modules_dep(text):
    """Names (``_`` form) of the modules the kernel can load (``modules.dep``: ``dir/name.ko[.xz]:
    deps...`` per line)."""
    out = set()
    for line in text.splitlines():
        if ":" not in line:
            continue
        name = _object_name(line.split(":", 1)[0].strip())
        if name:
            out.add(name)
    return out


def parse_kernel_config(text):
    """Option -> its first value in a kernel ``.config`` (``y``, ``m``, a string...); ``# CONFIG_X is
    not set`` gives ``n``. Only the first line about an option counts."""
    out = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# ") and line.endswith(" is not set"):
            option = line[2:-len(" is not set")]
            out.setdefault(option, "n")
        elif line.startswith("CONFIG_") and "=" in line:
            option, value = line.split("=", 1)
            out.setdefault(option, value)
    return out


def module_status(name, option, sources):
    """(status, evidence) of one module name whose kernel option is ``option``, from what
    ``read_sources`` found (the lookup order of ``calicoctl node checksystem``)."""
    sysname = sysfs_name(name)
    if sysname in sources["sys_module"]:
        return "present", f"/sys/module/{sysname}"
    if sources["modules_supported"] and sysname in sources["loaded"]:
        return "present", "/proc/modules"
    if sources["builtin"] is not None and sysname in sources["builtin"]:
        return "builtin", sources["builtin_path"]
    if sources["dep"] is not None and sysname in sources["dep"]:
        return "loadable", sources["dep_path"]
    if sources["config"] is not None:
        value = sources["config"].get(option)
        if value == "y":
            return "builtin", f"{sources['config_path']}: {option}=y"
        if value == "m":
            return "loadable", f"{sources['config_path']}: {option}=m"
        return "missing", f"{sources['config_path']}: {option} not set"
    if sources["dep"] is not None:
        return "missing", f"not in {sources['dep_path']} or modules.builtin"
    return "unknown", "no modules.dep, modules.builtin or kernel config to look it up in"


def _read(root, path, opener=open):
    try:
        with opener(os.path.join(root, path.lstrip("/")), "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (OSError, EOFError, ValueError, zlib.error):   # a torn or corrupt /proc/config.gz
        return None


def read_sources(root="/", release=None):
    """Everything the lookup reads, under ``root`` (``/`` on a node, a fixture tree in tests):
    ``{release, modules_supported, sources: [paths], sys_module, loaded, builtin, dep, config, ...}``."""
    release = release or os.uname().release
    moddir = f"/lib/modules/{release}"
    supported = os.path.exists(os.path.join(root, "proc/modules"))
    sys_module = os.path.join(root, "sys/module")
    out = {
        "release": release, "modules_supported": supported,
        "sys_module": set(os.listdir(sys_module)) if os.path.isdir(sys_module) else set(),
        "loaded": set(), "builtin": None, "builtin_path": f"{moddir}/modules.builtin",
        "dep": None, "dep_path": f"{moddir}/modules.dep", "config": None, "config_path": None,
    }
    if supported:
        out["loaded"] = parse_proc_modules(_read(root, "/proc/modules") or "")
    text = _read(root, out["builtin_path"])
    if text is not None:
        out["builtin"] = parse_modules_builtin(text)
    text = _read(root, out["dep_path"])
    if text is not None:
        out["dep"] = parse_modules_dep(text)
    for candidate in CONFIG_FILES:
        path = candidate.format(release=release)
        if os.path.isfile(os.path.join(root, path.lstrip("/"))):
            text = _read(root, path)
            if text is not None:
                out["config"], out["config_path"] = parse_kernel_config(text), path
                break
    if out["config"] is None:
        text = _read(root, PROC_CONFIG, opener=gzip.open)
        if text is not None:
            out["config"], out["config_path"] = parse_kernel_config(text), PROC_CONFIG
    out["sources"] = ((["/sys/module"] if os.path.isdir(sys_module) else [])
                      + (["/proc/modules"] if supported else [])
                      + ([out["builtin_path"]] if out["builtin"] is not None else [])
                      + ([out["dep_path"]] if out["dep"] is not None else [])
                      + ([out["config_path"]] if out["config"] is not None else []))
    return out


def judge(entries, sources):
    """The fact for ``entries`` over what ``read_sources`` found: ``{release, modules_supported,
    sources, modules: {name: {status, evidence}}, entries: [{names, config, optional, status, name,
    evidence}]}``. An entry takes the best status of its names (present, builtin, loadable,
    unknown, missing) and names the first module that has it (the one to load)."""
    modules, judged = {}, []
    for entry in entries:
        found = []
        for name in entry["names"]:
            if name not in modules:
                status, evidence = module_status(name, entry["config"], sources)
                modules[name] = {"status": status, "evidence": evidence}
            found.append(modules[name])
        best = min(range(len(found)), key=lambda i: RANK[found[i]["status"]])
        judged.append({"names": list(entry["names"]), "config": entry["config"],
                       "optional": bool(entry.get("optional")), "status": found[best]["status"],
                       "name": entry["names"][best], "evidence": found[best]["evidence"]})
    return {"release": sources["release"], "modules_supported": sources["modules_supported"],
            "sources": sources["sources"], "modules": modules, "entries": judged}


def scan(entries, root="/", release=None):
    """Look every entry's modules up in the running kernel (``root`` for tests). Raises ValueError
    naming the bad entries before anything is read."""
    errors = entry_errors(entries)
    if errors:
        raise ValueError("; ".join(errors))
    return judge(entries, read_sources(root, release))
