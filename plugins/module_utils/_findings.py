# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The node-local rules of the incident catalogue (DESIGN §1, ``_catalogue``) over one ``calico_node`` fact.

A finding is a ``_contract.Finding``: evidence quotes the facts that triggered it, remedy says exactly what to change.
Each rule is a small function ``rule(fact, host) -> [finding]``; a healthy node gives no finding
of warning or above. Pure: the fact in, findings out.
"""

from __future__ import annotations

import fnmatch
import ipaddress

from ansible_collections.netdoctor.calico.plugins.module_utils import (
    _autodetect,
    _findings_dataplane,
    _findings_host,
    _findings_path,
    _nm_config,
)
from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import (
    EVIDENCE_LIMIT,
    finding,
    limited,
    sort_findings,
)
from ansible_collections.netdoctor.calico.plugins.module_utils._contract import (
    calico_node_env,
    calico_running,
)

# --- fact helpers ----------------------------------------------------------------------------


def _ip(value):
    """'192.0.2.11/24' or '192.0.2.11' -> ip_address; None for anything else (autodetect, none, '')."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return ipaddress.ip_interface(value.strip()).ip
    except ValueError:
        return None


def _in_use_result(fact):
    auto = fact.get("autodetection") or {}
    method = auto.get("method_in_use") or ""
    return next((r for r in auto.get("results") or ()
                 if (r.get("method") or "") == method and r.get("version", 4) == 4), None)


def _vxlan_local(fact):
    """vxlan.calico's local address: Felix sets it to the node's registered IPv4 address."""
    vxlan = (fact.get("calico") or {}).get("vxlan") or {}
    return vxlan.get("local") if vxlan.get("device") == "vxlan.calico" else None


def _node_ip(fact):
    """The node's Calico IP as far as this node knows: BIRD's router id, else the VXLAN tunnel's local
    address, else the replayed method's pick."""
    bird_id = _ip((fact.get("bird") or {}).get("router_id"))
    return bird_id or _ip(_vxlan_local(fact)) or _ip((_in_use_result(fact) or {}).get("address"))


def _link_with_address(fact, ip):
    for link in fact.get("links") or ():
        if any(_ip(a.get("address")) == ip for a in link.get("addresses") or ()):
            return link
    return None


# --- NM001 -----------------------------------------------------------------------------------

def _calico_device(name):
    return any(fnmatch.fnmatchcase(name or "", p) for p in _nm_config.CALICO_DEVICES)


def rule_nm001(fact, host):
    """NetworkManager's effective config (or a networkd .network) leaves Calico devices managed."""
    nm = fact.get("network_manager") or {}
    out = []
    if nm.get("installed"):
        undetermined = set(nm.get("undetermined") or ())
        patterns = [p for p in nm.get("managed_calico_devices") or () if p not in undetermined]
        live = [d for d in nm.get("devices") or ()
                if _calico_device(d.get("device")) and d.get("state") != "unmanaged"]
        present = [link["name"] for link in fact.get("links") or ()
                   if any(fnmatch.fnmatchcase(link["name"], p) for p in patterns)]
        if patterns or live:
            out.append(_nm_finding(nm, host, patterns, live, present))
    out += _networkd_findings(fact, host)
    return out


def _nm_finding(nm, host, patterns, live, present):
    live_names = [f"{d['device']} ({d.get('state')})" for d in live]
    if not nm.get("running"):
        severity = "info"
        summary = (f"NetworkManager is installed but not running on {host}; started, it would manage "
                   f"{', '.join(patterns)}")
    elif live or present:
        severity = "critical"
        summary = (f"NetworkManager manages Calico devices on {host}: "
                   f"{', '.join(live_names or present)} (it can tear them down and drop pod routes)")
    else:
        severity = "warning"
        summary = (f"NetworkManager's configuration on {host} leaves {', '.join(patterns)} managed; none exists "
                   "now, but a mode change (VXLAN, WireGuard, IPv6) would create one")
    overrides = [h for h in nm.get("history") or () if h.get("op") == "="]
    evidence = {"running": nm.get("running"), "managed_calico_devices": patterns,
                "managed_examples": nm.get("managed_examples"), "present_links": limited(present),
                "live_devices_not_unmanaged": limited(live_names),
                "effective_unmanaged_devices": nm.get("unmanaged_devices"),
                "last_replacing_file": overrides[-1].get("file") if overrides else None,
                "files": nm.get("files")}
    remedy = ("Create /etc/NetworkManager/conf.d/calico.conf containing\n" + _nm_config.render_dropin()
              + "then run `nmcli general reload conf` (a reload: restarting NetworkManager over SSH can cut the "
              "session) and check `nmcli -t -f DEVICE,STATE device` shows the Calico devices `unmanaged`.")
    if overrides:
        remedy += (f" {overrides[-1].get('file')} sets `unmanaged-devices=`, which replaces the lists read before it:"
                   " NetworkManager reads each directory's files in byte order of their names, so name the drop-in"
                   " to sort after it (e.g. /etc/NetworkManager/conf.d/zz-calico.conf sorts after digits and"
                   " lower-case names such as rke2-canal.conf), or change that file's `=` to `+=`.")
    return finding("NM001", severity, host, summary, evidence, remedy)


