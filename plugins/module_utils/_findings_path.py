# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Node rules over what the data plane IS (issue 12; the fact's ``path`` part, ``_pathstate``):
WL001 (a workload's /32 route or veth), PBR001 (a rule in front of main diverts Calico traffic),
MTU003 (pods' MTU + overhead > underlay MTU) and BIRD001 (BIRD dead where it must run). Pure."""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.module_utils._catalogue import finding, limited

# bird_facts' error text when nothing listens: the socket file is gone, or nobody accepts on it.
BIRD_DEAD_ERRORS = ("FileNotFoundError", "ConnectionRefusedError", "No such file", "Connection refused")


def _path(fact):
    return fact.get("path") or {}


def rule_wl001(fact, host):
    state = _path(fact).get("workloads") or {}
    missing, down = state.get("missing_routes") or [], state.get("down") or []
    out = []
    if missing:
        known = [w for w in missing if w.get("ip")]
        cmds = "; ".join(f"ip route replace {w['ip']}/32 dev {w['interface']} scope link" for w in known[:5])
        names = ", ".join(f"{w['interface']} ({w.get('ip') or 'pod IP unknown'})" for w in missing[:5])
        out.append(finding(
            "WL001", "critical", host,
            f"{len(missing)} workload interface(s) on {host} have no /32 route, so their pods receive nothing: {names}"
            + (" ..." if len(missing) > 5 else ""),
            {"missing_routes": limited(missing), "count": len(missing), "interfaces": state.get("interfaces")},
            (f"Restore the route{'s' if len(known) > 1 else ''} as the CNI plugin and Felix program "
             f"{'them' if len(known) > 1 else 'it'}: `{cmds}` (netdoctor.calico.calico_routes does it from the pod's "
             "permanent neighbour entry). " if known else "")
            + ("The pod IP of " + ", ".join(w["interface"] for w in missing if not w.get("ip"))
               + " is unknown here (no neighbour entry): restart the pod, or calico-node, so Felix programs it. "
               if len(known) < len(missing) else "")
            + "Then find what deletes them (a script, NetworkManager, systemd-networkd's ManageForeignRoutes)."))
    if down:
        names = ", ".join(f"{w['interface']} ({w['ip']})" for w in down[:5])
        out.append(finding(
            "WL001", "critical", host,
            f"{len(down)} workload veth(s) on {host} are down: {names}",
            {"down": limited(down), "count": len(down)},
            "Bring them up (`ip link set <caliX> up`) and find what set them down; Felix and the CNI plugin leave "
            "them up."))
    return out


def rule_pbr001(fact, host):
    policy = _path(fact).get("policy") or {}
    diverted = policy.get("diverted") or []
    if not diverted:
        return []
    tables = sorted({str(d.get("table")) for d in diverted if d.get("table") is not None})
    rules = policy.get("rules") or []
    suspects = [r for r in rules if str(r.get("table")) in tables] or rules
    shown = []
    for d in diverted[:5]:
        lookup = d.get("lookup")
        if lookup is None:
            shown.append(f"{d['dst']} ({d['what']}): no route (unreachable/prohibit/blackhole)")
        else:
            via = f" via {lookup.get('gateway')}" if lookup.get("gateway") else ""
            shown.append(f"{d['dst']} ({d['what']}): table {lookup.get('table')}{via} dev {lookup.get('dev')}")
    rule_text = "; ".join(
        " ".join(str(x) for x in (f"pref {r.get('priority')}", f"from {r['src']}" if r.get("src") else "",
                                  f"to {r['dst']}" if r.get("dst") else "", f"iif {r['iif']}" if r.get("iif") else "",
                                  f"fwmark {r['fwmark']}" if r.get("fwmark") else "", f"lookup {r.get('table')}")
                 if x) for r in suspects[:5])
    return [finding(
        "PBR001", "critical", host,
        f"policy routing on {host} sends {len(diverted)} Calico destination(s) through another table than main: "
        + "; ".join(shown[:3]),
        {"diverted": limited(diverted), "count": len(diverted), "rules": limited(suspects), "checked":
         policy.get("checked")},
        f"The kernel looks these up in {', '.join('table ' + t for t in tables) or 'no table (no route)'} before "
        f"main, where Calico's routes are. Remove or narrow the rule ({rule_text}: `ip rule del pref <N>`), or make "
        "that table route Calico's blocks and peers as main does. The repair leaves rules Calico does not own alone.")]


def rule_mtu003(fact, host):
    mtu = _path(fact).get("mtu") or {}
    pod, underlay, overhead = mtu.get("pod_mtu"), mtu.get("underlay_mtu"), mtu.get("overhead")
    if not pod or not underlay or overhead is None or pod + overhead <= underlay:
        return []
    tunnel_mtu = mtu.get("tunnel_mtu")
    if tunnel_mtu and tunnel_mtu > underlay - overhead:
        return []  # SYS001 (tunnel MTU over the NIC's) says it already
    want = underlay - overhead
    return [finding(
        "MTU003", "critical", host,
        f"pods on {host} send up to {pod} bytes, but {mtu.get('underlay')} carries only {underlay}"
        + (f" (minus {overhead} for {mtu.get('mode')})" if overhead else "")
        + ": every packet larger than that between its pods and other nodes is dropped",
        {**{k: mtu.get(k) for k in ("mode", "pod_mtu", "pod_interfaces", "mtu_file", "tunnel", "tunnel_mtu",
                                    "underlay", "underlay_mtu", "overhead")}, "fits": want},
        f"Restore {mtu.get('underlay')}'s MTU to at least {pod + overhead} (`ip link set {mtu.get('underlay')} mtu "
        f"{pod + overhead}` and in the network configuration), or lower the pods' MTU to {want} (FelixConfiguration "
        "/ the CNI config's mtu) and re-create the pods. The repair does not change MTUs.")]


def bird_dead(fact):
    """BIRD must run here (BGP or IPIP mode with calico-node) and nothing answers on its socket."""
    bird = fact.get("bird") or {}
    mode = (fact.get("calico") or {}).get("mode")
    if bird.get("available") or mode not in ("bgp", "ipip") or not (fact.get("identity") or {}).get("calico_node"):
        return False
    error = str(bird.get("error") or "")
    return any(e in error for e in BIRD_DEAD_ERRORS)


def rule_bird001(fact, host):
    if not bird_dead(fact):
        return []
    bird = fact.get("bird") or {}
    socket = bird.get("socket") or "/var/run/calico/bird.ctl"
    return [finding(
        "BIRD001", "critical", host,
        f"BIRD is not running on {host}: nothing answers on {socket} ({bird.get('error')}); its BGP sessions are "
        "down and its routes are no longer announced or learned",
        {"socket": socket, "error": bird.get("error"), "mode": (fact.get("calico") or {}).get("mode"),
         "calico_node_pid": ((fact.get("identity") or {}).get("calico_node") or {}).get("pid")},
        f"Restart calico-node on {host} (BIRD runs inside it; `kubectl -n kube-system delete pod` of its calico-node "
        f"pod) and read its log for why BIRD exited (a bird.cfg the confd templates rendered wrong, OOM). Check "
        f"with `birdcl -s {socket} show protocols`. The repair does not restart Calico.")]


PATH_RULES = (rule_wl001, rule_pbr001, rule_mtu003, rule_bird001)
