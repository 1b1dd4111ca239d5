# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The preflight role's decisions, on the controller, over each node's ``calico_node`` fact: what
the autodetection method picks, whether the MTUs fit, which rp_filter keys to lower (the host NICs
are ``_findings.host_interfaces``, the audit's own definition), what the kernel module lookup
says, and the summary notes. The repair role reuses the replay and the sysctl step. The filters in
plugins/filter/preflight.py are these functions."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping

from ansible_collections.netdoctor.calico.plugins.module_utils import _findings, _kmod

# Per encapsulation: the device Felix creates, the bytes it adds (Felix int_dataplane.go, IPv4
# underlay) and the kernel module it needs besides calicoctl node checksystem's list.
ENCAPSULATIONS = {
    "ipip": {"device": "tunl0", "overhead": 20, "modules": [{"names": ["ipip"], "config": "CONFIG_NET_IPIP"}]},
    "vxlan": {"device": "vxlan.calico", "overhead": 50, "modules": [{"names": ["vxlan"], "config": "CONFIG_VXLAN"}]},
    "wireguard": {"device": "wireguard.cali", "overhead": 60,
                  "modules": [{"names": ["wireguard"], "config": "CONFIG_WIREGUARD"}]},
    "none": {"device": None, "overhead": 0, "modules": []},
}
RP_FILTER_MODES = ("loose", "off", "keep")


def _encapsulation(name):
    if name not in ENCAPSULATIONS:
        raise ValueError(f"encapsulation must be one of {', '.join(ENCAPSULATIONS)}, not {name!r}")
    return ENCAPSULATIONS[name]


def _fact(fact):
    return fact if isinstance(fact, Mapping) else {}


# ---------------------------------------------------------------------------------------------
# Autodetection (AD001)


def autodetection_replay(fact, method, intended, version=4):
    """What ``method`` picks on one node, from the replay in its ``calico_node`` fact:
    ``{valid, error, address, interface, intended, ok, note}``; ``ok`` when it picks ``intended``."""
    results = (_fact(fact).get("autodetection") or {}).get("results") or ()
    replays = [r for r in results if r.get("version") == version and r.get("method") == method]
    if not replays:
        error = "no facts from this node" if not fact else f"{method!r} was not replayed on this node"
        return {"valid": False, "error": error, "address": None, "interface": None, "intended": intended,
                "ok": False, "note": f"AD001: {method} not replayed ({error})"}
    replay = replays[-1]
    address, interface = replay.get("address"), replay.get("interface")
    ok = bool(address) and str(address).split("/", 1)[0] == str(intended)
    note = (f"AD001: {method} -> {address} ({interface}) ok" if ok
            else f"AD001: {method} -> {address or 'nothing'} instead of {intended}")
    return {"valid": bool(replay.get("valid")), "error": replay.get("error"), "address": address,
            "interface": interface, "intended": intended, "ok": ok, "note": note}


def autodetection_misses(replays):
    """One line per node the method misses (host -> ``autodetection_replay``), e.g. ``node1 picks
    198.51.100.11/26 (eth1) instead of 192.0.2.11``; empty when it picks every intended address."""
    lines = []
    for host, value in (replays or {}).items():
        replay = _fact(value)
        if replay.get("ok"):
            continue
        picked = (f"picks {replay['address']} ({replay.get('interface')})" if replay.get("address")
                  else f"picks nothing ({replay.get('error') or 'no interface matches'})")
        lines.append(f"{host} {picked} instead of {replay.get('intended')}")
    return lines


def autodetection_failure(misses, method, var, total, recommendation=None,  # noqa: PLR0917 - a filter's arguments
                          setting="preflight_autodetection_method"):
    """The message a method that misses nodes fails with: which nodes it misses, and one method for
    the whole fleet (the recommend_method filter's result) or why none fits. "" when none is missed."""
    if not misses:
        return ""
    rec = _fact(recommendation)
    if rec.get("method"):
        advice = (f"Recommended for the whole fleet: {setting}={rec['method']} ({rec.get('reason')}; operator: "
                  f"nodeAddressAutodetectionV4: {json.dumps(rec.get('operator'), sort_keys=True)}).")
    else:
        advice = f"No single method fits the fleet: {rec.get('reason') or 'no recommendation'}."
    return (f"IP_AUTODETECTION_METHOD={method} does not give {len(misses)} of {total} node(s) their intended "
            f"address ({var}): {'; '.join(misses)}. {advice}")


# ---------------------------------------------------------------------------------------------
# MTU (SYS001)


def mtu_check(fact, encapsulation, tunnel_mtu, intended):
    """Whether the tunnel MTU (``tunnel_mtu``, 0 = Calico's automatic value), an existing tunnel
    device's MTU and the CNI config's mtu fit in the MTU of the NIC holding ``intended`` minus the
    encapsulation's overhead. ``{nic, nic_mtu, overhead, limit, tunnel_mtu, device, device_mtu,
    cni_mtu, too_big: ["what = mtu"], ok, note}``; not checked (``limit`` None) when no NIC holds
    the intended address."""
    enc = _encapsulation(encapsulation)
    links = _fact(fact).get("links") or ()
    nic = next((link for link in links for a in link.get("addresses") or ()
                if a.get("address") == str(intended)), None)
    device = enc["device"]
    device_mtu = next((link.get("mtu") for link in links if device and link.get("name") == device), None)
    cni_mtu = ((_fact(fact).get("identity") or {}).get("cni") or {}).get("mtu")
    out = {"nic": nic["name"] if nic else None, "nic_mtu": nic.get("mtu") if nic else None,
           "overhead": enc["overhead"], "limit": None,
           "tunnel_mtu": int(tunnel_mtu) if tunnel_mtu and int(tunnel_mtu) > 0 else None,
           "device": device, "device_mtu": device_mtu, "cni_mtu": cni_mtu, "too_big": [], "ok": True}
    if nic is None or nic.get("mtu") is None:
        out["note"] = "MTU: not checked (the intended address is on no interface)"
        return out
    out["limit"] = int(nic["mtu"]) - enc["overhead"]
    candidates = [("preflight_tunnel_mtu", out["tunnel_mtu"]), (f"{device} (MTU of the existing device)", device_mtu),
                  ("the CNI config mtu", cni_mtu)]
    out["too_big"] = [f"{what} = {mtu}" for what, mtu in candidates if mtu and int(mtu) > out["limit"]]
    out["ok"] = not out["too_big"]
    out["note"] = (f"MTU: {out['nic']} {out['nic_mtu']} - {encapsulation} {out['overhead']} = {out['limit']} >= tunnel "
                   f"{out['tunnel_mtu'] or 'automatic'}"
                   + (f", {device} {device_mtu}" if device_mtu else "")
                   + (f", CNI {cni_mtu}" if cni_mtu else "")
                   + (" ok" if out["ok"] else " TOO LARGE: " + ", ".join(out["too_big"])))
    return out


# ---------------------------------------------------------------------------------------------
# sysctls (SYS001)


def rp_filter_plan(fact, mode, multihomed_only=True):
    """Which rp_filter keys to lower on one node. The host NICs are the audit's
    (``_findings.host_interfaces``: a global IPv4 address, not one of the interfaces Calico's
    autodetection excludes); the kernel applies ``max(conf.all, conf.<nic>)``. ``loose``: every NIC
    left strict goes to 2; ``off``: NICs and ``conf.all`` at 1 or 2 go to 0; ``keep``: nothing.
    Nothing is ever raised. ``{nics, multihomed, changes: [sysctl keys], value}``."""
    if mode not in RP_FILTER_MODES:
        raise ValueError(f"rp_filter must be one of {', '.join(RP_FILTER_MODES)}, not {mode!r}")
    fact = _fact(fact)
    nics = list(_findings.host_interfaces(fact))
    sysctls = fact.get("sysctls") or {}
    per_if = sysctls.get("interfaces") or {}
    all_value = int(sysctls.get("net.ipv4.conf.all.rp_filter") or 0)
    # The per-interface values that leave a NIC stricter than asked, given conf.all.
    too_strict = {"loose": {0: [1], 1: [0, 1]}.get(all_value, []), "off": [1, 2]}.get(mode, [])
    changes = []
    if mode != "keep" and (len(nics) > 1 or not multihomed_only):
        changes = [f"net.ipv4.conf.{nic.replace('.', '/')}.rp_filter" for nic in nics
                   if (per_if.get(nic) or {}).get("rp_filter") in too_strict]
        if mode == "off" and all_value > 0:
            changes.append("net.ipv4.conf.all.rp_filter")
    return {"nics": nics, "multihomed": len(nics) > 1, "changes": changes, "value": "2" if mode == "loose" else "0"}


def sysctl_changes(ip_forward_result=None, rp_filter_result=None):
    """sysctl key -> value the sysctl step changed, from its two registered results
    (ansible.posix.sysctl for ip_forward, and the loop over the rp_filter keys)."""
    out = {}
    if _fact(ip_forward_result).get("changed"):
        out["net.ipv4.ip_forward"] = "1"
    for item in _fact(rp_filter_result).get("results") or ():
        if isinstance(item, Mapping) and item.get("changed"):
            value = ((item.get("invocation") or {}).get("module_args") or {}).get("value", "2")
            out[str(item.get("item"))] = str(value)
    return out


def _sysctl_word(key, value):
    if key == "net.ipv4.ip_forward":
        return f"ip_forward={value}"
    return f"rp_filter[{key[len('net.ipv4.conf.'):-len('.rp_filter')]}]"


def sysctl_note(plan, changes, ip_forward, mode, sysctl_file,  # noqa: PLR0917 - a filter's arguments
                check_mode=False):
    """The summary note of the sysctl step (``changes``: ``sysctl_changes``)."""
    plan = _fact(plan)
    changed = [_sysctl_word(key, value) for key, value in (changes or {}).items()]
    nics = plan.get("nics") or []
    where = " (no host NIC)"
    if nics:
        where = f" on {','.join(nics)}" + (" (multi-homed)" if plan.get("multihomed") else "")
    return ("SYS001: " + ("ip_forward=1" if ip_forward else "ip_forward not managed") + f", rp_filter {mode}" + where
            + (f" - {'would set' if check_mode else 'set'} {' '.join(changed)} in {sysctl_file}" if changed
               else " - nothing to change"))


# ---------------------------------------------------------------------------------------------
# Kernel modules (SYS001)


def kernel_module_entries(modules, encapsulation):
    """The entries to look up: the given list (calicoctl node checksystem's) plus the module the
    encapsulation needs."""
    return list(modules or ()) + copy.deepcopy(_encapsulation(encapsulation)["modules"])


def kernel_module_problems(entries):
    """What is wrong with the entries (the lookup's own rules, ``_kmod.entry_errors``); empty: nothing."""
    return _kmod.entry_errors(entries)


def kernel_modules_plan(scan):
    """From the node's lookup (``calico_node.kernel_modules``): ``{entries, supported, load: [entries
    the kernel has but has not loaded, or cannot tell], missing: [required entries the kernel
    lacks], missing_text, present: n, total: n}``."""
    scan = _fact(scan)
    entries = list(scan.get("entries") or ())
    missing = [e for e in entries if e.get("status") == "missing" and not e.get("optional")]
    return {
        "entries": entries, "supported": bool(scan.get("modules_supported")),
        "load": [e for e in entries if e.get("status") in ("loadable", "unknown")],
        "missing": missing,
        "missing_text": ", ".join("/".join(e["names"]) for e in missing)
                        + (f" ({'; '.join(e.get('evidence') or '' for e in missing)})" if missing else ""),
        "present": sum(1 for e in entries if e.get("status") in ("present", "builtin")),
        "total": len(entries),
    }


def kernel_modules_note(plan, modprobe_result=None, load_modules=False, check_mode=False):
    """The summary note of the module step: how many entries the kernel has, what is loadable,
    missing, unknown, and what was loaded."""
    plan = _fact(plan)
    entries = plan.get("entries") or []
    loaded = [str((r.get("item") or {}).get("name")) for r in _fact(modprobe_result).get("results") or ()
              if isinstance(r, Mapping) and r.get("changed")]
    missing = [e for e in entries if e.get("status") == "missing"]
    groups = [
        ("loadable", [e["name"] for e in entries if e.get("status") == "loadable"]),
        ("missing", ["/".join(e["names"]) for e in missing if not e.get("optional")]),
        ("missing (optional)", ["/".join(e["names"]) for e in missing if e.get("optional")]),
        ("unknown", [e["name"] for e in entries if e.get("status") == "unknown"]),
        ("would load" if check_mode else "loaded", loaded),
    ]
    note = f"modules: {plan.get('present', 0)}/{plan.get('total', 0)} in the kernel"
    note += "".join(f", {label}: {' '.join(names)}" for label, names in groups if names)
    if plan.get("load"):
        if not load_modules:
            note += " (preflight_load_modules: true loads them)"
        elif not plan.get("supported"):
            note += " (not loaded: this kernel has no loadable module support)"
    return note


# ---------------------------------------------------------------------------------------------
# NetworkManager (NM001) and /etc/hosts (HOST001)


def nm_note(result, path, installed, check_mode=False):
    """The summary note of the NetworkManager step, from calico_nm_unmanaged's result (None: the
    step did not run)."""
    result = _fact(result)
    if not result or result.get("skipped"):
        return "NM001: skipped" if installed else "NM001: NetworkManager not installed"
    state = (" written" + (" (check mode)" if check_mode else "")) if result.get("changed") else " in place"
    return (f"NM001: {path}{state}, Calico devices unmanaged per {result.get('verified_with')}"
            + (", NetworkManager reloaded" if result.get("reloaded") else ""))


def hosts_entry(intended, hostname):
    """The /etc/hosts line that makes the node resolve its hostname: address, name, short name."""
    short = hostname.split(".", 1)[0] if "." in hostname else None
    return " ".join(p for p in (str(intended), hostname, short) if p)


def hosts_note(fact, intended, result=None, check_mode=False):
    """The summary note of the /etc/hosts step, from the node's ``calico_node`` fact (its hostname
    and ``identity``) and the lineinfile result (None: not run)."""
    identity = _fact(_fact(fact).get("identity"))
    hostname = str(_fact(fact).get("hostname") or "").strip() or "the hostname"
    addresses = list(identity.get("hosts_addresses") or ())
    if identity.get("hosts_resolves_hostname"):
        return (f"HOST001: {hostname} resolves via /etc/hosts to {','.join(addresses)}"
                + ("" if str(intended) in addresses else f" (not the intended {intended})"))
    if _fact(result).get("changed"):
        return f"HOST001: {hostname} added to /etc/hosts" + (" (check mode)" if check_mode else "")
    return f"HOST001: {hostname} does NOT resolve via /etc/hosts (preflight_fix_hosts: true adds it)"