def _networkd_findings(fact, host):
    # A file with [Link] Unmanaged=yes protects what it matches: that is the fix, not the fault.
    matching = [m for m in (fact.get("networkd") or {}).get("matching_calico") or () if not m.get("unmanaged")]
    certain = [m for m in matching if m.get("devices")]
    out = []
    for entries, severity, verb in ((certain, "warning", "match"),
                                    ([m for m in matching if not m.get("devices")], "info", "may match")):
        if not entries:
            continue
        files = ", ".join(str(m.get("file")) for m in entries)
        out.append(finding(
            "NM001", severity, host,
            f"systemd-networkd .network file(s) on {host} {verb} Calico devices: {files}",
            {"matching_calico": limited(entries)},
            f"Narrow the [Match] section of {files} to the host NICs (e.g. Name=eth0 or Driver=...), or add a "
            "file matching cali*/tunl*/vxlan.calico with [Link] Unmanaged=yes that sorts before it; restarting "
            "systemd-networkd drops pod connections, so apply it in a maintenance window (`networkctl reload`).",
        ))
    return out


# --- AD001 / AD002 (node-local parts; the fleet compares nodes) -------------------------------

def _candidate_lines(result):
    """The candidates up to the winner, as `iface address: reason` lines (why earlier ones lost)."""
    lines = []
    for c in result.get("candidates") or ():
        lines.append(f"{c.get('interface')} {c.get('address') or '-'}: {c.get('reason')}")
        if c.get("taken"):
            break
    return limited(lines)


def _method_remedy(fact, result, target):
    """Set a method that picks ``target`` on this node (verified here only), or pin the IP."""
    auto = fact.get("autodetection") or {}
    rec = _autodetect.recommend_method(
        [{"host": fact.get("hostname"), "snapshot": _autodetect.snapshot_from_fact_links(fact.get("links")),
          "intended": str(target)}],
        calico_version=auto.get("calico_version") or result.get("calico_version"))
    if not rec["method"]:
        return (f"No autodetection method picks {target} on this node ({rec['reason']}); pin it: set the calico-node "
                f"env IP={target} for this node, or move the conflicting address.")
    method = rec["method"]
    return (f"Set IP_AUTODETECTION_METHOD={method} (replayed here: it picks {target}): "
            f"`kubectl set env daemonset/calico-node -n kube-system IP_AUTODETECTION_METHOD={method}`, or with the "
            f"operator Installation.spec.calicoNetwork.nodeAddressAutodetectionV4: {_autodetect.operator_form(method)}."
            " It is verified on this node only: run the fleet audit for one method that fits every node.")


_WHEN_REDETECTED = {
    "autodetect": "within 60 s (IP=autodetect re-detects)",
    "": "when its Node is re-created (IP is empty: calico-node keeps the stored address until then)",
    None: "at the next detection (calico-node start with IP=autodetect, the manifest default)",
}


