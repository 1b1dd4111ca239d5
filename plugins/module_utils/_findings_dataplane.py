# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The node rules over the fact's ``dataplane`` part (``_dataplane``): the overlay blocked by the
host firewall (FW001), VXLAN checksum offload (OFF001), conntrack pressure (CT001), Felix's health
(FLX001) and programming (FLX002), the eBPF data plane (BPF001), WireGuard (WG001) and the MTU
file (MTU002); plus two pure functions for the fleet: WireGuard keys across nodes and the probe
matrix against the firewall walk. Each rule is ``rule(fact, host) -> [finding]``; a healthy node
gives nothing at warning or above. Pure: the fact in, findings out.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.netdoctor.calico.plugins.module_utils import _dataplane, _firewall
from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import finding, limited

# --- helpers ---------------------------------------------------------------------------------


def _dp(fact):
    return fact.get("dataplane") or {}


def _ip(value):
    try:
        return ipaddress.ip_interface(str(value).strip()).ip
    except ValueError:
        return None


def node_ip(fact):
    """This node's Calico IPv4 as far as it knows: BIRD's router id, vxlan.calico's local address, the
    intended address, the replayed method's pick."""
    auto = fact.get("autodetection") or {}
    candidates = [(fact.get("bird") or {}).get("router_id"),
                  ((fact.get("calico") or {}).get("vxlan") or {}).get("local"), auto.get("intended")]
    candidates += [r.get("address") for r in auto.get("results") or () if r.get("version", 4) == 4]
    for value in candidates:
        if value and _ip(value):
            return _ip(value)
    return None


def underlay(fact):
    """The link holding the node IP (the NIC its encapsulated packets leave by), or None."""
    ip = node_ip(fact)
    for link in fact.get("links") or ():
        if ip and any(_ip(a.get("address")) == ip for a in link.get("addresses") or ()):
            return link
    return None


def _env(fact):
    return _dp(fact).get("felix_env") or {}


def _version_text(kernel):
    return (kernel or {}).get("release") or "unknown"


# --- FW001: the overlay through the host firewall ----------------------------------------------

_FLOW_WORDS = {"vxlan": "VXLAN (UDP {port})", "vxlan-v6": "IPv6 VXLAN (UDP {port})", "ipip": "IPIP (IP protocol 4)",
               "wireguard": "WireGuard (UDP {port})", "wireguard-v6": "IPv6 WireGuard (UDP {port})"}


def _drop_text(record):
    zone = f" (firewalld zone {record['firewalld_zone']})" if record.get("firewalld_zone") else ""
    return (f"{record.get('family')} {record.get('table')} {record.get('chain')}{zone}: `{record.get('rule')}` "
            f"drops {', '.join(record.get('packets') or ())}")


