# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Host configuration that breaks Calico nodes without touching Calico's own files: the machine's
identity, host network managers besides NetworkManager's device list (systemd-networkd's
``networkd.conf``, udev ``.link`` files, netplan, nm-cloud-setup), the iptables backends, and the
CNI directory, binaries and kubeconfig token.

Parsers are pure; readers take the root (and /proc) they read under, so tests use temp trees.
Nothing here writes. Secrets never leave this module: the machine id is returned only as a keyed
hash (machine-id(5): "should be considered confidential"), and of the CNI kubeconfig's token only
the JWT payload's times and subject are decoded, never the token itself.

Cost on a healthy node: file reads, one ``nft list tables`` and, only when the kernel holds
iptables tables of that backend, one ``iptables-legacy-save`` / ``iptables-nft-save`` (each
bounded in time and in what is kept: counts, never rules).
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import ipaddress
import json
import os
import re
import subprocess
import time

from ansible_collections.netdoctor.calico.plugins.module_utils import _node_files

# ---------------------------------------------------------------------------------------------
# Small helpers


_host = _node_files.host_path
_read = _node_files.read_text


def _bool(value):
    """systemd's boolean (parse_boolean): None when it is none of its spellings."""
    v = (value or "").strip().lower()
    if v in ("1", "yes", "y", "true", "t", "on"):
        return True
    if v in ("0", "no", "n", "false", "f", "off"):
        return False
    return None


# ---------------------------------------------------------------------------------------------
# Identity: machine-id (keyed hash only)

MACHINE_ID = "/etc/machine-id"
# The key of the hash: equal machine ids give equal hashes, and the id cannot be read back.
_MACHINE_ID_APP = b"netdoctor.calico machine-id v1"


def machine_id_hash(text):
    """A keyed SHA-256 of a machine id (32 hex digits), as sd_id128_get_machine_app_specific()
    advises for anything that leaves the machine; None for an empty or uninitialized id."""
    value = (text or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        return None
    return hmac.new(bytes.fromhex(value), _MACHINE_ID_APP, hashlib.sha256).hexdigest()[:32]


def identity_facts(root="/"):
    """``{"machine_id_hash", "machine_id_state"}``: state is ok, missing, empty or invalid."""
    text = _read(_host(root, MACHINE_ID))
    if text is None:
        return {"machine_id_hash": None, "machine_id_state": "missing"}
    digest = machine_id_hash(text)
    state = "ok" if digest else ("empty" if not text.strip() or text.strip() == "uninitialized" else "invalid")
    return {"machine_id_hash": digest, "machine_id_state": state}


# ---------------------------------------------------------------------------------------------
# systemd: unit state, networkd.conf, .link files, netplan

SYSTEMD_UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
                     "/usr/lib/systemd/system", "/lib/systemd/system")


def unit_state(root, unit, wanted_by):
    """``{"installed", "enabled", "masked", "links"}`` from the unit directories alone (what
    ``systemctl is-enabled`` reads): enabled = a symlink in ``<target>.wants`` of ``/etc`` or
    ``/run`` for one of ``wanted_by``; masked = the unit in /etc or /run is a link to /dev/null."""
    masked = installed = False
    for d in SYSTEMD_UNIT_DIRS:
        path = _host(root, f"{d}/{unit}")
        if os.path.islink(path) and os.readlink(path) == "/dev/null":
            if d.startswith(("/etc", "/run")):
                masked = True
            continue
        if os.path.lexists(path):
            installed = True
    links = []
    for d in ("/etc/systemd/system", "/run/systemd/system"):
        for target in wanted_by:
            path = f"{d}/{target}.wants/{unit}"
            if os.path.lexists(_host(root, path)):
                links.append(path)
    return {"installed": installed or bool(links), "enabled": bool(links) and not masked, "masked": masked,
            "links": links}