def rule_ad(fact, host):
    """The method in use, replayed: invalid, no address, or not the registered / intended address."""
    ip_env = calico_node_env(fact).get("IP")
    if _ip(ip_env) or ip_env == "none":
        return []  # IP=<address> or IP=none: calico-node does not autodetect IPv4
    result = _in_use_result(fact)
    if result is None:
        return []
    auto = fact.get("autodetection") or {}
    method = result.get("method") or "first-found"
    evidence = {"method_in_use": method, "calico_version": result.get("calico_version"), "ip_env": ip_env,
                "log": result.get("log"), "candidates": _candidate_lines(result)}
    target = _ip(auto.get("intended")) or _node_ip(fact)
    if not result.get("valid"):
        remedy = ("Fix the method string: calico-node accepts first-found, interface=REGEX[,REGEX], "
                  "skip-interface=REGEX[,REGEX], cidr=CIDR[,CIDR], can-reach=DEST and kubernetes-internal-ip, and "
                  "terminates on anything else. ")
        return [finding("AD001", "critical", host,
                        f"calico-node on {host} rejects IP_AUTODETECTION_METHOD={method!r}: {result.get('error')}",
                        evidence, remedy + (_method_remedy(fact, result, target) if target else ""))]
    if not result.get("address"):
        return [finding("AD001", "critical", host,
                        f"{method} finds no IPv4 address on {host}: {result.get('error')}", evidence,
                        "calico-node fails to start without an existing node address. "
                        + (_method_remedy(fact, result, target) if target
                           else "Choose a method that matches this node's interfaces, or pin IP=<address>."))]
    predicted = _ip(result["address"])
    evidence.update(predicted=result["address"], interface=result.get("interface"))
    out = []
    # (what, where the fleet audit's evidence says it came from, address)
    registered = [(what, source, _ip(value)) for what, source, value in
                  (("BIRD router id", "bird_router_id", (fact.get("bird") or {}).get("router_id")),
                   ("VXLAN tunnel local address", "vxlan_local", _vxlan_local(fact)),
                   ("registered node IP", "registered", auto.get("registered"))) if _ip(value)]
    moved = [(what, ip) for what, _source, ip in registered if ip != predicted]
    if moved:
        evidence.update({what: str(ip) for what, _source, ip in registered})
        evidence["registered_source"] = next(src for what, src, _addr in registered if what == moved[0][0])
        when = _WHEN_REDETECTED.get(ip_env, _WHEN_REDETECTED[None])
        out.append(finding(
            "AD002", "critical" if ip_env == "autodetect" else "warning", host,
            f"{method} on {host} now picks {result['address']} ({result.get('interface')}), but the "
            f"{moved[0][0]} is {moved[0][1]}: the node IP changes {when}",
            dict(evidence), _method_remedy(fact, result, moved[0][1])))
    intended = _ip(auto.get("intended"))
    if intended and intended != predicted and all(ip != intended for _w, ip in moved):
        evidence["intended"] = str(intended)
        out.append(finding(
            "AD001", "critical", host,
            f"{method} on {host} picks {result['address']} ({result.get('interface')}), not its intended IP {intended}",
            evidence, _method_remedy(fact, result, intended)))
    return out


# --- SYS001 ----------------------------------------------------------------------------------

def rule_ip_forward(fact, host):
    """IPv4 forwarding off: the node routes nothing for its pods."""
    value = (fact.get("sysctls") or {}).get("net.ipv4.ip_forward")
    if value is None or int(value) != 0:
        return []
    return [finding("SYS001", "critical", host, f"net.ipv4.ip_forward=0 on {host}: it routes no pod traffic",
                    {"net.ipv4.ip_forward": value},
                    "ansible.posix.sysctl: name=net.ipv4.ip_forward value=1 sysctl_file=/etc/sysctl.d/90-calico.conf "
                    "(Felix sets it with IPForwarding=Enabled; find what resets it).")]


_HOST_IFACES = _autodetect.compile_go_regex_list(_autodetect.EXCLUDE_ANCHORED)


def host_interfaces(fact):
    """Host NICs with a global IPv4 address (not Calico, bridge, veth, loopback... devices)."""
    out = {}
    for link in fact.get("links") or ():
        if _HOST_IFACES.search(link["name"]):
            continue
        addrs = [f"{a['address']}/{a['prefixlen']}" for a in link.get("addresses") or ()
                 if a.get("family") == 4 and _autodetect.is_global_unicast(ipaddress.ip_address(a["address"]))]
        if addrs:
            out[link["name"]] = addrs
    return out


