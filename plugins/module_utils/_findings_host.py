# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Node rules over the fact's ``host_config`` (``_hostconfig``): host network managers (NET001),
the iptables backends (IPT001), the CNI files (CNI001), the registered prefix (REG001) and IP
pools that overlap the host's networks (POOL001). Pure: the fact in, findings out; a fact
without ``host_config`` (an older collection's) gives nothing. ``rule_host`` is the one entry
``_findings.NODE_RULES`` registers."""

from __future__ import annotations

import fnmatch
import ipaddress
import time

from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import finding, limited
from ansible_collections.netdoctor.calico.plugins.module_utils._contract import calico_node_env

CALICO_DEVICE_PATTERNS = ("cali*", "tunl*", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali")
CALICO_LINK_FILE = "/etc/systemd/network/00-calico.link"
NETWORKD_DROPIN = "/etc/systemd/networkd.conf.d/calico.conf"
FIX_MODULE = "netdoctor.calico.calico_host_managers"
# Devices whose MAC the peers depend on (VTEP: their neighbour and FDB entries use the registered
# MAC) and the veths whose gateway MAC pods learned (ee:ee:ee:ee:ee:ee, set by Calico's CNI).
_MAC_CRITICAL = ("vxlan.calico", "vxlan-v6.calico")
_MAC_DEVICES = ("vxlan.calico", "vxlan-v6.calico", "cali*")
# Interfaces that are bridges of container engines or hypervisors, not the host's uplinks.
_BRIDGES = ("docker*", "podman*", "br-*", "virbr*", "lxcbr*", "cni*", "cbr*", "lxdbr*", "incusbr*", "nerdctl*")
_SKIP_NETS = ("lo", "kube-ipvs*", "nodelocaldns*", *CALICO_DEVICE_PATTERNS)
TOKEN_WARN_SECONDS = 6 * 3600  # calico-node renews its 24 h CNI token when a quarter is left


def _host_config(fact):
    hc = fact.get("host_config")
    return hc if isinstance(hc, dict) else None


def _any(name, patterns):
    return any(fnmatch.fnmatchcase(name or "", p) for p in patterns)


# --- NET001: host network managers -----------------------------------------------------------

def _calico_routes(fact):
    by_proto = ((fact.get("routes") or {}).get("counts") or {}).get("by_protocol") or {}
    return {k: v for k, v in by_proto.items() if k in ("bird", "felix", "boot", "12", "80", "3") and v}


def rule_networkd_foreign(fact, host, hc):
    nd = hc.get("networkd") or {}
    routes, rules = nd.get("manage_foreign_routes"), nd.get("manage_foreign_rules")
    if not (nd.get("running") or nd.get("enabled")) or not (routes or rules):
        return []
    what = [k for k, v in (("ManageForeignRoutes", routes), ("ManageForeignRoutingPolicyRules", rules)) if v]
    state = "runs" if nd.get("running") else "is enabled (not running now)"
    severity = "warning" if nd.get("running") else "info"
    evidence = {"running": nd.get("running"), "pid": nd.get("pid"), "enabled": nd.get("enabled"),
                "ManageForeignRoutes": routes, "ManageForeignRoutingPolicyRules": rules,
                "set_in": nd.get("set_in"), "files": nd.get("files"), "calico_routes_at_risk": _calico_routes(fact)}
    return [finding(
        "NET001", severity, host,
        f"systemd-networkd {state} on {host} with {' and '.join(f'{k}=yes' for k in what)}: its next restart or "
        "reload deletes the routes and rules it did not configure - BIRD's and Felix's among them",
        evidence,
        f"Create {NETWORKD_DROPIN} with `[Network]` `ManageForeignRoutes=no` and `ManageForeignRoutingPolicyRules=no` "
        f"({FIX_MODULE} networkd_foreign=true writes it, check mode shows the diff); networkd reads networkd.conf "
        "only when it starts, so restart systemd-networkd once the drop-in exists, in a maintenance window.")]


def rule_link_mac(fact, host, hc):
    """udev .link files that set the MAC of Calico's devices."""
    by_file = {}
    for m in hc.get("links") or ():
        device, policy, mac = m.get("device"), m.get("mac_address_policy"), m.get("mac_address")
        if device not in _MAC_DEVICES:
            continue
        if mac and policy in (None, "none"):
            severity = "critical" if device in _MAC_CRITICAL else "warning"
            why = f"sets MACAddress={mac}"
        elif policy in ("persistent", "random") and not (m.get("vendor") and m.get("catch_all")):
            severity = "warning"
            why = f"sets MACAddressPolicy={policy}"
        else:
            continue
        if not m.get("certain"):
            severity = "info"
        entry = by_file.setdefault(m["file"], {"devices": [], "severity": "info", "why": why, "match": m.get("match")})
        entry["devices"].append(device)
        rank = ("critical", "warning", "info")
        if rank.index(severity) < rank.index(entry["severity"]):
            entry["severity"] = severity
    out = []
    for path, entry in sorted(by_file.items()):
        devices = ", ".join(entry["devices"])
        out.append(finding(
            "NET001", entry["severity"], host,
            f"udev's {path} {entry['why']} for {devices} on {host}: the peers reach a VTEP by its registered MAC "
            "and pods their gateway by ee:ee:ee:ee:ee:ee, so a MAC udev changes drops traffic",
            {"file": path, "match": entry["match"], "devices": entry["devices"], "rule": entry["why"]},
            f"Create {CALICO_LINK_FILE} (it sorts first, and udev applies only the first .link that matches) with "
            "`[Match]` `OriginalName=" + " ".join(CALICO_DEVICE_PATTERNS) + "` and `[Link]` `MACAddressPolicy=none`"
            f" ({FIX_MODULE} link_mac_policy=true writes it); it applies to devices created from then on, so restart "
            "calico-node (Felix re-creates its VTEP with the registered MAC) or recreate the affected pods."))
    return out


def rule_netplan(fact, host, hc):
    """networkd files netplan generated that catch Calico devices: NM001 names the generated file;
    the fix belongs in the netplan YAML, which regenerates it."""
    generated = set((hc.get("netplan") or {}).get("generated") or ())
    matching = [m for m in (fact.get("networkd") or {}).get("matching_calico") or ()
                if m.get("file") in generated and not m.get("unmanaged")]
    if not matching:
        return []
    files = ", ".join(m["file"] for m in matching)
    ids = ", ".join(m["file"].rsplit("/", 1)[-1][len("10-netplan-"):].rsplit(".", 1)[0] for m in matching)
    return [finding(
        "NET001", "info", host,
        f"{files} on {host} is generated by netplan (interface id {ids}): edit netplan's YAML, not the file",
        {"generated": [m["file"] for m in matching], "netplan_files": (hc.get("netplan") or {}).get("files"),
         "matching_calico": limited(matching)},
        f"In /etc/netplan/*.yaml give interface {ids} a `match:` that names only the host NICs (e.g. `name: eth0` or "
        "`macaddress:`) instead of a glob that catches cali*/tunl*/vxlan.calico, then `netplan generate` and "
        "`networkctl reload` (a restart of systemd-networkd drops pod connections). NM001 reports the generated file.")]


def rule_nm_cloud_setup(fact, host, hc):
    cs = hc.get("nm_cloud_setup") or {}
    rules = cs.get("rules") or []
    active = cs.get("enabled") and cs.get("providers")
    if not rules and not active:
        return []
    default_rules = [r for r in rules if r.get("kind") == "default_route"]
    suppress = any(r.get("kind") == "suppress_main" for r in rules)
    texts = [f"{r['priority']}: from {r.get('src') or 'all'} lookup {r['table']}"
             + (" suppress_prefixlength 0" if r.get("kind") == "suppress_main" else "") for r in rules]
    if default_rules and not suppress:
        severity = "critical"
        what = ("its rules send traffic from the node's own addresses through table 30400's default route before "
                "the main table is consulted: host-to-pod traffic leaves by the cloud gateway")
    elif rules:
        severity = "warning"
        what = ("its policy rules steer traffic from the node's addresses into its own tables; Calico's routes "
                "live in the main table, and nm-cloud-setup rewrites these rules on every run")
    else:
        severity = "info"
        what = f"it is enabled for {', '.join(cs['providers'])} and adds its policy rules at its next run"
    dels = "; ".join(f"ip rule del priority {r['priority']}" for r in rules[:6])
    return [finding(
        "NET001", severity, host,
        f"NetworkManager's nm-cloud-setup on {host}: {what}",
        {"enabled": cs.get("enabled"), "masked": cs.get("masked"), "links": cs.get("links"),
         "providers": cs.get("providers"), "rules": limited(texts)},
        "Disable it: `systemctl disable --now nm-cloud-setup.service nm-cloud-setup.timer`, then remove its rules"
        + (f" (`{dels}`)" if dels else "") + " or reboot "
        f"({FIX_MODULE} nm_cloud_setup=true does both, check mode shows the plan). RKE2 and Calico users on RHEL "
        "clouds do the same (calico#4662).")]


# --- IPT001: the iptables backends -----------------------------------------------------------

def _has(entry, owner):
    if not entry:
        return False
    return bool((entry.get("chains") or {}).get(owner) or (entry.get("rules") or {}).get(owner)
                or (owner == "kube" and entry.get("kube_hint")))


def dataplanes(ipt):
    """Where Calico's and kube-proxy's rules are: lists of nftables / iptables-legacy / iptables-nft."""
    tables = set(ipt.get("nft_tables") or ())
    calico, kube = [], []
    if tables & {"ip calico", "ip6 calico"}:
        calico.append("nftables")
    if tables & {"ip kube-proxy", "ip6 kube-proxy"}:
        kube.append("nftables")
    for name, key in (("iptables-legacy", "legacy"), ("iptables-nft", "nft")):
        if _has(ipt.get(key), "calico"):
            calico.append(name)
        if _has(ipt.get(key), "kube"):
            kube.append(name)
    return calico, kube


def felix_expected(ipt, kube):
    """The dataplane Felix picks (felix/dataplane/driver.go NFTablesEnabled, environment.DetectBackend):
    nftables with nftablesMode Enabled, or Auto when kube-proxy runs in nftables mode; else iptables
    on FELIX_IPTABLESBACKEND, or on the detected backend (kube-proxy's hint chains, else the backend
    with more rules, legacy on a tie). Returns (dataplane, how)."""
    env = ipt.get("felix_env") or {}
    mode = (env.get("FELIX_NFTABLESMODE") or "Auto").strip().lower()
    if mode == "enabled":
        return "nftables", "FELIX_NFTABLESMODE=Enabled"
    if mode == "auto" and "nftables" in kube:
        return "nftables", "nftablesMode Auto and kube-proxy runs in nftables mode"
    backend = (env.get("FELIX_IPTABLESBACKEND") or "auto").strip().lower()
    if backend in ("legacy", "nft"):
        return f"iptables-{backend}", f"FELIX_IPTABLESBACKEND={env.get('FELIX_IPTABLESBACKEND')}"
    legacy, nft = ipt.get("legacy") or {}, ipt.get("nft") or {}
    if nft.get("kube_hint"):
        return "iptables-nft", "detected: kube-proxy's hint chain is in iptables-nft"
    if legacy.get("kube_hint"):
        return "iptables-legacy", "detected: kube-proxy's hint chain is in iptables-legacy"

    def count(backend):
        return sum((backend.get("rules") or {}).values())

    if count(legacy) >= count(nft):
        return "iptables-legacy", f"detected: {count(legacy)} legacy rules >= {count(nft)} nft rules"
    return "iptables-nft", f"detected: {count(nft)} nft rules > {count(legacy)} legacy rules"


_GREP = "grep -v -e '^:cali-' -e '^-A cali-' -e '-j cali-'"
_CLEAN = {
    "iptables-legacy": f"iptables-legacy-save | {_GREP} | iptables-legacy-restore",
    "iptables-nft": f"iptables-nft-save | {_GREP} | iptables-nft-restore",
    "nftables": "nft delete table ip calico; nft delete table ip6 calico",
}


def rule_iptables(fact, host, hc):
    ipt = hc.get("iptables") or {}
    if not ipt:
        return []
    calico, kube = dataplanes(ipt)
    out = []
    evidence = {"calico_in": calico, "kube_proxy_in": kube, "nft_tables": ipt.get("nft_tables"),
                "legacy": _counts(ipt.get("legacy")), "iptables_nft": _counts(ipt.get("nft")),
                "felix_env": ipt.get("felix_env")}
    expected, how = felix_expected(ipt, kube)
    explicit = not how.startswith(("detected", "nftablesMode Auto"))
    # Where Felix's rules are is the evidence; the configuration only picks among several.
    current = calico[0] if len(calico) == 1 else (expected if expected in calico else (calico or [expected])[0])
    evidence.update(felix_dataplane=current, felix_configured=expected, felix_configured_from=how)
    if len(calico) > 1:
        stale = [d for d in calico if d != current]
        cmds = "; ".join(f"`{_CLEAN[d]}`" for d in stale)
        out.append(finding(
            "IPT001", "warning", host,
            f"Calico's rules are in {len(calico)} dataplanes on {host} ({', '.join(calico)}): Felix programs "
            f"{current} ({how}), the rest ({', '.join(stale)}) is left from a backend switch and still filters "
            "every packet",
            evidence,
            f"Remove Calico's chains from {', '.join(stale)} on {host}: {cmds} (or reboot the node); Calico v3.33+ "
            "sweeps the backend it does not program by itself. Pin the dataplane so it cannot flip back: "
            "FelixConfiguration iptablesBackend (Legacy/NFT) or nftablesMode, or FELIX_IPTABLESBACKEND / "
            "FELIX_NFTABLESMODE on the calico-node DaemonSet."))
    elif calico and explicit and current != expected:
        out.append(finding(
            "IPT001", "warning", host,
            f"calico-node on {host} is configured for {expected} ({how}) but Calico's rules are in {current}: the "
            "running Felix did not apply the setting",
            evidence,
            f"Restart calico-node on {host} so Felix starts on {expected}, then remove what it left in {current} "
            f"(`{_CLEAN[current]}`, or reboot)."))
    other_kube = [d for d in kube if d != current]
    if other_kube and calico:
        backend = {"iptables-legacy": "Legacy", "iptables-nft": "NFT"}.get(kube[0])
        fix = (f"`kubectl set env daemonset/calico-node -n kube-system FELIX_IPTABLESBACKEND={backend}` (or "
               f"FelixConfiguration iptablesBackend: {backend})" if backend else
               "FelixConfiguration nftablesMode: Enabled (kube-proxy runs in nftables mode)")
        out.append(finding(
            "IPT001", "warning", host,
            f"kube-proxy's rules on {host} are in {', '.join(kube)}, Felix's in {current}: packets cross both "
            "dataplanes in an order neither controls, so service NAT and Calico policy can disagree",
            evidence,
            f"Run both in one dataplane: {fix}, or move kube-proxy to {current}; then clean the other backend "
            "(iptables-*-save | grep -v | iptables-*-restore, or reboot)."))
    incompatible = (ipt.get("nft") or {}).get("incompatible") or []
    if incompatible:
        severity = "critical" if current == "iptables-nft" else "warning"
        out.append(finding(
            "IPT001", severity, host,
            f"iptables-nft-save cannot read table(s) {', '.join(incompatible)} on {host}: another tool put native "
            "nftables rules there" + ("; Felix's own iptables-nft-save fails the same way and Felix restarts in a "
                                      "loop (calico#13263)" if severity == "critical" else ""),
            {**evidence, "incompatible_tables": incompatible, "error": (ipt.get("nft") or {}).get("error")},
            "Move the foreign rules into their own nftables table (`nft list table ip "
            f"{incompatible[0]}` shows them; tools such as tailscale can be told to use their own table), or upgrade "
            "Calico to v3.33+, which reads these tables over netlink."))
    return out


def _counts(entry):
    if not entry:
        return None
    return {k: entry.get(k) for k in ("chains", "rules", "kube_hint", "error")}


# --- CNI001 ----------------------------------------------------------------------------------

def rule_cni(fact, host, hc, now=None):
    cni = hc.get("cni") or {}
    files = cni.get("files") or []
    calico_runs = bool((fact.get("identity") or {}).get("calico_node"))
    out = []
    if not cni.get("calico"):
        if calico_runs and cni.get("dir"):
            out.append(finding(
                "CNI001", "critical", host,
                f"calico-node runs on {host} but {cni['dir']} holds no Calico CNI config: pods get no Calico "
                "networking",
                {"dir": cni.get("dir"), "files": limited(f["file"] for f in files)},
                "calico-node's install-cni init container writes 10-calico.conflist: restart the calico-node pod "
                "on this node and check the init container's log."))
        return out
    active = cni.get("active")
    by_file = {f["file"]: f for f in files}
    if active and active != cni["calico"]:
        types = by_file.get(active, {}).get("types") or []
        if not any(t in ("multus", "multus-shim") for t in types):
            out.append(finding(
                "CNI001", "critical", host,
                f"{active} ({', '.join(types)}) sorts before Calico's {cni['calico']} on {host}: the container "
                "runtime uses the first valid config, so new pods are not wired by Calico",
                {"active": active, "active_types": types, "calico": cni["calico"],
                 "order": limited(f["file"] for f in files)},
                f"Remove {active} if it is a leftover of another CNI (and its binaries/devices), or rename Calico's "
                "config to sort first (CNI_CONF_NAME on the install-cni container); then restart the container "
                "runtime so it reloads the directory."))
    leftovers = [f for f in files if f.get("valid") and f["file"] not in (cni["calico"], active)]
    if leftovers:
        podman = all("podman" in f["file"] for f in leftovers)
        out.append(finding(
            "CNI001", "info" if podman else "warning", host,
            f"{len(leftovers)} other CNI config(s) in {cni.get('dir')} on {host} beside Calico's: "
            + ", ".join(f"{f['file']} ({', '.join(f.get('types') or [])})" for f in leftovers[:3]),
            {"leftovers": limited({"file": f["file"], "types": f.get("types")} for f in leftovers),
             "calico": cni["calico"], "active": active},
            "Remove the configs of CNIs that no longer run here (a rename or a new file can make one win); an "
            "uninstalled CNI also leaves devices (flannel.1, cni0, cilium_*) and iptables chains to clean up."))
    binaries = cni.get("binaries")
    if binaries:
        missing = [name for name, where in binaries.items() if where is None]
        if missing:
            out.append(finding(
                "CNI001", "critical", host,
                f"CNI plugin binaries {', '.join(missing)} are missing from {', '.join(cni.get('bin_dirs') or [])} on "
                f"{host}: the runtime cannot add or delete pod networks",
                {"missing": missing, "bin_dirs": cni.get("bin_dirs"), "bin_dirs_from": cni.get("bin_source"),
                 "found": {k: v for k, v in binaries.items() if v}},
                "calico-node's install-cni init container copies calico and calico-ipam into the host's CNI bin dir "
                "(/host/opt/cni/bin, and /host/secondary-bin-dir): check that its hostPath is the runtime's bin_dir "
                f"({cni.get('bin_source')}) and restart the calico-node pod on {host}."))
    kc = cni.get("kubeconfig") or {}
    if kc.get("exists") and kc.get("jwt") and kc.get("expires_in") is not None:
        left = kc["expires_in"]
        evidence = {"kubeconfig": kc.get("file"), "token": "<redacted>", "subject": kc.get("sub"),
                    "expires": _iso(kc.get("exp")), "issued": _iso(kc.get("iat")), "expires_in_seconds": left}
        remedy = ("calico-node renews this token (24 h, refreshed every 6 h): restart the calico-node pod on "
                  f"{host} and check its log for `token` errors (RBAC for the calico-cni-plugin service account, "
                  "TokenRequest reachability); the CNI plugin authenticates with it on every pod add and delete.")
        if left <= 0:
            out.append(finding("CNI001", "critical", host,
                               f"the CNI plugin's token in {kc.get('file')} on {host} expired "
                               f"{_ago(-left)} ago: pod creation and deletion fail with Unauthorized",
                               evidence, remedy))
        elif left < TOKEN_WARN_SECONDS:
            out.append(finding("CNI001", "warning", host,
                               f"the CNI plugin's token in {kc.get('file')} on {host} expires in {_ago(left)} and has "
                               "not been renewed", evidence, remedy))
    return out


def _iso(ts):
    if not isinstance(ts, (int, float)):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _ago(seconds):
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{max(seconds // 60, 0)} min"


# --- REG001: the registered prefix -----------------------------------------------------------

def _interface_prefix(fact, ip):
    for link in fact.get("links") or ():
        for a in link.get("addresses") or ():
            if a.get("address") == str(ip):
                return link.get("name"), a.get("prefixlen")
    return None, None


def rule_registration(fact, host, hc):
    env = calico_node_env(fact)
    registered = env.get("IP") if env.get("IP") not in (None, "", "autodetect", "none") else None
    registered = registered or (fact.get("autodetection") or {}).get("registered")
    if not registered or "/" not in str(registered):
        return []
    try:
        iface = ipaddress.ip_interface(str(registered).strip())
    except ValueError:
        return []
    name, prefix = _interface_prefix(fact, iface.ip)
    if prefix is None or prefix == iface.network.prefixlen or iface.network.prefixlen != 32:
        return []
    cross = [k for k in ("CALICO_IPV4POOL_IPIP", "CALICO_IPV4POOL_VXLAN")
             if (env.get(k) or "").lower() == "crosssubnet"]
    severity = "warning" if cross else "info"
    return [finding(
        "REG001", severity, host,
        f"{host} is registered as {registered} while {name} has {iface.ip}/{prefix}: Calico sees no other node in "
        "its subnet" + (", so CrossSubnet encapsulates everything from it while its neighbours route to it "
                        "directly (asymmetric)" if cross else " (harmless until a pool uses CrossSubnet)"),
        {"registered": registered, "interface": name, "interface_address": f"{iface.ip}/{prefix}",
         "ip_env": env.get("IP"), "crosssubnet": cross},
        f"Register the interface's prefix: set calico-node's IP to {iface.ip}/{prefix} (or IP=autodetect with a method "
        "that picks it; calico-node then takes the prefix from the interface) and restart calico-node on "
        f"{host}.")]


# --- POOL001: pools overlapping host networks ------------------------------------------------

def _pools(fact, hc):
    env = calico_node_env(fact)
    found = {}
    for key in ("CALICO_IPV4POOL_CIDR",):
        if env.get(key):
            found.setdefault(env[key], f"calico-node {key}")
    for cidr in ((hc.get("cni") or {}).get("calico_plugin") or {}).get("ipam_ranges") or ():
        found.setdefault(cidr, "CNI config ipam")
    out = []
    for cidr, source in found.items():
        try:
            net = ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            continue
        if net.version == 4:
            out.append((net, source))
    return out


def rule_pool_overlap(fact, host, hc):
    pools = _pools(fact, hc)
    if not pools:
        return []
    hits = []
    for link in fact.get("links") or ():
        name = link.get("name")
        if _any(name, _SKIP_NETS):
            continue
        for a in link.get("addresses") or ():
            if a.get("family") != 4:
                continue
            net = ipaddress.ip_interface(f"{a['address']}/{a['prefixlen']}").network
            if net.is_loopback or net.is_link_local:
                continue
            for pool, source in pools:
                if pool.overlaps(net):
                    kind = "bridge" if _any(name, _BRIDGES) else "host network"
                    hits.append({"pool": str(pool), "pool_from": source, "interface": name,
                                 "network": f"{a['address']}/{a['prefixlen']}", "kind": kind})
    for cidr in hc.get("service_cidrs") or ():
        svc = ipaddress.ip_network(cidr)
        for pool, source in pools:
            if pool.version == svc.version and pool.overlaps(svc):
                hits.append({"pool": str(pool), "pool_from": source, "interface": None, "network": cidr,
                             "kind": "service CIDR"})
    if not hits:
        return []
    severity = "warning" if all(h["kind"] == "bridge" for h in hits) else "critical"
    first = hits[0]
    where = first["interface"] or "the Kubernetes service range"
    return [finding(
        "POOL001", severity, host,
        f"IP pool {first['pool']} overlaps {first['network']} ({first['kind']}, {where}) on {host}"
        + (f" and {len(hits) - 1} more" if len(hits) > 1 else "")
        + ": pods given addresses there collide with it (routing, natOutgoing, IPAM)",
        {"overlaps": limited(hits)},
        "Give the pods a range no host network, bridge or service CIDR uses: create a new IPPool, disable the "
        "overlapping one (`calicoctl patch ippool <name> -p '{\"spec\":{\"disabled\":true}}'`), recreate the pods, "
        "then delete it; or move the bridge (docker's `bip` / `default-address-pools` in /etc/docker/daemon.json, "
        "podman's network) out of the pool.")]


def rule_host(fact, host):
    """Every rule of this module (NODE_RULES registers this one)."""
    hc = _host_config(fact)
    if hc is None:
        return []
    out = []
    for rule in (rule_networkd_foreign, rule_link_mac, rule_netplan, rule_nm_cloud_setup, rule_iptables, rule_cni,
                 rule_registration, rule_pool_overlap):
        out += rule(fact, host, hc)
    return out