NETWORKD_CONF = "/etc/systemd/networkd.conf"
NETWORKD_CONF_VENDOR = ("/usr/lib/systemd/networkd.conf", "/usr/local/lib/systemd/networkd.conf")
NETWORKD_CONF_DROPIN_DIRS = ("/etc/systemd/networkd.conf.d", "/run/systemd/networkd.conf.d",
                             "/usr/local/lib/systemd/networkd.conf.d", "/usr/lib/systemd/networkd.conf.d")
NETWORKD_FOREIGN_KEYS = ("ManageForeignRoutes", "ManageForeignRoutingPolicyRules")


def networkd_conf_files(root="/"):
    """networkd.conf then its drop-ins in the order systemd reads them (networkd.conf(5)): the main
    file (/etc first, else the vendor copy), then every ``*.conf`` of the ``networkd.conf.d``
    directories sorted by file name across them, a name in /etc hiding it in /run and /usr."""
    files = []
    for main in (NETWORKD_CONF, *NETWORKD_CONF_VENDOR):
        if os.path.isfile(_host(root, main)):
            files.append(main)
            break
    by_name = {}
    for d in NETWORKD_CONF_DROPIN_DIRS:
        try:
            names = os.listdir(_host(root, d))
        except OSError:
            continue
        for name in names:
            if name.endswith(".conf"):
                by_name.setdefault(name, f"{d}/{name}")
    for name in sorted(by_name):
        path = by_name[name]
        host = _host(root, path)
        if os.path.islink(host) and os.readlink(host) == "/dev/null":
            continue
        files.append(path)
    return files


def networkd_foreign_settings(texts):
    """``[(path, text)]`` in reading order -> ``{key: {"value": bool, "file": path | None}}`` for
    ManageForeignRoutes and ManageForeignRoutingPolicyRules (default yes: the last file that
    sets the key in ``[Network]`` wins)."""
    out = {key: {"value": True, "file": None} for key in NETWORKD_FOREIGN_KEYS}
    for path, text in texts:
        for key, value in _node_files.parse_unit_ini(text).get("Network", []):
            if key in out:
                parsed = _bool(value)
                if value == "":
                    out[key] = {"value": True, "file": path}
                elif parsed is not None:
                    out[key] = {"value": parsed, "file": path}
    return out


def _networkd_process(proc):
    for pid, argv in _node_files.host_processes(proc):
        if os.path.basename(argv[0]) == "systemd-networkd":
            return pid
    return None


def networkd_facts(root="/", proc="/proc"):
    """``{"running", "pid", "enabled", "files", "manage_foreign_routes", "manage_foreign_rules",
    "set_in"}``: whether networkd runs (a process in this network namespace) or is enabled, and
    whether it deletes routes and rules it did not configure."""
    files = networkd_conf_files(root)
    settings = networkd_foreign_settings([(p, _read(_host(root, p)) or "") for p in files])
    pid = _networkd_process(proc)
    unit = unit_state(root, "systemd-networkd.service", ("multi-user.target", "network-online.target"))
    socket = unit_state(root, "systemd-networkd.socket", ("sockets.target",))
    return {
        "running": pid is not None, "pid": pid, "enabled": unit["enabled"] or socket["enabled"],
        "files": files,
        "manage_foreign_routes": settings["ManageForeignRoutes"]["value"],
        "manage_foreign_rules": settings["ManageForeignRoutingPolicyRules"]["value"],
        "set_in": {k: v["file"] for k, v in settings.items()},
    }


LINK_DIRS = _node_files.NETWORKD_DIRS  # udev reads .link files from the same directories
_VENDOR_DIRS = ("/usr/lib/", "/lib/", "/usr/local/lib/")