def rule_rp_filter(fact, host):
    """Strict reverse-path filtering on a multi-homed node drops asymmetric traffic."""
    sysctls = fact.get("sysctls") or {}
    nics = host_interfaces(fact)
    if len(nics) < 2:
        return []
    all_value = sysctls.get("net.ipv4.conf.all.rp_filter") or 0
    per_if = sysctls.get("interfaces") or {}
    strict = {}
    for name, addrs in nics.items():
        own = (per_if.get(name) or {}).get("rp_filter")
        effective = max(int(all_value), int(own or 0))  # the kernel uses max(all, interface)
        if effective == 1:
            strict[name] = {"rp_filter": own, "effective": effective, "addresses": addrs}
    if not strict:
        return []
    names = sorted(strict)
    settings = ["net.ipv4.conf.all.rp_filter=2"] + [f"net.ipv4.conf.{n}.rp_filter=2" for n in names]
    return [finding("SYS001", "warning", host,
                    f"strict rp_filter on multi-homed {host} ({', '.join(names)}): asymmetric replies are dropped",
                    {"net.ipv4.conf.all.rp_filter": all_value, "strict_interfaces": strict,
                     "host_interfaces": nics},
                    "Use loose mode (2): ansible.posix.sysctl for " + ", ".join(settings)
                    + " in /etc/sysctl.d/90-calico.conf (all=1 forces strict on every interface).")]


def rule_proxy_arp(fact, host):
    """proxy_arp off on a cali* interface: the pod's 169.254.1.1 gateway gets no ARP answer."""
    per_if = (fact.get("sysctls") or {}).get("interfaces") or {}
    links = {link["name"] for link in fact.get("links") or ()}
    bad = {name: values.get("proxy_arp") for name, values in sorted(per_if.items())
           if name.startswith("cali") and name in links and values.get("proxy_arp") not in (None, 1)}
    if not bad:
        return []
    first = next(iter(bad))
    return [finding("SYS001", "critical", host,
                    f"proxy_arp is off on {len(bad)} workload interface(s) on {host}: their pods cannot reach "
                    "169.254.1.1, their gateway",
                    {"proxy_arp": dict(list(bad.items())[:EVIDENCE_LIMIT]), "count": len(bad)},
                    f"`sysctl -w net.ipv4.conf.{first}.proxy_arp=1` for each listed interface (Felix and the CNI "
                    "plugin set it on every cali* interface; a sysctl.d file or tool that resets conf.*.proxy_arp "
                    "is undoing them - remove it).")]


_OVERHEAD = {"tunl0": 20, "vxlan.calico": 50, "vxlan-v6.calico": 70, "wireguard.cali": 60, "wg-v6.cali": 80}
# Felix's MTUIfacePattern default: the NICs whose smallest MTU is the host MTU.
_FELIX_MTU_IFACES = _autodetect.compile_go_regex_list(["^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"])


def _nic_for_mtu(fact, tunnel):
    """(name, MTU) of the NIC under the tunnel: VXLAN's parent, else the NIC holding the node IP, else
    Felix's host MTU (smallest oper-up link matching its pattern); None when unknown."""
    links = fact.get("links") or []
    parent = ((fact.get("calico") or {}).get("vxlan") or {}).get("parent")
    if tunnel["device"] in ("vxlan.calico", "vxlan-v6.calico") and parent:
        link = next((lk for lk in links if lk["name"] == parent), None)
        return (parent, link.get("mtu")) if link else None
    node_ip = _node_ip(fact)
    link = _link_with_address(fact, node_ip) if node_ip else None
    if link:
        return link["name"], link.get("mtu")
    up = [lk for lk in links if _FELIX_MTU_IFACES.search(lk["name"]) and lk.get("operstate") in ("UP", "UNKNOWN")]
    if not up:
        return None
    smallest = min(up, key=lambda lk: lk.get("mtu") or 0)
    return smallest["name"], smallest.get("mtu")