def rule_fw001(fact, host):
    """The host firewall drops an overlay flow (VXLAN, IPIP, WireGuard) to or from Calico peers."""
    walk = _dp(fact).get("overlay_firewall") or {}
    if not walk.get("checked"):
        return []
    out = []
    for name, entry in sorted((walk.get("flows") or {}).items()):
        blocked = entry.get("blocking") or {}
        if not blocked:
            continue
        peers = sorted(blocked, key=lambda a: (ipaddress.ip_address(a).version, int(ipaddress.ip_address(a))))
        records = [r for p in peers for r in blocked[p]]
        certain = any(r.get("certain") for r in records)
        what = _FLOW_WORDS.get(name, name).format(port=entry.get("port"))
        spec = _firewall.flow(name, entry.get("port"))
        zones = sorted({r["firewalld_zone"] or "" for r in records if "firewalld_zone" in r})
        peer_ips = [ipaddress.ip_address(p) for p in peers]
        seen, drops = set(), []
        for r in records:
            text = _drop_text(r)
            if text not in seen:
                seen.add(text)
                drops.append({k: r.get(k) for k in ("family", "table", "chain", "base_chain", "hook", "handle", "rule",
                                                    "certain", "packets", "firewalld_zone") if k in r})
        evidence = {"flow": name, "device": entry.get("device"), "port": entry.get("port"),
                    "peers_blocked": limited(peers), "peers_checked": entry.get("peer_count"),
                    "drops": drops[:10], "certain": certain}
        if zones:
            commands = []
            for zone in zones:
                commands += _firewall.firewalld_commands(spec, peer_ips[:10], zone or None)[:-1]
            evidence["firewalld_commands"] = limited([*commands, "firewall-cmd --reload"])
            remedy = (f"firewalld drops {what} from the Calico nodes: `{commands[0]}` for each peer "
                      "(evidence.firewalld_commands lists them), then `firewall-cmd --reload`. Or take firewalld off "
                      "the nodes, as Calico's requirements ask. The repair leaves firewalld's own table alone: "
                      "firewalld rewrites it at every reload.")
        else:
            remedy = (f"Let {what} between the Calico nodes through {host}'s host firewall: the repair does it with "
                      f"repair_overlay_firewall=true (netdoctor.calico.calico_firewall flows=[{name}]: accept rules "
                      "scoped to the fleet's Calico IPs at the head of each chain that drops, not persistent), then "
                      "make it permanent in the firewall's configuration (/etc/nftables.conf, the iptables rules "
                      "file). Calico's requirements: "
                      "https://docs.tigera.io/calico/latest/getting-started/kubernetes/requirements#network-requirements")
        where = "; ".join(_drop_text(d) for d in drops[:2])
        out.append(finding(
            "FW001", "critical" if certain else "warning", host,
            f"{host}'s host firewall drops {what} with {len(peers)} Calico peer(s) ({', '.join(peers[:3])}"
            f"{' ...' if len(peers) > 3 else ''}): pods there cannot reach pods here, whatever BGP says ({where})",
            evidence, remedy, peer=peers[0] if len(peers) == 1 else None))
    return out


# --- OFF001: VXLAN checksum offload -------------------------------------------------------------

# Drivers with reports of broken VXLAN tx checksum offload (calico#9433 vSphere/vmxnet3, kubespray#8992).
KNOWN_BAD_DRIVERS = ("vmxnet3",)
FELIX_FIXED_KERNEL = (5, 7, 0)    # feature_detect_linux.go: ChecksumOffloadBroken = kernel <= 5.7.0
SLOW_FROM_KERNEL = (6, 12, 0)     # calico#11435: 50-300 Mbit/s through vxlan.calico until it is off


def _offload_reasons(dev, entry, kernel, overrides):
    version = tuple((kernel or {}).get("version") or ()) or None
    reasons = []
    if version and version <= FELIX_FIXED_KERNEL:
        reasons.append(f"kernel {_version_text(kernel)} is one Felix turns the offload off on itself (<= 5.7): "
                       "ChecksumOffloadBroken=false is set, or Felix is older than v3.19")
    if version and version >= SLOW_FROM_KERNEL:
        reasons.append(f"kernel {_version_text(kernel)} >= 6.12, where calico#11435 reports 50-300 Mbit/s through "
                       f"{dev} until tx-checksum-ip-generic is off")
    if entry.get("parent_driver") in KNOWN_BAD_DRIVERS:
        reasons.append(f"its parent {entry.get('parent')} is a {entry['parent_driver']} NIC, where VXLAN checksum "
                       "offload breaks everything but ICMP (calico#9433)")
    if _dataplane.parse_bool(overrides.get("ChecksumOffloadBroken")):
        reasons.append("featureDetectOverride sets ChecksumOffloadBroken=true, but the offload is on: Felix has not "
                       "applied it (not running, or something turned it back on)")
    return reasons