def discover_link_files(root="/"):
    """``[{"path", "text"}]`` of the effective ``.link`` files in udev's order (file name across
    the directories; the first directory holding a name wins; empty or /dev/null masks it)."""
    by_name = {}
    for d, _real, name in _node_files.config_entries(LINK_DIRS, root):
        if name.endswith(".link"):
            by_name.setdefault(name, f"{d}/{name}")
    out = []
    for name in sorted(by_name):
        path = by_name[name]
        host = _host(root, path)
        if (os.path.islink(host) and os.readlink(host) == "/dev/null") or not (_read(host) or "").strip():
            continue
        out.append({"path": path, "text": _read(host) or ""})
    return out


def parse_link_file(text):
    """A ``.link`` file -> ``{"match": {key: (inverted, [globs])}, "mac_address_policy", "mac_address"}``."""
    sections = _node_files.parse_unit_ini(text)
    match = _node_files.parse_match(sections)
    policy = mac = None
    for key, value in sections.get("Link", []):
        if key == "MACAddressPolicy":
            policy = value.strip() or "none"
        elif key == "MACAddress":
            mac = value.strip().lower() or None
    return {"match": match, "mac_address_policy": policy, "mac_address": mac}


def link_matches(match, sample):
    """Whether a .link [Match] catches a Calico device (``_node_files.CALICO_LINKS`` sample with
    ``name``): True, False, or None when it depends on keys not known from the name and kind."""
    return _node_files.network_matches(match, sample, name_key="OriginalName")


def link_calico_matches(files, links=_node_files.CALICO_LINKS):
    """For each Calico device, the first .link file udev applies to it (it applies only the first
    that matches): ``[{"device", "file", "certain", "match", "mac_address_policy", "mac_address",
    "vendor", "catch_all"}]``; ``vendor``: a file of the distribution (/usr/lib, /lib),
    ``catch_all``: its [Match] is only ``OriginalName=*`` (99-default.link's)."""
    parsed = [(f["path"], parse_link_file(f["text"])) for f in files]
    out = []
    for link in links:
        sample = dict(link, name=link["names"][0])
        for path, cfg in parsed:
            hit = link_matches(cfg["match"], sample)
            if hit is False:
                continue
            match = cfg["match"]
            out.append({"device": link["device"], "file": path, "certain": bool(hit),
                        "match": " ".join(f"{k}={'!' if inv else ''}{' '.join(g)}" for k, (inv, g) in match.items()),
                        "mac_address_policy": cfg["mac_address_policy"], "mac_address": cfg["mac_address"],
                        "vendor": path.startswith(_VENDOR_DIRS),
                        "catch_all": set(match) == {"OriginalName"} and match["OriginalName"] == (False, ["*"])})
            if hit:
                break
    return out


NETPLAN_DIRS = ("/etc/netplan", "/run/netplan", "/lib/netplan", "/usr/lib/netplan")


def netplan_facts(root="/"):
    """``{"files": [yaml path], "generated": [path]}``: netplan's YAML and the networkd files it
    generated (``/run/systemd/network/10-netplan-*``), which are rewritten by every
    ``netplan generate|apply``: fixes belong in the YAML."""
    files = []
    for d in NETPLAN_DIRS:
        files += sorted(glob.glob(os.path.join(_host(root, d), "*.yaml")))
    generated = sorted(glob.glob(os.path.join(_host(root, "/run/systemd/network"), "10-netplan-*")))
    strip = len(_host(root, "/")) - 1
    return {"files": [p[strip:] for p in files], "generated": [p[strip:] for p in generated]}


# ---------------------------------------------------------------------------------------------
# nm-cloud-setup (NetworkManager on clouds; src/nm-cloud-setup/main.c)

NM_CLOUD_SETUP_PROVIDERS = ("NM_CLOUD_SETUP_EC2", "NM_CLOUD_SETUP_GCP", "NM_CLOUD_SETUP_AZURE",
                            "NM_CLOUD_SETUP_ALIYUN", "NM_CLOUD_SETUP_OCI")
