# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""The controller's half of the route digest (issue 17): what each node's digest must be when its
routes are what the expected map wants. The node's half - the canonical entry and the digest itself
- is ``module_utils._contract`` (route_digest), which both halves share, so they cannot drift apart."""

from __future__ import annotations

import hashlib
import ipaddress

from ansible_collections.netdoctor.calico.plugins.module_utils._contract import (
    CALICO_TUNNELS,
    DIGEST_MODULUS,
    ROUTE_SHAPE,
    WORKLOAD_PREFIX,
    digest_entry,
)


def _networks(fact):
    """The node's own subnets off the Calico devices (where CrossSubnet reaches a peer directly)."""
    out = set()
    for link in fact.get("links") or ():
        name = link.get("name") or ""
        if name in CALICO_TUNNELS or name.startswith(WORKLOAD_PREFIX):
            continue
        for addr in link.get("addresses") or ():
            try:
                out.add(ipaddress.ip_interface(f"{addr['address']}/{addr['prefixlen']}").network)
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _entry_hash(route, mode, l2=None):
    return int.from_bytes(hashlib.sha256(repr(digest_entry(route, mode, l2)).encode()).digest()[:16], "big")


_DIGEST_COMBINATIONS = 64  # blocks claimed twice: the alternatives tried before a node is checked in detail


class DigestBook:
    """The digests each host of one expected map may send when its routes are what the map wants
    (route_drift would find nothing): the fleet-wide sum once, O(blocks), then per host its own
    blocks taken out (and, with CrossSubnet, the same-subnet owners' direct routes swapped in).
    A block two nodes claim (owners_conflicts) is judged by no one, so a route via either
    claimant is accepted."""

    def __init__(self, expected, l2=False):
        self.mode, blocks, nodes = expected["mode"], expected["blocks"], expected["nodes"]
        field, device, onlink = ROUTE_SHAPE.get(self.mode, (None, None, None))
        # With l2 (VXLAN digests that cover the neighbour and FDB entries): each owner's VTEP resolves
        # to its vxlan_mac and node IP; an owner whose MAC is unknown makes the digest unpredictable.
        self.l2 = None
        if l2 and self.mode == "vxlan":
            self.l2 = {n["tunnel_address"]: ((n.get("vxlan_mac") or "").lower(), n.get("ip") or "", "permanent")
                       for n in nodes.values() if n.get("tunnel_address")}
        self.cross_subnet = bool(expected.get("cross_subnet"))
        self.hash, self.delta, self.by_owner, self.owner_ip, self.claimed = {}, {}, {}, {}, {}
        self.predictable = True
        for dst, want in blocks.items():
            if want["owner"] is None:
                claimants = (expected.get("owners_conflicts") or {}).get(dst) or ()
                hops = sorted({(nodes.get(c) or {}).get(field) for c in claimants} - {None})
                self.claimed[dst] = (set(claimants), [_entry_hash(
                    {"dst": dst, "type": "unicast", "gateway": hop, "dev": device, "onlink": onlink}, self.mode,
                    self.l2) for hop in hops])
                continue
            if want["next_hop"] is None:
                self.predictable = False
                continue
            route = {"dst": dst, "type": "unicast", "gateway": want["next_hop"], "dev": want["device"],
                     "onlink": want["onlink"]}
            if self.l2 is not None and not (self.l2.get(want["next_hop"]) or ("",))[0]:
                self.predictable = False
            self.hash[dst] = _entry_hash(route, self.mode, self.l2)
            self.by_owner.setdefault(want["owner"], []).append(dst)
            owner_ip = (nodes.get(want["owner"]) or {}).get("ip")
            if self.cross_subnet and owner_ip:
                self.owner_ip[dst] = ipaddress.ip_address(owner_ip)
                direct = {**route, "gateway": owner_ip, "dev": None, "onlink": False}
                self.delta[dst] = _entry_hash(direct, self.mode, self.l2) - self.hash[dst]
        self.total, self.count = sum(self.hash.values()), len(self.hash)
        self._near = {}

    def _same_subnet_blocks(self, network):
        if network not in self._near:
            self._near[network] = {dst for dst, ip in self.owner_ip.items() if ip in network}
        return self._near[network]

    def for_host(self, host, fact):
        """The set of {(count, hash)} the host may send, or None when its digest cannot be
        predicted (an owner without an address, too many doubly-claimed blocks)."""
        if not self.predictable:
            return None
        own = self.by_owner.get(host, ())
        total = self.total - sum(self.hash[dst] for dst in own)
        if self.cross_subnet:
            near = set().union(*(self._same_subnet_blocks(n) for n in _networks(fact))) - set(own)
            total += sum(self.delta[dst] for dst in near)
        options = {(self.count - len(own), total)}
        for claimants, hashes in self.claimed.values():
            # Either claimant's route; a claimant itself may route it or hold only its blackhole.
            choices = [(1, h) for h in hashes] + ([(0, 0)] if host in claimants else [])
            options = {(c + dc, t + dh) for c, t in options for dc, dh in choices}
            if len(options) > _DIGEST_COMBINATIONS or not options:
                return None
        return {(count, f"{value % DIGEST_MODULUS:032x}") for count, value in options}


def digest_drift(book, expected, host, fact):
    """route_drift's result for a node whose digest matches the map (nothing to fix), else None:
    the node must send its drift in detail (a second round trip, for drifted nodes only).
    ``book``: the map's DigestBook."""
    sent = fact.get("route_digest")
    if not isinstance(sent, dict) or sent.get("mode") != expected.get("mode") or expected["mode"] not in ROUTE_SHAPE:
        return None
    if sent.get("pools") and sorted(sent["pools"]) != sorted(expected.get("pools") or ()):
        return None
    options = book.for_host(host, fact)
    if not options or (sent.get("count"), sent.get("hash")) not in options:
        return None
    checked = sent["count"] - sum(1 for claimants, _h in book.claimed.values() if host not in claimants)
    return {"host": host, "mode": expected["mode"], "checked": checked, "ok": checked, "unverified": 0,
            "counts": {}, "drift": [], "actions": {"add": [], "replace": [], "delete": []}, "by": "digest"}