def rule_off001(fact, host):
    """vxlan.calico offloads its checksums where that is known to break TCP or throughput."""
    dp = _dp(fact)
    overrides = _dataplane.parse_overrides(_env(fact).get("FEATUREDETECTOVERRIDE"))
    out = []
    for dev, entry in sorted((dp.get("vxlan") or {}).items()):
        features = entry.get("features") or {}
        on = [name for name in _dataplane.TX_CHECKSUM if (features.get(name) or {}).get("on")]
        if not on:
            continue
        reasons = _offload_reasons(dev, entry, dp.get("kernel"), overrides)
        evidence = {"device": dev, "ethtool_k": _dataplane.ethtool_text(features), "tx_checksum_on": on,
                    "kernel": _version_text(dp.get("kernel")), "parent": entry.get("parent"),
                    "parent_driver": entry.get("parent_driver"),
                    "feature_detect_override": _env(fact).get("FEATUREDETECTOVERRIDE"), "reasons": reasons}
        remedy = (f"Now: `ethtool -K {dev} tx-checksum-ip-generic off` (the repair does it with "
                  "repair_vxlan_offload=true: netdoctor.calico.calico_vxlan_offload), which lasts until Felix "
                  "recreates the device. Lasting: `kubectl patch felixconfiguration default --type=merge -p "
                  "'{\"spec\":{\"featureDetectOverride\":\"ChecksumOffloadBroken=true\"}}'` (or `calicoctl patch "
                  "felixconfiguration default -p ...`): Felix then turns the offload off on the VXLAN and IPIP "
                  "devices itself (route_mgr.go configureTunnelDevice, ethtool TX off).")
        if reasons:
            summary = (f"{dev} on {host} offloads its checksums ({', '.join(on)} on) where that breaks or slows VXLAN: "
                       f"{reasons[0]} - pods can ping but TCP stalls or crawls")
            out.append(finding("OFF001", "warning", host, summary, evidence, remedy))
        else:
            out.append(finding("OFF001", "info", host,
                               f"{dev} on {host} offloads its checksums ({', '.join(on)} on), as Felix leaves it on "
                               "kernels after 5.7; if pods ping but TCP stalls, turn it off",
                               evidence, remedy))
    return out


# --- CT001: conntrack ---------------------------------------------------------------------------

CT_WARNING = 0.9


def rule_ct001(fact, host):
    """The conntrack table is (nearly) full, or the kernel has dropped for want of an entry."""
    ct = _dp(fact).get("conntrack") or {}
    count, maximum = ct.get("count"), ct.get("max")
    if count is None or not maximum:
        return []
    ratio = count / maximum
    stats = ct.get("stats") or {}
    drops = {k: stats.get(k) for k in ("drop", "early_drop", "insert_failed") if stats.get(k)}
    evidence = {"nf_conntrack_count": count, "nf_conntrack_max": maximum, "ratio": round(ratio, 4),
                "nf_conntrack_buckets": ct.get("buckets"), "counters": stats}
    target = max(maximum * 2, 262144)
    remedy = (f"Raise the limit: `sysctl -w net.netfilter.nf_conntrack_max={target}` and persist it in "
              f"/etc/sysctl.d/90-calico.conf (ansible.posix.sysctl; kube-proxy's conntrack.maxPerCore/min may set it "
              "at its start - set it there too), then find what opens the connections (`conntrack -S`, "
              "`conntrack -L -o extended | awk '{print $1, $3}' | sort | uniq -c | sort -rn | head`).")
    if ratio >= 1:
        return [finding("CT001", "critical", host,
                        f"the conntrack table on {host} is full ({count}/{maximum}): new connections are dropped",
                        evidence, remedy)]
    if ratio >= CT_WARNING:
        return [finding("CT001", "warning", host,
                        f"the conntrack table on {host} is {ratio:.0%} full ({count}/{maximum}): at 100% new "
                        "connections are dropped", evidence, remedy)]
    if drops.get("drop") or drops.get("early_drop"):
        return [finding("CT001", "info", host,
                        f"the kernel on {host} has dropped packets for want of a conntrack entry since boot "
                        f"({', '.join(f'{k} {v}' for k, v in drops.items())}); the table is {ratio:.0%} full now",
                        evidence, remedy)]
    return []


# --- FLX001 / FLX002: Felix ---------------------------------------------------------------------