# Per interface index i: 30200+i "from <addr> lookup 30200+i" (its subnet), 30350 "lookup main
# suppress_prefixlength 0", 30400+i "from <addr> lookup 30400+i" (a default route via the cloud gateway).
CLOUD_RULE_RANGES = ((30200, 30350), (30400, 30550))
CLOUD_SUPPRESS_PRIORITY = 30350
RT_TABLE_MAIN = 254


def cloud_setup_rules(rules):
    """The IPv4 policy rules nm-cloud-setup installs, from the snapshot's ``rules``."""
    out = []
    for r in rules or ():
        prio, table = r.get("priority"), r.get("table")
        if r.get("family") != 4 or prio is None:
            continue
        if prio == CLOUD_SUPPRESS_PRIORITY and table == RT_TABLE_MAIN:
            out.append({"priority": prio, "src": r.get("src"), "table": table, "kind": "suppress_main"})
        elif any(lo <= prio < hi for lo, hi in CLOUD_RULE_RANGES) and r.get("src") and table == prio:
            out.append({"priority": prio, "src": r.get("src"), "table": table,
                        "kind": "subnet" if prio < CLOUD_SUPPRESS_PRIORITY else "default_route"})
    return out


def _unit_environment(root, unit):
    env = {}
    texts = [_read(_host(root, f"{d}/{unit}")) or "" for d in reversed(SYSTEMD_UNIT_DIRS)]
    for d in SYSTEMD_UNIT_DIRS[::-1]:
        texts += [_read(p) or "" for p in sorted(glob.glob(os.path.join(_host(root, f"{d}/{unit}.d"), "*.conf")))]
    for text in texts:
        for key, value in _node_files.parse_unit_ini(text).get("Service", []):
            if key == "Environment":
                for word in _node_files._words(value):
                    name, sep, val = word.partition("=")
                    if sep:
                        env[name] = val
    return env


def nm_cloud_setup_facts(rules, root="/"):
    """``{"installed", "enabled", "masked", "links", "providers", "rules"}``: the service and its
    timer, the cloud providers it was opted in for (it does nothing without one), and its rules."""
    service = unit_state(root, "nm-cloud-setup.service", ("NetworkManager.service",))
    timer = unit_state(root, "nm-cloud-setup.timer", ("timers.target",))
    env = _unit_environment(root, "nm-cloud-setup.service")
    providers = sorted(k for k in NM_CLOUD_SETUP_PROVIDERS if _bool(env.get(k)))
    return {"installed": service["installed"] or timer["installed"],
            "enabled": service["enabled"] or timer["enabled"],
            "masked": service["masked"], "links": service["links"] + timer["links"],
            "providers": providers, "rules": cloud_setup_rules(rules)}


# ---------------------------------------------------------------------------------------------
# iptables backends

SAVE_TIMEOUT = 10.0          # seconds for one iptables-*-save
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")
KUBE_HINT_CHAINS = ("KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY")
_BUILTIN_CHAINS = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def _owner(chain):
    if chain.startswith("cali-"):
        return "calico"
    if chain.startswith("KUBE-"):
        return "kube"
    return "other"


def parse_iptables_save(text):
    """``iptables-save`` text -> counts only: ``{"tables": [name], "chains": {owner: n},
    "rules": {owner: n}, "kube_hint": bool}``. Owner: calico (``cali-`` chains and jumps to them
    from built-in chains), kube (``KUBE-``), other (everything else in any chain)."""
    out = {"tables": [], "chains": {"calico": 0, "kube": 0, "other": 0},
           "rules": {"calico": 0, "kube": 0, "other": 0}, "kube_hint": False}
    for line in (text or "").splitlines():
        if line.startswith("*"):
            out["tables"].append(line[1:].strip())
        elif line.startswith(":"):
            chain = line[1:].split(" ", 1)[0]
            if chain in KUBE_HINT_CHAINS:
                out["kube_hint"] = True
            if chain not in _BUILTIN_CHAINS:
                out["chains"][_owner(chain)] += 1
        elif line.startswith("-A "):
            parts = line.split()
            chain = parts[1] if len(parts) > 1 else ""
            owner = _owner(chain)
            if chain in _BUILTIN_CHAINS:
                target = parts[parts.index("-j") + 1] if "-j" in parts[:-1] else ""
                owner = _owner(target) if target.startswith(("cali-", "KUBE-")) else "other"
            out["rules"][owner] += 1
    return out