def rule_tunnel_mtu(fact, host):
    """Tunnel MTU above the NIC MTU minus the encapsulation overhead."""
    tunnel = (fact.get("calico") or {}).get("tunnel") or {}
    overhead = _OVERHEAD.get(tunnel.get("device"))
    if not overhead or not tunnel.get("mtu"):
        return []
    nic = _nic_for_mtu(fact, tunnel)
    if not nic or not nic[1] or tunnel["mtu"] <= nic[1] - overhead:
        return []
    name, mtu = nic
    param = {"tunl0": "ipipMTU", "wireguard.cali": "wireguardMTU", "wg-v6.cali": "wireguardMTUV6",
             "vxlan-v6.calico": "vxlanMTUV6"}.get(tunnel["device"], "vxlanMTU")
    return [finding("SYS001", "warning", host,
                    f"{tunnel['device']} MTU {tunnel['mtu']} on {host} exceeds {name} MTU {mtu} minus the "
                    f"{overhead}-byte encapsulation: large packets are fragmented or dropped",
                    {"tunnel": tunnel, "nic": name, "nic_mtu": mtu, "overhead": overhead},
                    f"Set FelixConfiguration {param} to {mtu - overhead} or less (`calicoctl patch felixconfiguration "
                    f"default -p '{{\"spec\":{{\"{param}\":{mtu - overhead}}}}}'`), then restart the pods so their "
                    "veths take the new MTU.")]


# --- HOST001 ---------------------------------------------------------------------------------

def rule_hosts(fact, host):
    """The hostname does not resolve through /etc/hosts (seed 002's fix)."""
    identity = fact.get("identity") or {}
    if identity.get("hosts_resolves_hostname") is not False:
        return []
    node_ip = _node_ip(fact)
    line = f"{node_ip or '<node IP>'} {fact.get('hostname') or host}"
    return [finding("HOST001", "warning", host,
                    f"{host} cannot resolve its own hostname {fact.get('hostname')!r} through /etc/hosts",
                    {"hostname": fact.get("hostname"), "hosts_resolves_hostname": False},
                    f"Add `{line}` to /etc/hosts (ansible.builtin.lineinfile path=/etc/hosts line='{line}').")]


def rule_node_names(fact, host):
    """The CNI config's nodename, /var/lib/calico/nodename and calico-node's NODENAME disagree."""
    identity = fact.get("identity") or {}
    names = {
        "CNI config nodename": (identity.get("cni") or {}).get("nodename"),
        "/var/lib/calico/nodename": identity.get("nodename_file"),
        "calico-node NODENAME": calico_node_env(fact).get("NODENAME"),
    }
    known = {source: value.strip() for source, value in names.items() if isinstance(value, str) and value.strip()}
    if len(set(known.values())) < 2:
        return []
    cni_file = (identity.get("cni") or {}).get("file") or "/etc/cni/net.d/10-calico.conflist"
    wanted = known.get("calico-node NODENAME") or known.get("/var/lib/calico/nodename")
    return [finding("HOST001", "critical", host,
                    f"node names disagree on {host}: " + ", ".join(f"{s} = {v!r}" for s, v in known.items()),
                    {"names": known, "hostname": fact.get("hostname")},
                    f"Use one name: set \"nodename\": \"{wanted}\" in {cni_file} (or remove it so the CNI plugin "
                    f"reads /var/lib/calico/nodename) and make calico-node's NODENAME {wanted}; pods created under "
                    "the other name belong to another Calico node and get no routes.")]


# --- BGP001 ----------------------------------------------------------------------------------

def _established(peer):
    if "established" in peer:
        return bool(peer["established"])
    return (peer.get("info") or "").startswith("Established")