def _not_ok(answer, key):
    return [c["component"] for c in answer.get("components") or ()
            if c.get(key) not in ("reporting ready", "reporting live", "-", "")]


def rule_flx001(fact, host):
    """Felix's health endpoint says it is not live or not ready, or nothing answers while calico-node runs."""
    health = _dp(fact).get("felix_health") or {}
    if not health.get("probed"):
        return []
    ready, live = health.get("readiness") or {}, health.get("liveness") or {}
    where = f"{health.get('host')}:{health.get('port')}"
    evidence = {"endpoint": where, "enabled": health.get("enabled"),
                "readiness": {k: ready.get(k) for k in ("status", "error", "components")},
                "liveness": {k: live.get(k) for k in ("status", "error", "components")}}
    remedy = (f"Read Felix's reporters (`curl -s http://{where}/readiness`) and calico-node's log for the one "
              "that is not ready or live (`kubectl logs -n kube-system <calico-node pod> -c calico-node | grep -iE "
              "'not (ready|live)|Reporter'`): usually the datastore or API server cannot be reached (calico#7414), "
              "RBAC (#2960), or Felix restarting over a config change; FELIX_LOGSEVERITYSCREEN=Debug shows more.")
    if live.get("ok") is False:
        bad = _not_ok(live, "liveness")
        return [finding("FLX001", "critical", host,
                        f"Felix on {host} is not live (HTTP {live.get('status')} from {where}/liveness"
                        + (f": {', '.join(bad)}" if bad else "") + "): kubelet keeps restarting calico-node",
                        evidence, remedy)]
    if ready.get("ok") is False:
        bad = _not_ok(ready, "readiness")
        return [finding("FLX001", "warning", host,
                        f"Felix on {host} is not ready (HTTP {ready.get('status')} from {where}/readiness"
                        + (f": {', '.join(bad)}" if bad else "") + "): it may not program new pods and policy",
                        evidence, remedy)]
    error = ready.get("error") or live.get("error")
    if ready.get("ok") is None and live.get("ok") is None and error:
        if error == "connection refused" and health.get("enabled") is not True:
            if health.get("enabled") is False:
                return []
            return [finding("FLX001", "info", host,
                            f"nothing answers on {where} on {host}: Felix's health endpoint is not enabled "
                            "(FELIX_HEALTHENABLED) or Felix is not running", evidence, remedy)]
        return [finding("FLX001", "warning", host,
                        f"calico-node runs on {host} but Felix's health endpoint {where} does not answer ({error}): "
                        "Felix is not running, crash-looping or hung", evidence, remedy)]
    return []


def rule_flx002(fact, host):
    """Workloads without Felix's chains, or the set its encapsulation rule needs is missing."""
    prog = _dp(fact).get("felix_programming") or {}
    if not prog.get("checked") and not prog.get("sets_missing"):
        return []
    out = []
    missing = prog.get("workloads_missing_chains") or []
    count = prog.get("workloads_missing_count") or 0
    backend = prog.get("backend")
    table = "table ip calico (filter-cali-tw-*, filter-cali-fw-*)" if backend == "nftables" else \
        "the ip filter table (cali-tw-*, cali-fw-*)"
    remedy = ("Felix has not programmed them: check Felix's health (FLX001) and its log; a restart of calico-node "
              "on this node (`kubectl delete pod -n kube-system <calico-node pod>`) makes it program the node "
              "from scratch. Traffic to a workload interface without its chains is dropped by Felix's dispatch "
              "chain (\"Unknown interface\").")
    if count:
        out.append(finding(
            "FLX002", "warning", host,
            f"{count} of {prog.get('workloads')} workloads on {host} have no Felix chains in {table}: "
            + ", ".join(m["interface"] for m in missing[:3]) + (" ..." if count > 3 else ""),
            {"backend": backend, "workloads": prog.get("workloads"), "missing": missing[:10], "count": count},
            remedy))
    if prog.get("sets_missing"):
        sets = prog["sets_missing"]
        out.append(finding(
            "FLX002", "warning", host,
            f"Felix's set {', '.join(sets)} is missing on {host} (neither an nftables set nor an ipset): the rule "
            "that admits encapsulated packets only from Calico hosts cannot work",
            {"backend": backend, "sets_missing": sets, "ipsets": prog.get("ipsets")},
            remedy))
    return out