def parse_nft_tables(text):
    """``nft list tables`` -> ``["ip filter", "ip calico", ...]``."""
    return [line.split(None, 1)[1].strip() for line in (text or "").splitlines()
            if line.startswith("table ") and len(line.split()) >= 3]


def _run(argv, timeout=SAVE_TIMEOUT):
    """(rc, stdout, stderr) of a command with a deadline; rc None when it could not run."""
    try:
        res = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, "", f"{type(exc).__name__}: {exc}"
    return res.returncode, res.stdout.decode("utf-8", "replace"), res.stderr.decode("utf-8", "replace")


def _which(name, which=None):
    if which is not None:
        return which(name)
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


def _save(binary, run):
    rc, out, err = run([binary])
    entry = {"binary": binary, "rc": rc, "error": None}
    if rc != 0:
        entry["error"] = (err or out).strip()[:300] or f"exit {rc}"
    entry.update(parse_iptables_save(out))
    # iptables-nft-save on a table holding rules iptables cannot express (a neighbour's native nft):
    # "table `filter' is incompatible, use 'nft' tool." - Felix's own iptables-nft-save fails the same way.
    entry["incompatible"] = sorted(set(re.findall(r"table [`']?(\w+)'? is incompatible", err or "")))
    return entry


def iptables_facts(proc_net="/proc/net", run=None, which=None):
    """``{"nft_tables", "legacy", "nft", "checked"}``: which dataplanes hold what (counts, never
    rules). The legacy backend is read only when the kernel already holds legacy tables in this
    network namespace (``ip_tables_names``; reading them otherwise would load its modules, as
    Felix's DetectBackend avoids), the nft copies only when ``nft list tables`` shows one."""
    run = run or _run
    out = {"nft_tables": None, "legacy": None, "nft": None, "errors": []}
    nft = _which("nft", which)
    if nft:
        rc, text, err = run([nft, "list", "tables"])
        if rc == 0:
            out["nft_tables"] = parse_nft_tables(text)
        else:
            out["errors"].append(f"nft list tables: {(err or text).strip()[:200]}")
    legacy_tables = [t for t in (_read(os.path.join(proc_net, "ip_tables_names")) or "").split() if t]
    legacy = _which("iptables-legacy-save", which)
    if legacy_tables and legacy:
        out["legacy"] = _save(legacy, run)
    elif legacy_tables:
        out["errors"].append(f"legacy tables {', '.join(legacy_tables)} present, iptables-legacy-save not found")
    shared = [t for t in out["nft_tables"] or () if t in (f"ip {name}" for name in IPTABLES_TABLES)]
    nft_save = _which("iptables-nft-save", which)
    if shared and nft_save:
        out["nft"] = _save(nft_save, run)
    return out


FELIX_DATAPLANE_ENV = ("FELIX_IPTABLESBACKEND", "FELIX_NFTABLESMODE", "FELIX_BPFENABLED")


def felix_dataplane_env(pid, proc="/proc"):
    """calico-node's FELIX_IPTABLESBACKEND / FELIX_NFTABLESMODE / FELIX_BPFENABLED (Felix reads its
    env case-insensitively), upper-cased keys; {} when unreadable."""
    env = _node_files.process_environ(pid, proc)
    return {k.upper(): v for k, v in env.items() if k.upper() in FELIX_DATAPLANE_ENV}


# ---------------------------------------------------------------------------------------------
# CNI: the config directory, the binaries, the kubeconfig token

