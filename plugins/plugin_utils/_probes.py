# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The probe matrix's controller half (issue 12): which peers each node probes (at most k: all of
them in a small fleet; in a large one its subnet neighbours plus a sample that is random per node but
stable across runs, so the cost stays O(node)), the matrix from the nodes' facts, and PROBE001 for a
failing pair no finding explains. Pure."""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue

DEFAULT_K = 8


def _rank(host, peer):
    return hashlib.sha256(f"{host}\0{peer}".encode()).digest()[:8]


def probe_targets(intended_ips, host, k=DEFAULT_K, clusters=None):
    """[{"host", "ip"}]: the peers ``host`` probes, in its own cluster (``clusters``: host -> name,
    absent: one cluster). With at most k other nodes, every one; else up to k // 2 nodes of its own
    /24 (/64) nearest to its address, the rest a sample seeded by the pair's names (each node a
    different one, the same one every run), so every pair gets probed by some node across a fleet
    while each node sends at most k probes."""
    k = max(int(k), 0)
    own = intended_ips.get(host)
    clusters = clusters or {}
    mine = clusters.get(host)
    others = sorted((h, ip) for h, ip in intended_ips.items() if h != host and ip and clusters.get(h) == mine)
    if len(others) <= k:
        return [{"host": h, "ip": ip} for h, ip in others]
    chosen = []
    try:
        mine = ipaddress.ip_address(own)
        net = ipaddress.ip_network(f"{own}/{24 if mine.version == 4 else 64}", strict=False)
        near = []
        for h, ip in others:
            address = ipaddress.ip_address(ip)
            if address.version == mine.version and address in net:
                near.append((abs(int(address) - int(mine)), h, ip))
        chosen = [(h, ip) for _d, h, ip in sorted(near)[:k // 2]]
    except (TypeError, ValueError):
        chosen = []
    taken = {h for h, _ip in chosen}
    rest = sorted(((h, ip) for h, ip in others if h not in taken), key=lambda item: _rank(host, item[0]))
    chosen += rest[:k - len(chosen)]
    return [{"host": h, "ip": ip} for h, ip in sorted(chosen)]


def matrix(facts_by_host):
    """{src: {dst: cell}} from the facts' ``probes`` (report.json ``probes``)."""
    out = {}
    for host, fact in sorted(facts_by_host.items()):
        probes = (fact or {}).get("probes") if isinstance(fact, dict) else None
        if not isinstance(probes, dict):
            continue
        row = {}
        for peer, cell in sorted((probes.get("peers") or {}).items()):
            row[peer] = {k: cell.get(k) for k in ("ok", "loss", "rtt_ms", "icmp", "tcp", "df", "df_ok", "dst", "via",
                                                  "failed_via")}
            row[peer]["clean"] = bool(cell.get("ok")) and cell.get("df_ok") is not False
        out[host] = row
    return out


def failing_pairs(probes):
    """[[src, dst]] of the cells that are not clean (no reply, or the DF packet lost)."""
    return [[src, dst] for src, row in sorted((probes or {}).items()) for dst, cell in sorted(row.items())
            if not (cell.get("ok") and cell.get("df_ok") is not False)]


def probe_findings(probes, findings):
    """PROBE001 for every failing pair whose nodes carry no finding at warning or above: something
    is broken that the audit cannot name."""
    named = {}
    for f in findings:
        if f.get("severity") in ("critical", "warning"):
            for side in (f.get("host"), f.get("peer")):
                if side:
                    named.setdefault(side, []).append(f.get("id"))
    out = []
    for src, dst in failing_pairs(probes):
        if src in named or dst in named:
            continue
        cell = probes[src][dst]
        what = ("no reply" if not cell.get("ok") else
                f"the {((cell.get('df') or {}).get('size'))}-byte DF packet was lost "
                f"({(cell.get('df') or {}).get('error')})")
        out.append(_catalogue.finding(
            "PROBE001", "warning", src,
            f"probes from {src} to {dst} ({cell.get('dst')}) fail - {what} - and no finding of the audit explains it",
            {"probe": cell},
            f"Trace a pod pair from {src} to {dst} (playbooks/trace.yml names the failing step) and check the "
            "firewalls and the network between the two nodes.", peer=dst))
    return out