# --- BPF001: the eBPF data plane ------------------------------------------------------------------

def rule_bpf001(fact, host):
    """BPF mode configured (or active) without its prerequisites, or configured but fallen back."""
    dp = _dp(fact)
    bpf = dp.get("bpf") or {}
    configured = _dataplane.parse_bool(_env(fact).get("BPFENABLED"))
    active = bool(bpf.get("maps"))
    if not configured and not active:
        return []
    kernel = dp.get("kernel") or {}
    problems, severity = [], "warning"
    if bpf.get("kernel_supported") is False:
        severity = "critical"
        problems.append(f"kernel {_version_text(kernel)} is older than Felix's minimum for BPF (5.3; RHEL "
                        "4.18.0-193): Felix logs \"BPF dataplane mode enabled but not supported by the kernel. "
                        "Disabling BPF mode.\"")
    if configured and not active:
        gone = not bpf.get("kube_proxy_running") and not bpf.get("kube_proxy_rules")
        if gone:
            severity = "critical"
        problems.append("BPF mode is configured (FELIX_BPFENABLED) but Felix is not in it: no maps pinned in "
                        f"{_dataplane.BPF_MAP_DIR}"
                        + (" - and kube-proxy is gone (no process, no KUBE-SERVICES rules): Services have no data "
                           "plane on this node" if gone else " (kube-proxy still serves Services)"))
    if not bpf.get("bpffs"):
        problems.append("no BPF filesystem mounted at /sys/fs/bpf: Felix mounts its own in calico-node's mount "
                        "namespace, and its maps and programs go with every calico-node restart (calico#4444)")
    if not bpf.get("btf"):
        problems.append("/sys/kernel/btf/vmlinux is missing: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF), which "
                        "some of Felix's BPF programs need (calico#8001)")
    if not bpf.get("cgroup2"):
        problems.append("no cgroup v2 mounted: connect-time load balancing needs it (Felix mounts "
                        "/run/calico/cgroup; calico#7892)")
    if not problems:
        return []
    evidence = {"configured": configured, "active": active, "kernel": _version_text(kernel), **bpf,
                "problems": problems}
    remedy = ("Before BPF mode: a kernel >= 5.3 (RHEL 4.18.0-193+) with BTF, `mount -t bpf bpffs /sys/fs/bpf` "
              "(persist it in /etc/fstab: `bpffs /sys/fs/bpf bpf defaults 0 0`), cgroup v2; then check Felix's log for "
              "\"BPF dataplane mode enabled but not supported\". While Felix is not in BPF mode, kube-proxy must "
              "run: put it back (its DaemonSet's nodeSelector, or the operator's kubeProxyManagement) or fix BPF "
              "mode first.")
    return [finding("BPF001", severity, host, f"eBPF data plane on {host}: {problems[0]}"
                    + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""), evidence, remedy)]


# --- WG001: WireGuard --------------------------------------------------------------------------