CNI_BIN_DEFAULT = "/opt/cni/bin"
# Plugin types of other CNIs whose configs are left behind by an uninstall (or a second install).
FOREIGN_CNI = {
    "flannel": "flannel", "weave-net": "weave", "weave-plugin": "weave", "cilium-cni": "cilium",
    "kube-ovn": "kube-ovn", "antrea": "antrea", "aws-cni": "aws-vpc-cni", "ovn-k8s-cni-overlay": "ovn-kubernetes",
    "azure-vnet": "azure-cni", "kube-router": "kube-router", "multus": "multus", "multus-shim": "multus",
    "bridge": "bridge", "ptp": "ptp", "macvlan": "macvlan", "ipvlan": "ipvlan",
}
META_CNI = ("multus", "multus-shim")  # they delegate to the others: first is fine


def parse_cni_file(text):
    """A CNI config file -> ``{"name", "types": [type], "calico": {plugin} | None}``; raises ValueError."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a CNI config is a JSON object")
    plugins = data["plugins"] if isinstance(data.get("plugins"), list) else [data]
    types = [p.get("type") for p in plugins if isinstance(p, dict) and isinstance(p.get("type"), str)]
    if not types:
        raise ValueError("no plugin type")
    calico = next((p for p in plugins if isinstance(p, dict) and p.get("type") == "calico"), None)
    return {"name": data.get("name"), "types": types, "calico": calico}


def cni_dir_facts(root="/", conf_dir=_node_files.CNI_DIR):
    """Every config file of the CNI directory in libcni's order (name order, ``.conf``,
    ``.conflist``, ``.json``): ``{"dir", "files": [{"file", "valid", "error", "name", "types"}],
    "active": file | None, "calico": file | None, "calico_plugin": {kubeconfig, ipam_type, types}}``.
    The runtime uses the first valid file (``active``)."""
    out = {"dir": conf_dir, "files": [], "active": None, "calico": None, "calico_plugin": None}
    try:
        names = sorted(n for n in os.listdir(_host(root, conf_dir)) if n.endswith(_node_files.CNI_EXTENSIONS))
    except OSError:
        return out
    for name in names[:50]:
        path = f"{conf_dir.rstrip('/')}/{name}"
        entry = {"file": path, "valid": False, "error": None, "name": None, "types": []}
        try:
            parsed = parse_cni_file(_read(_host(root, path)) or "")
        except ValueError as exc:
            entry["error"] = str(exc)[:200]
        else:
            entry.update(valid=True, name=parsed["name"], types=parsed["types"])
            if out["active"] is None:
                out["active"] = path
            if parsed["calico"] is not None and out["calico"] is None:
                plugin = parsed["calico"]
                ipam = plugin.get("ipam") if isinstance(plugin.get("ipam"), dict) else {}
                kube = plugin.get("kubernetes") if isinstance(plugin.get("kubernetes"), dict) else {}
                out["calico"] = path
                out["calico_plugin"] = {"types": parsed["types"], "ipam_type": ipam.get("type"),
                                        "ipam_ranges": _ipam_ranges(ipam),
                                        "datastore_type": plugin.get("datastore_type"),
                                        "kubeconfig": kube.get("kubeconfig")}
        out["files"].append(entry)
    return out


def _ipam_ranges(ipam):
    """host-local IPAM's subnets (``subnet``, ``ranges``) and calico-ipam's ``ipv4_pools`` CIDRs."""
    found = []
    if isinstance(ipam.get("subnet"), str):
        found.append(ipam["subnet"])
    for group in ipam.get("ranges") or ():
        for r in group if isinstance(group, list) else ():
            if isinstance(r, dict) and isinstance(r.get("subnet"), str):
                found.append(r["subnet"])
    for pool in ipam.get("ipv4_pools") or ():
        if isinstance(pool, str) and "/" in pool:
            found.append(pool)
    return found


def cni_bin_dirs(root="/"):
    """``(dirs, source)``: the runtime's CNI binary directories - containerd's ``bin_dir`` /
    ``bin_dirs`` (/etc/containerd/config.toml), CRI-O's ``plugin_dirs`` (/etc/crio/crio.conf and
    crio.conf.d), else the default /opt/cni/bin; source is the file that said so, "default", or
    None when no runtime config exists and the default directory is absent (nothing to judge)."""
    containerd = _read(_host(root, "/etc/containerd/config.toml"))
    if containerd is not None:
        dirs = re.findall(r'^\s*bin_dir\s*=\s*"([^"]+)"', containerd, re.MULTILINE)
        for group in re.findall(r"^\s*bin_dirs\s*=\s*\[([^\]]*)\]", containerd, re.MULTILINE):
            dirs += re.findall(r'"([^"]+)"', group)
        if dirs:
            return dirs, "/etc/containerd/config.toml"
        return [CNI_BIN_DEFAULT], "/etc/containerd/config.toml"
    crio = [p for p in ["/etc/crio/crio.conf", *sorted(
        "/etc/crio/crio.conf.d/" + os.path.basename(f)
        for f in glob.glob(os.path.join(_host(root, "/etc/crio/crio.conf.d"), "*.conf")))]
        if os.path.isfile(_host(root, p))]
    if crio:
        dirs, source = [], crio[0]
        for p in crio:
            for group in re.findall(r"^\s*plugin_dirs\s*=\s*\[([^\]]*)\]", _read(_host(root, p)) or "", re.MULTILINE):
                dirs, source = re.findall(r'"([^"]+)"', group), p
        return dirs or [CNI_BIN_DEFAULT], source
    if os.path.isdir(_host(root, CNI_BIN_DEFAULT)):
        return [CNI_BIN_DEFAULT], "default"
    return [CNI_BIN_DEFAULT], None


def cni_binaries(root, needed, dirs):
    """``{type: dir | None}``: the first directory holding an executable for each plugin type."""
    out = {}
    for name in needed:
        out[name] = next((d for d in dirs if os.access(_host(root, f"{d}/{name}"), os.X_OK)), None)
    return out


def _b64url(text):
    text += "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text.encode("ascii"))


def jwt_claims(token):
    """The times and subject of a JWT's payload (``exp``, ``iat``, ``nbf``, ``sub``, ``iss``); None
    when the token is not a JWT. The signature is not checked and nothing else is kept."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(_b64url(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    claims = {k: payload.get(k) for k in ("exp", "iat", "nbf") if isinstance(payload.get(k), (int, float))}
    claims.update({k: payload.get(k) for k in ("sub", "iss") if isinstance(payload.get(k), str)})
    return claims


