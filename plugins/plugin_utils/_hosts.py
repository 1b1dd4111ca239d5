# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""What the roles and playbooks read from the inventory, on the controller: a host variable for a
list of hosts, every node's intended IP (and what is wrong with it), and whether a host pattern
selects any host at all. Plain data in, plain data out; the filters in plugins/filter/hosts.py
are these functions."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

_MISSING = object()


def host_values(hosts, hostvars, key, default=None):
    """host -> ``hostvars[host][key]`` for every host of ``hosts`` (``default`` where it is not
    set). ``key`` may be a list, a path into the value (``['ansible_facts', 'calico_node']``).
    One look-up per host: O(hosts), whatever the variable is (an intended IP, calico_cluster, a
    registered result)."""
    path = list(key) if isinstance(key, (list, tuple)) else [key]
    out = {}
    for host in hosts:
        value = hostvars.get(host, _MISSING) if isinstance(hostvars, Mapping) else _MISSING
        for part in path:
            value = value.get(part, _MISSING) if isinstance(value, Mapping) else _MISSING
            if value is _MISSING:
                break
        out[host] = default if value is _MISSING else value
    return out


def _candidate(host, host_vars, var):
    """(where it came from, the text) of a host's intended address: the variable ``var``, else
    ``ansible_host``, else the inventory name; stripped, a prefix length dropped."""
    for source in (var, "ansible_host"):
        value = host_vars.get(source) if source else None
        if value not in (None, ""):
            return source, str(value).strip().split("/", 1)[0].strip()
    return "name", str(host)


def _address(text, version=None):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(address) if version in (None, address.version) else None


def intended_ips(hosts, hostvars, var, version=None):
    """host -> its intended address (canonical text), for the hosts whose ``var`` (else
    ``ansible_host``, else the name) is an address (of IP ``version`` when given); the others are
    left out."""
    out = {}
    for host in hosts:
        host_vars = hostvars.get(host) if isinstance(hostvars, Mapping) else None
        _source, text = _candidate(host, host_vars if isinstance(host_vars, Mapping) else {}, var)
        address = _address(text, version)
        if address:
            out[host] = address
    return out


def intended_ip_problems(hosts, hostvars, var, version=None, required=True):
    """What is wrong with the hosts' intended addresses, one message per host (empty: nothing).
    A ``var`` that is set must be an address (of IP ``version`` when given); with ``required`` a
    host without one (neither ``var`` nor ``ansible_host`` is an address) is wrong too."""
    kind = f"an IPv{version} address" if version else "an IP address"
    problems = []
    for host in hosts:
        host_vars = hostvars.get(host) if isinstance(hostvars, Mapping) else None
        source, text = _candidate(host, host_vars if isinstance(host_vars, Mapping) else {}, var)
        if _address(text, version) or (source != var and not required):
            continue
        if source == var:
            problems.append(f"{host}: {var} is {text!r}, not {kind}")
        elif source == "ansible_host":
            problems.append(f"{host}: {var} is not set and ansible_host is {text!r}, not {kind}")
        else:
            problems.append(f"{host}: neither {var} nor ansible_host is set, and the name is not {kind}")
    return problems


def host_selection_error(matched, var, pattern, limited=None):
    """Why a play over the host pattern ``pattern`` (the variable ``var``) would run on no host -
    ``matched`` are the hosts the pattern selects, ``limited`` the hosts ``--limit`` allows (None:
    no limit) - or "" when it runs on at least one. A play with no host passes without looking at
    anything, which must not pass a CI gate."""
    matched = list(matched or ())
    if not matched:
        return (f"{var}={pattern} matches no host of the inventory, so nothing would be looked at and the run "
                f"would pass. Set {var} to a group or host pattern of the inventory "
                "(ansible-inventory --graph lists them).")
    if limited is not None and not set(matched) & set(limited):
        return (f"{var}={pattern} matches {len(matched)} host(s), but none of them is within --limit, so nothing "
                "would be looked at and the run would pass. Widen --limit or change "
                f"{var}.")
    return ""