def _wg_mtu_finding(fact, host, dev, entry):
    nic = underlay(fact)
    overhead = _dataplane.OVERHEAD["wireguard-v6" if "v6" in dev else "wireguard"]
    if not nic or not nic.get("mtu") or not entry.get("mtu"):
        return []
    want = nic["mtu"] - overhead
    mtu = entry["mtu"]
    evidence = {"device": dev, "mtu": mtu, "underlay": nic["name"], "underlay_mtu": nic["mtu"], "overhead": overhead,
                "expected": want}
    param = "wireguardMTUV6" if "v6" in dev else "wireguardMTU"
    remedy = (f"Set FelixConfiguration {param} to {want} (`kubectl patch felixconfiguration default --type=merge -p "
              f"'{{\"spec\":{{\"{param}\":{want}}}}}'`), or leave it unset so Felix derives it from the host MTU; "
              "restart the pods to give them the new MTU.")
    if mtu > want and (fact.get("calico") or {}).get("mode") != "wireguard":  # SYS001 says it in WireGuard mode
        return [finding("WG001", "warning", host,
                        f"{dev} MTU {mtu} on {host} exceeds {nic['name']} MTU {nic['mtu']} minus WireGuard's "
                        f"{overhead} bytes: large packets are dropped", evidence, remedy)]
    if mtu < want:
        return [finding("WG001", "info", host,
                        f"{dev} MTU {mtu} on {host} is below {nic['name']} MTU {nic['mtu']} minus {overhead} "
                        f"({want}): the tunnel was not sized for this NIC (calico#4606)", evidence, remedy)]
    return []


def rule_wg001(fact, host):
    """WireGuard enabled without its device, a wrong MTU, peers that never (or long ago) shook hands."""
    wg = _dp(fact).get("wireguard") or {}
    devices = wg.get("devices") or {}
    enabled = _dataplane.parse_bool(_env(fact).get("WIREGUARDENABLED"))
    out = []
    if enabled and "wireguard.cali" not in devices:
        out.append(finding(
            "WG001", "warning", host,
            f"WireGuard is enabled for calico-node on {host} but wireguard.cali does not exist"
            + ("" if wg.get("module_loaded") else " (the kernel has no wireguard module loaded)"),
            {"FELIX_WIREGUARDENABLED": _env(fact).get("WIREGUARDENABLED"), "module_loaded": wg.get("module_loaded")},
            "Load the kernel's WireGuard (`modprobe wireguard`; kernel >= 5.6 or the wireguard-dkms package) and "
            "check Felix's log for the device; traffic to this node is not encrypted, and peers that expect it may "
            "drop it."))
    for dev, entry in sorted(devices.items()):
        out += _wg_mtu_finding(fact, host, dev, entry)
        dump = entry.get("dump") or {}
        now = entry.get("read_at")
        never, stale = [], []
        for p in dump.get("peers") or ():
            name = p.get("endpoint_ip") or p.get("public_key")
            if not p.get("latest_handshake"):
                if p.get("tx"):
                    never.append(name)
            elif now and now - p["latest_handshake"] > _dataplane.REJECT_AFTER:
                stale.append(f"{name} ({now - p['latest_handshake']} s ago)")
        evidence = {"device": dev, "public_key": dump.get("public_key"), "listen_port": dump.get("listen_port"),
                    "peers": len(dump.get("peers") or ()), "never_handshaken": limited(never),
                    "stale_handshakes": limited(stale)}
        remedy = (f"A peer that never completes a handshake drops what {host} sends it: check UDP "
                  f"{dump.get('listen_port') or 51820} between the nodes (FW001), and that the key {host} has for it "
                  "is the peer's own (`wg show wireguard.cali` on both; the Node's projectcalico.org/"
                  "WireguardPublicKey annotation); restarting calico-node on the peer re-publishes its key.")
        if never:
            out.append(finding("WG001", "warning", host,
                               f"{dev} on {host} has sent to {len(never)} peer(s) that never completed a handshake: "
                               + ", ".join(never[:3]), evidence, remedy, peer=never[0] if len(never) == 1 else None))
        elif stale:
            out.append(finding("WG001", "info", host,
                               f"{dev} on {host}: the latest handshake with {len(stale)} peer(s) is older than "
                               f"{_dataplane.REJECT_AFTER} s (idle, or no longer reachable): " + ", ".join(stale[:3]),
                               evidence, remedy))
    return out