_TOKEN_LINE = re.compile(r"^\s*token:\s*['\"]?([^'\"\s#]+)", re.MULTILINE)


def kubeconfig_token_facts(text, now):
    """What the CNI kubeconfig's ``token`` says about its life, never the token: ``{"token":
    "present" | "absent", "jwt": bool, "exp", "iat", "sub", "expires_in"}`` (seconds; negative:
    expired). A ``tokenFile`` / client certificate instead of a token is ``token: absent``."""
    match = _TOKEN_LINE.search(text or "")
    if not match:
        return {"token": "absent", "jwt": False, "exp": None, "iat": None, "sub": None, "expires_in": None}
    claims = jwt_claims(match.group(1)) or {}
    exp = claims.get("exp")
    return {"token": "present", "jwt": bool(claims), "exp": exp, "iat": claims.get("iat"), "sub": claims.get("sub"),
            "expires_in": int(exp - now) if exp is not None else None}


def cni_facts(root="/", now=None):
    """The ``cni`` part of ``host_config``: the directory, the binaries the active Calico config
    needs, and the kubeconfig token's life."""
    now = time.time() if now is None else now
    conf = cni_dir_facts(root)
    out = {**conf, "bin_dirs": None, "bin_source": None, "binaries": None, "kubeconfig": None}
    plugin = conf["calico_plugin"]
    if plugin is None:
        return out
    dirs, source = cni_bin_dirs(root)
    out.update(bin_dirs=dirs, bin_source=source)
    if source is not None:
        needed = list(dict.fromkeys([*plugin["types"], *([plugin["ipam_type"]] if plugin["ipam_type"] else [])]))
        out["binaries"] = cni_binaries(root, needed, dirs)
    if plugin.get("datastore_type", "kubernetes") in (None, "kubernetes"):
        path = plugin.get("kubeconfig") or f"{conf['dir']}/calico-kubeconfig"
        text = _read(_host(root, path))
        out["kubeconfig"] = {"file": path, "exists": text is not None,
                             **(kubeconfig_token_facts(text, now) if text is not None else {})}
    return out


