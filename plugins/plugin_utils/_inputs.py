# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The roles' inputs that their argument specs cannot check (types and choices are the specs'
job): addresses and CIDRs, paths, numbers with a lower bound, combinations, and an autodetection
method's control characters. Each function takes the role's variables (name -> value) and returns
one message per problem, empty when there is none; the first task of every entry point asserts
that through the filters in plugins/filter/inputs.py, before anything changes."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible_collections.netdoctor.calico.plugins.module_utils import _kmod

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SYSCTL_FILE = re.compile(r"^/\S+\.conf$")
_NM_DROPIN = re.compile(r"^/(etc|run|usr/lib)/NetworkManager/conf\.d/[^/\s]+\.conf$")
MIN_TUNNEL_MTU = 576


def _ipv4(text):
    try:
        return isinstance(ipaddress.ip_address(str(text)), ipaddress.IPv4Address)
    except ValueError:
        return False


def _ipv4_cidr(text):
    if "/" not in str(text):
        return False
    try:
        return isinstance(ipaddress.ip_network(str(text), strict=False), ipaddress.IPv4Network)
    except ValueError:
        return False


def _at_least(value, minimum):
    try:
        return float(str(value)) >= minimum
    except ValueError:
        return False


def method_problem(name, method):
    """What is wrong with an IP_AUTODETECTION_METHOD that calico-node's own validation (replayed on
    the nodes) does not see: a control character - a newline would reach the DaemonSet's env and
    the manifest as a second line. "" when there is nothing."""
    match = _CONTROL.search(str(method or ""))
    if match:
        return (f"{name}={str(method)!r} contains a control character ({match.group()!r} at position "
                f"{match.start()}); an autodetection method is one line")
    return ""


def _paths(v, names, pattern, what):
    return [f"{name}={v[name]} must be {what}" for name in names
            if name in v and not pattern.match(str(v[name] or ""))]


def preflight_problems(inputs):
    """The preflight role's variables: the tunnel MTU, the sysctl file, the NetworkManager drop-in,
    the kernel module list (the lookup's own rules), the manifest's need for a verified method, and
    the method's control characters."""
    v = inputs if isinstance(inputs, Mapping) else {}
    problems = []
    mtu = v.get("preflight_tunnel_mtu", 0)
    if not _at_least(mtu, 0) or (float(str(mtu)) != 0 and not _at_least(mtu, MIN_TUNNEL_MTU)):
        problems.append(f"preflight_tunnel_mtu must be 0 (Calico's automatic value) or at least {MIN_TUNNEL_MTU}, "
                        f"not {mtu}")
    problems += _paths(v, ["preflight_sysctl_file"], _SYSCTL_FILE,
                       "an absolute path ending in .conf (systemd-sysctl reads nothing else)")
    problems += _paths(v, ["preflight_nm_dropin_path"], _NM_DROPIN,
                       "a NAME.conf file directly in a NetworkManager conf.d directory")
    if "preflight_kernel_modules" in v:
        problems += [f"preflight_kernel_modules: {e}" for e in _kmod.entry_errors(v["preflight_kernel_modules"])]
    if v.get("preflight_autodetection_manifest") and not v.get("preflight_autodetection_check", True):
        problems.append("preflight_autodetection_manifest is set but preflight_autodetection_check is false: only a "
                        "method verified on every node is written into the install manifest")
    problem = method_problem("preflight_autodetection_method", v.get("preflight_autodetection_method"))
    return problems + ([problem] if problem else [])


def repair_problems(inputs):
    """The repair role's variables: pools and the source-route gateway (IPv4), the sysctl file and
    the NetworkManager drop-ins, positive waits, the delete bound, the manifest a manifest target
    needs, and the method's control characters."""
    v = inputs if isinstance(inputs, Mapping) else {}
    problems = []
    bad_pools = [str(p) for p in v.get("repair_pools") or () if not _ipv4_cidr(p)]
    if bad_pools:
        problems.append(f"repair_pools has entries that are not IPv4 CIDRs (a.b.c.d/0-32): {', '.join(bad_pools)}")
    gateway = str(v.get("repair_source_route_gateway") or "")
    if gateway and not _ipv4(gateway):
        problems.append(f"repair_source_route_gateway={gateway} is not an IPv4 address")
    problems += _paths(v, ["repair_sysctl_file"], _SYSCTL_FILE, "an absolute path ending in .conf")
    problems += _paths(v, ["repair_nm_dropin_path", "repair_nm_override_path"], _NM_DROPIN,
                       "a NAME.conf file directly in a NetworkManager conf.d directory")
    problems += [f"{name}={v[name]} must be a positive number of seconds"
                 for name in ("repair_autodetection_timeout", "repair_autodetection_poll", "repair_bgp_probe_timeout",
                              "repair_bgp_wait_timeout", "repair_bgp_wait_poll")
                 if name in v and not _at_least(v[name], 1)]
    if "repair_max_deletes" in v and not _at_least(v["repair_max_deletes"], 0):
        problems.append(f"repair_max_deletes={v['repair_max_deletes']} must be 0 or more")
    if v.get("repair_autodetection_target") == "manifest" and not v.get("repair_autodetection_manifest"):
        problems.append("repair_autodetection_target=manifest needs repair_autodetection_manifest")
    problem = method_problem("repair_autodetection_method", v.get("repair_autodetection_method"))
    return problems + ([problem] if problem else [])