def wireguard_fleet_findings(facts_by_host, registered_keys=None):
    """Cross-node WireGuard keys (for the fleet audit): each node's peers must carry the other node's own
    public key (its ``wg show`` interface key), and that key must be the one the datastore registers
    (``registered_keys``: {host: key}, from the Node's projectcalico.org/WireguardPublicKey)."""
    own, by_ip = {}, {}
    for host, fact in facts_by_host.items():
        if not isinstance(fact, dict):
            continue
        dump = ((((_dp(fact).get("wireguard") or {}).get("devices") or {}).get("wireguard.cali") or {}).get("dump")
                or {})
        if dump.get("public_key"):
            own[host] = dump["public_key"]
        ip = node_ip(fact)
        if ip:
            by_ip[str(ip)] = host
    out = []
    for host, key in sorted((registered_keys or {}).items()):
        if host in own and key and own[host] != key:
            out.append(finding("WG001", "critical", host,
                               f"{host}'s WireGuard key is not the one the datastore registers: every peer encrypts "
                               "to the registered key, which it cannot decrypt",
                               {"device_key": own[host], "registered_key": key},
                               "Restart calico-node on it so Felix publishes its key again (the Node's "
                               "projectcalico.org/WireguardPublicKey annotation / status.wireguardPublicKey)."))
    for host, fact in sorted(facts_by_host.items()):
        if not isinstance(fact, dict):
            continue
        dump = ((((_dp(fact).get("wireguard") or {}).get("devices") or {}).get("wireguard.cali") or {}).get("dump")
                or {})
        for p in dump.get("peers") or ():
            other = by_ip.get(p.get("endpoint_ip") or "")
            if other and other in own and p.get("public_key") != own[other]:
                out.append(finding("WG001", "critical", host,
                                   f"{host} encrypts to {other} with a key that is not {other}'s: {other} drops "
                                   "everything it sends", {"peer_key": p.get("public_key"), "peer_own_key": own[other],
                                                           "endpoint": p.get("endpoint")},
                                   f"Restart calico-node on {other} so its key is published again, then check "
                                   f"`wg show wireguard.cali` on {host} lists {own[other]}.", peer=other))
    return out


# --- MTU002: the MTU file ---------------------------------------------------------------------

_TUNNEL_ENCAP = {"tunl0": "ipip", "vxlan.calico": "vxlan", "vxlan-v6.calico": "vxlan-v6", "wireguard.cali": "wireguard",
                 "wg-v6.cali": "wireguard-v6"}


def rule_mtu002(fact, host):
    """/var/lib/calico/mtu (what new pods get) against the tunnels' real MTU and the interface Felix's
    mtuIfacePattern selects."""
    dp = _dp(fact)
    mf = dp.get("mtu_file") or {}
    if not mf.get("exists") or mf.get("value") is None:
        return []
    links = fact.get("links") or []
    value = mf["value"]
    tunnels = {lk["name"]: lk.get("mtu") for lk in links if lk["name"] in _TUNNEL_ENCAP and lk.get("mtu")}
    nic = underlay(fact)
    pattern = _env(fact).get("MTUIFACEPATTERN")
    host_mtu, matched = _dataplane.felix_host_mtu(links, pattern)
    limit_name, limit = (min(tunnels.items(), key=lambda kv: kv[1]) if tunnels
                         else ((nic["name"], nic.get("mtu")) if nic else (None, None)))
    evidence = {"mtu_file": value, "tunnels": tunnels, "underlay": nic["name"] if nic else None,
                "underlay_mtu": nic.get("mtu") if nic else None, "mtu_iface_pattern": pattern or
                _dataplane.MTU_IFACE_PATTERN, "felix_host_mtu": host_mtu,
                "pattern_matches": limited(f"{m['name']} {m['mtu']}{'' if m['up'] else ' (down)'}" for m in matched)}
    wrong_iface = bool(nic and nic.get("mtu") and host_mtu > nic["mtu"])
    if wrong_iface:
        evidence["wrong_interface"] = (f"mtuIfacePattern selects an MTU of {host_mtu}, but {nic['name']}, which "
                                       f"carries the node IP, has {nic['mtu']}")
    remedy = ("Make Felix size the MTU from the right NIC: FelixConfiguration mtuIfacePattern anchored to it "
              f"(`kubectl patch felixconfiguration default --type=merge -p '{{\"spec\":{{\"mtuIfacePattern\":"
              f"\"^{nic['name'] if nic else 'eth0'}$\"}}}}'`) or set the MTU explicitly (vxlanMTU / ipipMTU / "
              "wireguardMTU, or the operator's calicoNetwork.mtu); Felix rewrites /var/lib/calico/mtu when it "
              "restarts, and pods get the new MTU when they are re-created.")
    if limit and value > limit:
        return [finding("MTU002", "warning", host,
                        f"/var/lib/calico/mtu on {host} says {value}, above {limit_name}'s MTU {limit}: new pods get "
                        "an MTU their packets cannot cross the node with (large packets are dropped)"
                        + (" - auto-MTU read the wrong interface" if wrong_iface else ""), evidence, remedy)]
    if wrong_iface:
        return [finding("MTU002", "warning", host,
                        f"Felix's mtuIfacePattern on {host} sizes the MTU from another interface ({host_mtu}) than "
                        f"{nic['name']} ({nic['mtu']}): at its next start Felix writes a pod MTU too large for it",
                        evidence, remedy)]
    if limit and value < limit:
        return [finding("MTU002", "info", host,
                        f"/var/lib/calico/mtu on {host} says {value}, below {limit_name}'s MTU {limit}: pods use "
                        "smaller packets than they could", evidence, remedy)]
    return []