# ---------------------------------------------------------------------------------------------
# Networks a pool must not overlap: the service CIDR (on control-plane nodes)

APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def service_cidrs(root="/"):
    """kube-apiserver's ``--service-cluster-ip-range`` from its static pod manifest (control-plane
    nodes), as a list of CIDRs; [] when the manifest is not there."""
    text = _read(_host(root, APISERVER_MANIFEST)) or ""
    m = re.search(r"--service-cluster-ip-range[=\s]+['\"]?([0-9a-fA-F:./,]+)", text)
    out = []
    for cidr in (m.group(1).split(",") if m else ()):
        try:
            out.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError:
            continue
    return out


# ---------------------------------------------------------------------------------------------
# The fact


def _sets_mac(match):
    """A .link match that can change a Calico device's MAC (the distribution's catch-all
    99-default.link with MACAddressPolicy=persistent is every systemd host's, and Calico copes)."""
    if match.get("mac_address") and match.get("mac_address_policy") in (None, "none"):
        return True
    return match.get("mac_address_policy") in ("persistent", "random") and not (match["vendor"] and match["catch_all"])


def host_config_facts(snap, identity, *, root="/", proc="/proc", run=None, which=None, now=None):
    """The ``host_config`` part of the ``calico_node`` fact::

        {"identity": {"machine_id_hash", "machine_id_state"},
         "networkd": {"running", "pid", "enabled", "files", "manage_foreign_routes", "manage_foreign_rules", "set_in"},
         "links": [{"device", "file", "certain", "match", "mac_address_policy", "mac_address", "vendor", "catch_all"}],
         "netplan": {"files", "generated"},
         "nm_cloud_setup": {"installed", "enabled", "masked", "links", "providers", "rules": [{"priority", "src",
                            "table", "kind"}]},
         "iptables": {"nft_tables", "legacy" | "nft": {"binary", "rc", "error", "tables", "chains", "rules",
                      "kube_hint", "incompatible"} | None, "errors", "felix_env"},
         "cni": {"dir", "files", "active", "calico", "calico_plugin", "bin_dirs", "bin_source", "binaries",
                 "kubeconfig": {"file", "exists", "token", "jwt", "exp", "iat", "sub", "expires_in"}},
         "service_cidrs": [cidr]}
    """
    calico_node = (identity or {}).get("calico_node") or {}
    return {
        "identity": identity_facts(root),
        "networkd": networkd_facts(root, proc),
        "links": [m for m in link_calico_matches(discover_link_files(root)) if _sets_mac(m)],
        "netplan": netplan_facts(root),
        "nm_cloud_setup": nm_cloud_setup_facts((snap or {}).get("rules"), root),
        "iptables": {**iptables_facts(os.path.join(proc, "net"), run=run, which=which),
                     "felix_env": felix_dataplane_env(calico_node.get("pid"), proc)},
        "cni": cni_facts(root, now),
        "service_cidrs": service_cidrs(root),
    }