def rule_bgp(fact, host):
    """Node-local: BGP peers that are not Established, or BIRD unreadable where it should run."""
    bird = fact.get("bird") or {}
    mode = (fact.get("calico") or {}).get("mode")
    socket = bird.get("socket") or "/var/run/calico/bird.ctl"
    if not bird.get("available"):
        if _findings_path.bird_dead(fact):
            return []  # BIRD001 (_findings_path) names the cause; its peers' BGP001s fold under it
        if mode in ("bgp", "ipip") and (fact.get("identity") or {}).get("calico_node"):
            return [finding("BGP001", "info", host,
                            f"BIRD's control socket on {host} could not be read, so BGP sessions were not checked",
                            {"socket": bird.get("socket"), "error": bird.get("error"), "mode": mode},
                            f"Check that BIRD runs in calico-node: `birdcl -s {socket} show status`.")]
        return []
    peers = bird.get("peers") or []
    down = [p for p in peers if not _established(p)]
    severity = "critical" if len(down) == len(peers) else "warning"
    firewall = fact.get("firewall") or {}
    out = []
    for p in down:
        address = p.get("address")
        drops = (firewall.get("blocking") or {}).get(address) or []
        evidence = {"peer": {k: p.get(k) for k in ("name", "address", "type", "state", "since", "info", "last_error")},
                    "router_id": bird.get("router_id"), "established": len(peers) - len(down), "peers": len(peers)}
        if firewall.get("checked") and address in (firewall.get("peers") or ()):
            evidence["firewall"] = {"checked": True, "drops": drops}
        if drops:
            where = "; ".join(f"{d.get('family')} {d.get('table')} {d.get('chain')}: `{d.get('rule')}` drops "
                              f"{', '.join(d.get('packets') or ())}" for d in drops[:3])
            remedy = (f"{host}'s own firewall drops BGP with {address} ({where}). Let TCP 179 with the Calico nodes "
                      "through (the repair does it with repair_bgp_firewall=true) and make it permanent in the "
                      "firewall's configuration.")
        else:
            checked = ("; this node's nftables ruleset lets it through, so look at the peer's firewall and the "
                       "network between" if "firewall" in evidence else "")
            remedy = (f"Check TCP 179 between {host} and {address} (`nc -zv {address} 179`{checked}; the repair "
                      "lets it through a host firewall that drops it with repair_bgp_firewall=true), that the peer "
                      f"is that node's intended IP and {bird.get('router_id')} is this node's (AD001), and the "
                      f"session (`birdcl -s {socket} show protocols all {p.get('name')}`).")
        out.append(finding(
            "BGP001", severity, host,
            f"BGP session {p.get('name')} from {host} to {address} is not Established "
            f"({' '.join(str(v) for v in (p.get('state'), p.get('info')) if v)})"
            + (" - no peer is Established, so calico-node is not Ready" if severity == "critical" else "")
            + (f" - {host}'s firewall drops it" if drops else ""),
            evidence, remedy, peer=address))
    return out


# --- RT001 (what one node shows alone) --------------------------------------------------------

def rule_local_routes(fact, host):
    """Routes via this node itself or into its own blocks (seed 001 case 1)."""
    suspects = (fact.get("routes") or {}).get("suspect") or []
    if not suspects:
        return []
    quoted = [{"route": s["text"], "reasons": s["reasons"]} for s in suspects]
    dels = "; ".join(f"ip route del {s['text']}" for s in suspects[:EVIDENCE_LIMIT])
    return [finding(
        "RT001", "warning", host,
        f"{len(suspects)} route(s) on {host} point back into this node: " + ", ".join(
            s["text"] for s in suspects[:3]) + (" ..." if len(suspects) > 3 else ""),
        {"routes": limited(quoted), "count": len(suspects)},
        f"Fix the cause first (AD001/NM001), then `{dels}`: BIRD re-adds the right route (via the owner's node IP "
        "dev tunl0 onlink) within seconds, or add it yourself with `ip route replace <block> via <owner node IP> dev "
        "tunl0 proto bird onlink`; the fleet audit names each block's owner.")]


NODE_RULES = (rule_nm001, rule_ad, rule_ip_forward, rule_rp_filter, rule_proxy_arp, rule_tunnel_mtu, rule_hosts,
              rule_node_names, rule_bgp, rule_local_routes, _findings_host.rule_host,
              *_findings_dataplane.DATAPLANE_RULES, *_findings_path.PATH_RULES)


def node_findings(fact):
    """Every node-local rule over one ``calico_node`` fact; worst first. A host where Calico does not
    run gets one info finding instead: its settings are the preflight role's pre-install checks."""
    host = fact.get("hostname")
    if not calico_running(fact):
        return [finding("NOCAL001", "info", host, f"Calico is not running on {host}: no calico-node, no Calico "
                        "device, route or BIRD socket; nothing of Calico's was audited here",
                        {"calico_node": None, "mode": (fact.get("calico") or {}).get("mode"),
                         "bird_socket": (fact.get("bird") or {}).get("error")},
                        "Nothing to do if the host is not meant to run Calico (a bastion, a node not joined yet); "
                        "before installing, run netdoctor.calico.harden on it. Otherwise check that calico-node is "
                        "scheduled there (kubectl -n calico-system get pods -o wide).")]
    return sort_findings([f for rule in NODE_RULES for f in rule(fact, host)])