# --- the probe matrix against the firewall walk (fleet) ---------------------------------------

def probe_agreement(findings, probes):
    """FW001 findings against the probe matrix, for the fleet audit (``probes``: {src: {dst: {"ok", "loss",
    ...}}}, hosts by inventory name). Each FW001 with a peer gets ``evidence.probes`` (the probes from
    the peer to it and back) and ``probes_disagree`` when they pass although the walk found a drop (a
    rule it could not judge for certain). A pair whose probes fail with no FW001 on either side gets an
    info FW001 on the probed host: the drop is outside the nodes (a security group, a firewall between
    them). Returns (findings, added); the findings are changed in place.
    """
    if not isinstance(probes, dict) or not probes:
        return findings, []
    blocked = set()
    for f in findings:
        if f.get("id") != "FW001":
            continue
        host, peer = f.get("host"), f.get("peer")
        if peer:
            blocked |= {(host, peer), (peer, host)}
            said = {"from_peer": (probes.get(peer) or {}).get(host), "to_peer": (probes.get(host) or {}).get(peer)}
            f.setdefault("evidence", {})["probes"] = said
            if all((s or {}).get("ok") for s in said.values() if s is not None) and any(said.values()):
                f["evidence"]["probes_disagree"] = ("the probes between them pass: the drop found may not apply "
                                                    "(a rule the walk could not judge for certain)")
    added = []
    for src, row in sorted(probes.items()):
        for dst, probe in sorted((row or {}).items()):
            if not isinstance(probe, dict) or probe.get("ok") is not False or (src, dst) in blocked:
                continue
            back = (probes.get(dst) or {}).get(src) or {}
            if src < dst or back.get("ok") is not False:
                added.append(finding("FW001", "info", dst,
                                     f"overlay probes from {src} to {dst} fail, but neither node's host firewall "
                                     "drops the overlay: look at the network between them (a cloud security group "
                                     "or firewall that does not allow the overlay's protocol)",
                                     {"probe": probe, "reverse": back or None},
                                     "Allow Calico's flows between the nodes outside them too (VXLAN UDP 4789, "
                                     "IPIP = IP protocol 4, not 94; calico#1215).", peer=src))
                blocked |= {(src, dst), (dst, src)}
    return findings, added


DATAPLANE_RULES = (rule_fw001, rule_off001, rule_ct001, rule_flx001, rule_flx002, rule_bpf001, rule_wg001, rule_mtu002)


def dataplane_findings(fact, host=None):
    """Every rule of this module over one fact."""
    host = host or fact.get("hostname")
    return [f for rule in DATAPLANE_RULES for f in rule(fact, host)]
