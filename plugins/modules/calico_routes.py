#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_routes
short_description: Check a node's Calico block routes against the fleet's expected map, and repair them
version_added: 0.1.0
description:
  - Compares this node's main routing table with the fleet's expected map (which node owns which IPAM block and the
    route every other node must have to it) and returns the drift - the catalogue's RT001 (wrong next hop or device,
    seed 001 case 1) and RT002 (missing route, orphan route to a block nobody owns).
  - In check mode it changes nothing and returns the drift and the exact plan; the collection's audit runs it this way
    on every node and hands RV(drift) to M(netdoctor.calico.fleet_audit), so the full tables never leave the nodes.
  - Otherwise it applies the plan one route at a time, each change atomic (a wrong route is swapped in place with a
    netlink replace keeping the protocol of Calico's routes, a missing one is added, an orphan deleted), then reads
    the table again and verifies every change took.
  - Optionally (O(source_routes)) fixes SRC001 - a multi-homed node reaching its peers from another address than its
    Calico IP, whose IPIP packets the peers drop - with a route per peer network carrying C(src) = the Calico IP.
  - Fix the cause first (the registered node IP, AD001; NetworkManager on Calico's devices, NM001). While Calico's
    datastore holds a wrong node IP, BIRD and Felix put the wrong routes back within seconds.
author:
  - netdoctor.calico contributors (@netdoctor)
requirements:
  - pyroute2 >= 0.7.2 on the managed node (the distribution's python3-pyroute2 is enough)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details:
      - Reads the table and returns the drift and the plan the real run would apply; nothing is written.
      - A plan the real run would refuse (O(max_deletes), unresolved source routes) is returned with a warning and
        RV(blocked) instead of failing, so an audit still gets the drift.
  diff_mode:
    support: full
    details:
      - The routes the plan replaces, adds, deletes or overrides, as C(ip route) prints them; never the whole table.
  idempotent:
    support: full
    details:
      - A second run with the same map finds nothing to do. BIRD and Felix re-assert routes from Calico's datastore,
        so a route they program wrongly again is drift again.
options:
  expected_map:
    description:
      - The fleet's expected map, as M(netdoctor.calico.fleet_audit) returns it
        (RV(netdoctor.calico.fleet_audit#module:expected_map)) - C(mode), C(blocks) (block CIDR to C(owner),
        C(next_hop), C(device), C(onlink)), C(nodes) (name to C(ip), C(tunnel_address), C(blocks)), C(complete),
        C(pools), C(prefixlens), C(cross_subnet).
      - Validated before anything is read or written - its shape, every CIDR and address (in canonical form), that
        O(host) is one of its nodes, that the mode is known and that every block's next hop and device are what its
        owner and the mode give.
      - Orphans are deleted only when C(complete) is true (every node gave facts).
    type: dict
    required: true
  host:
    description:
      - This node's name in O(expected_map). Defaults to the node's hostname.
    type: str
  fix_next_hops:
    description:
      - Replace routes with a wrong next hop or device (RT001).
    type: bool
    default: true
  add_missing:
    description:
      - Add routes to remote blocks that have none (RT002).
    type: bool
    default: true
  remove_orphans:
    description:
      - Delete Calico routes to blocks nobody owns (RT002), when the map is complete.
    type: bool
    default: true
  protocols:
    description:
      - The route owners the module may change and write as - names (C(bird), C(felix), C(boot), C(static), ...) or
        numbers. BIRD is 12, Felix 80, and proto C(boot) (3) counts only on Calico's tunnel devices C(tunl0),
        C(vxlan.calico) and C(vxlan-v6.calico), where Felix treats boot routes as its own.
      - So a route added by hand on C(tunl0) (seed 001 case 1 - C(ip route) shows no C(proto), it is boot) is Calico's
        and gets replaced, while a hand-made C(proto static) or C(boot) route on C(eth0) is not.
    type: list
    elements: str
    default: [bird, felix, boot]
  touch_foreign:
    description:
      - Also replace or delete a route that is not Calico's (its protocol is not in O(protocols)) when the plan
        targets it. By default such a route is left alone and reported in RV(skipped_actions).
      - A non-Calico route inside another node's block (drift kind C(shadow)) is never changed.
    type: bool
    default: false
  source_routes:
    description:
      - Make the kernel pick this node's Calico IP (the map's C(ip) for O(host)) as the source towards every peer's
        Calico IP (SRC001). Fails when that IP is on no local interface.
      - Peers are grouped by the main-table route that reaches them now (a connected subnet, a route to a remote
        subnet); for each group that leaves from another address it writes
        C(<network> [via <gateway>] dev <interface> proto static src <Calico IP>) - on the interface holding the
        Calico IP when that reaches the network (connected, O(source_route_gateway), or a gateway route there),
        otherwise on the current way out with only the source changed.
      - An existing route at the same destination and metric is not modified - the new route is put in front of it
        (C(ip route prepend)) - except an earlier route of this module's (proto static with this source), which is
        replaced. Every peer is looked up again afterwards (C(ip route get)).
      - A peer only the default route reaches gets a host route; the default route is never changed unless
        O(allow_default_route).
      - The routes are not persistent - also put them in the distribution's network configuration.
    type: bool
    default: false
  source_route_gateway:
    description:
      - Router on the Calico IP's interface for peer networks that interface has no route to.
    type: str
  allow_default_route:
    description:
      - With O(source_routes), fix the peers only the default route reaches with one default route carrying
        C(src) = the Calico IP, put in front of the existing one, instead of a host route per peer. It goes via
        O(source_route_gateway) or a router on the Calico interface when there is one, else the way the existing
        default route goes.
    type: bool
    default: false
  max_deletes:
    description:
      - Refuse to act (before any change) when the plan deletes more routes than this, which is what a map missing
        nodes would do. Default - 10% of the node's routes owned by O(protocols), and at least 50.
    type: int
  workload_routes:
    description:
      - Restore the /32 route of each C(cali*) veth that lost it (pod IP from its neighbour entry; WL001). VXLAN peers'
        neighbour and FDB entries (VX001) are always restored from the map.
    type: bool
    default: true
  force:
    description:
      - Act even when the plan deletes more than O(max_deletes) routes.
    type: bool
    default: false
notes:
  - Never changes the default route (except as O(allow_default_route) says), never changes routes in other tables,
    and never changes a non-Calico route unless O(touch_foreign).
  - A replacement is written with the protocol of the route it replaces when that is Calico's, else with the protocol
    of the node's correct block routes (BIRD for IPIP and BGP, boot for VXLAN), exactly as C(route_drift) plans it.
  - One node with 5,000 remote block routes is read, checked and planned in a few tens of milliseconds (RV(timing)).
  - The map grows with the fleet, so the result's C(invocation) shows only its size (C(mode), C(complete),
    C(block_count), C(node_count)) - what travels back from every node stays the size of one node's data.
seealso:
  - module: netdoctor.calico.fleet_audit
  - module: netdoctor.calico.calico_node_facts
"""

EXAMPLES = r"""
- name: The fleet's expected map, from every node's calico_node facts
  netdoctor.calico.fleet_audit:
    map_only: true
    intended_ip_var: ansible_host
  run_once: true
  register: fleet_map

- name: Audit - each node's drift against the map, nothing changed
  netdoctor.calico.calico_routes:
    expected_map: "{{ fleet_map.expected_map }}"
    host: "{{ inventory_hostname }}"
  check_mode: true
  register: routes

- name: Hand the drifts to the fleet audit (only the drift travelled, never a route table)
  netdoctor.calico.fleet_audit:
    intended_ip_var: ansible_host
    drift: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, ['routes', 'drift']))) }}"
    report_dir: "{{ playbook_dir }}/reports"
  run_once: true

- name: Repair - wrong next hops and missing routes only, and show what changes
  netdoctor.calico.calico_routes:
    expected_map: "{{ fleet_map.expected_map }}"
    host: "{{ inventory_hostname }}"
    remove_orphans: false
  diff: true

- name: Also make the peers see this node's Calico IP as the source (SRC001)
  netdoctor.calico.calico_routes:
    expected_map: "{{ fleet_map.expected_map }}"
    host: "{{ inventory_hostname }}"
    source_routes: true
    source_route_gateway: 192.0.2.1
"""

RETURN = r"""
host:
  description: The node's name in the map.
  returned: always
  type: str
  sample: node3
mode:
  description: The map's networking mode.
  returned: always
  type: str
  sample: ipip
drift:
  description:
    - The drift of this node, exactly the C(route_drift) result M(netdoctor.calico.fleet_audit) takes per host in its
      O(netdoctor.calico.fleet_audit#module:drift) option (as read before any change).
    - C(drift) items have C(kind) (C(wrong_next_hop), C(wrong_device), C(missing), C(orphan), C(shadow)), C(dst),
      C(have) (C(gateway), C(dev), C(onlink), C(protocol), C(type); null for missing), C(want) (C(gateway), C(dev),
      C(onlink)), C(owner) and, for a shadow, C(block).
    - C(actions) are all the routes a repair would write, before this module's switches and safety rules.
  returned: always
  type: dict
  contains:
    host:
      description: The node.
      type: str
    mode:
      description: The map's mode.
      type: str
    checked:
      description: Remote blocks checked.
      type: int
    ok:
      description: Remote blocks routed right.
      type: int
    unverified:
      description: Calico routes that could not be judged because a node gave no facts.
      type: int
    counts:
      description: Drift items by kind.
      type: dict
    drift:
      description: One item per wrong, missing, orphan or shadow route.
      type: list
      elements: dict
    actions:
      description:
        - C(add), C(replace), C(delete) - lists of routes (C(dst), C(type), C(gateway), C(dev), C(onlink),
          C(protocol)).
      type: dict
  sample:
    host: node3
    mode: ipip
    checked: 4
    ok: 3
    unverified: 0
    counts: {wrong_next_hop: 1}
    drift:
      - kind: wrong_next_hop
        dst: 10.122.17.64/26
        owner: node1
        have: {gateway: 10.122.127.128, dev: tunl0, onlink: false, protocol: 3, type: unicast}
        want: {gateway: 192.168.3.110, dev: tunl0, onlink: true}
    actions:
      add: []
      replace: [{dst: 10.122.17.64/26, type: unicast, gateway: 192.168.3.110, dev: tunl0, onlink: true, protocol: 12}]
      delete: []
actions:
  description:
    - What this run applies (or would apply in check mode) - C(replace), C(add) and C(delete) lists of routes in the
      shape of RV(drift.actions), plus C(metric) when the route replaced or deleted has one.
  returned: always
  type: dict
  sample:
    replace: [{dst: 10.122.17.64/26, type: unicast, gateway: 192.168.3.110, dev: tunl0, onlink: true, protocol: 12}]
    add: []
    delete: []
skipped_actions:
  description:
    - Actions of RV(drift.actions) this run does not take - C(action), C(route), C(reason) (a switch is off, the route
      there is not Calico's, the protocol is outside O(protocols), the device does not exist).
  returned: always
  type: list
  elements: dict
  sample: [{action: delete, route: {dst: 198.18.77.0/26, gateway: 192.0.2.99}, reason: remove_orphans is false}]
source_routes:
  description:
    - With O(source_routes), the source-route plan - C(calico_ip), C(interface) (the link holding it), C(ok_peers)
      (peers already reached from the Calico IP), C(unresolved) (C(peer), C(host), C(reason)) and C(networks), one per
      route to write - C(network), C(action) (C(add), C(prepend) or C(replace)), C(route), C(replaces) or
      C(overrides) (the route at the same destination and metric), C(peer_count), C(peers) and C(hosts) (the first
      20), C(before) (the kernel's lookups, as C(ip route get) prints them) and, after a real run, C(after) and
      C(verified).
    - Null when O(source_routes) is false.
  returned: always
  type: dict
  sample:
    calico_ip: 192.0.2.75
    interface: eth0
    ok_peers: 0
    unresolved: []
    networks:
      - network: 192.0.2.64/26
        action: prepend
        route: {dst: 192.0.2.64/26, gateway: null, dev: eth0, scope: link, protocol: 4, prefsrc: 192.0.2.75}
        peer_count: 2
        peers: [192.0.2.76, 192.0.2.77]
        hosts: [node2, node3]
        before: [192.0.2.76 dev eth0 src 192.0.2.99, 192.0.2.77 dev eth0 src 192.0.2.99]
        after: [192.0.2.76 dev eth0 src 192.0.2.75, 192.0.2.77 dev eth0 src 192.0.2.75]
        verified: true
max_deletes:
  description: The delete bound this run used.
  returned: always
  type: int
  sample: 50
blocked:
  description:
    - Why the real run would refuse the plan (check mode only; the real run fails with this message); null when it
      would not.
  returned: always
  type: str
  sample: null
verified:
  description:
    - Whether every change was found in the table read after it (and every looked-up peer now leaves from the Calico
      IP). Null in check mode. The module fails when it is false.
  returned: always
  type: bool
  sample: true
residual_drift:
  description:
    - The drift items left after the run (skipped actions, shadows, anything BIRD or Felix changed meanwhile), in the
      shape of RV(drift.drift). Null in check mode.
  returned: always
  type: list
  elements: dict
  sample: []
timing:
  description:
    - Seconds spent validating the map (C(validate)), reading the table (C(read)), planning (C(plan)), writing
      (C(apply)) and verifying (C(verify)).
  returned: always
  type: dict
  sample: {validate: 0.03, read: 0.011, plan: 0.006, apply: 0.0, verify: 0.0}
"""

import socket
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _contract, _netlink, _routes
from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import route_text


def _map_summary(expected):
    blocks, nodes = expected.get("blocks"), expected.get("nodes")
    return {"mode": expected.get("mode"), "complete": expected.get("complete"),
            "block_count": len(blocks) if isinstance(blocks, dict) else None,
            "node_count": len(nodes) if isinstance(nodes, dict) else None}


class RouteRepair:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.expected = None
        # The map is O(fleet): echoing it back in `invocation` would send it from every node to the
        # controller again, so only its size travels.
        args = {**module.params, "expected_map": _map_summary(module.params["expected_map"])}
        self.result = {"changed": False, "host": None, "mode": None, "drift": None,
                       "actions": {"add": [], "replace": [], "delete": []}, "skipped_actions": [],
                       "source_routes": None, "max_deletes": None, "blocked": None, "verified": None,
                       "residual_drift": None, "invocation": {"module_args": args},
                       "timing": {"validate": 0.0, "read": 0.0, "plan": 0.0, "apply": 0.0, "verify": 0.0}}

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **self.result, **kwargs)

    def _time(self, phase, since):
        now = time.monotonic()
        self.result["timing"][phase] = round(now - since, 4)
        return now

    def run(self):
        params, result = self.params, self.result
        start = time.monotonic()
        host = params["host"] or socket.gethostname()
        result["host"] = host
        try:
            protocols = _routes.parse_protocols(params["protocols"])
            self.expected = expected = _routes.check_map(params["expected_map"], host)
        except ValueError as exc:
            self.fail(str(exc))
        if params["max_deletes"] is not None and params["max_deletes"] < 0:
            self.fail("max_deletes must be 0 or more")
        result["mode"] = expected["mode"]
        calico_ip = expected["nodes"][host].get("ip")
        if params["source_routes"] and not calico_ip:
            self.fail(f"source_routes: expected_map has no Calico IP for {host}")
        now = self._time("validate", start)

        with _netlink.Netlink() as nl:
            snap = nl.snapshot()
            now = self._time("read", now)
            drift = _contract.route_drift(snap["routes"], expected, host, neighbours=snap["neighbours"],
                                          fdb=snap["fdb"])
            # Issue 12: the VXLAN peers' neighbour/FDB entries and the local workloads' /32 routes, as Felix
            # programs them.
            l2 = drift.get("l2_actions") or {"neighbour": [], "fdb": []}
            workloads = (_contract.workload_routes(_contract.workload_state(snap))
                         if params["workload_routes"] else [])
            actions, skipped, replaced = _routes.plan(
                drift, snap["routes"], snap["links"], protocols=protocols, touch_foreign=params["touch_foreign"],
                fix_next_hops=params["fix_next_hops"], add_missing=params["add_missing"],
                remove_orphans=params["remove_orphans"])
            source = None
            if params["source_routes"]:
                try:
                    source, _lookups = self._plan_source(nl, snap, calico_ip)
                except ValueError as exc:
                    result["drift"] = drift
                    self.fail(f"source_routes: {exc}")
        limit = _routes.max_deletes(snap["routes"], protocols, params["max_deletes"])
        result.update(drift=drift, actions=actions, skipped_actions=skipped, source_routes=source, max_deletes=limit,
                      l2_actions=l2, workload_routes=workloads,
                      changed=(any(actions.values()) or bool(source and source["networks"]) or any(l2.values())
                               or bool(workloads)))
        if self.module._diff:
            result["diff"] = _routes.diff(actions, replaced, source)
        blocked = [m for m in (_routes.delete_limit_error(actions, limit, params["force"]),
                               self._unresolved(source)) if m]
        self._time("plan", now)

        if blocked and self.module.check_mode:
            result["blocked"] = "; ".join(blocked)
            self.module.warn(f"the real run would refuse this plan: {result['blocked']}")
        elif blocked:
            result["changed"] = False
            self.fail("nothing was changed: " + "; ".join(blocked))
        if self.module.check_mode:
            self.module.exit_json(**result)
        if not result["changed"]:
            result.update(verified=True, residual_drift=drift["drift"])
            self.module.exit_json(**result)
        self._apply(actions, source)

    def _plan_source(self, nl, snap, calico_ip):
        """The source-route plan over every peer, and the kernel's lookups it was made from."""
        peers = _routes.peers(self.expected, self.result["host"])
        lookups = {peer: nl.route_get(peer) for peer in peers}
        plan = _routes.plan_source_routes(snap, calico_ip, peers, lookups, gateway=self.params["source_route_gateway"],
                                          allow_default_route=self.params["allow_default_route"])
        return plan, lookups

    def _unresolved(self, source):
        if not source or not source["unresolved"]:
            return None
        items = source["unresolved"]
        shown = "; ".join(f"{u['host']}: {u['reason']}" for u in items[:3])
        return f"source_routes: {len(items)} peer(s) cannot be given a source route ({shown})"

    def _apply(self, actions, source):
        result, errors = self.result, []
        start = time.monotonic()
        with _netlink.Netlink() as nl:
            # Each write stands alone: one the kernel refuses does not stop the others.
            for verb, key in (("replace", "replace"), ("add", "add"), ("del", "delete")):
                for route in actions[key]:
                    try:
                        nl.route_write(verb, route)
                    except OSError as exc:
                        errors.append(f"{key} {route_text(route)}: {exc}")
            for net in (source or {}).get("networks") or ():
                try:
                    nl.route_write(net["action"], net["route"])
                except OSError as exc:
                    errors.append(f"{net['action']} {route_text(net['route'])}: {exc}")
            for entry in result["l2_actions"].get("neighbour") or ():
                try:
                    nl.neigh_write("replace", entry)
                except OSError as exc:
                    errors.append(f"neighbour {entry['dst']} lladdr {entry['lladdr']}: {exc}")
            for entry in result["l2_actions"].get("fdb") or ():
                try:
                    nl.fdb_write("replace", entry)
                except OSError as exc:
                    errors.append(f"fdb {entry['lladdr']} dst {entry['dst']}: {exc}")
            for route in result["workload_routes"]:
                try:
                    nl.route_write("replace", route)
                except OSError as exc:
                    errors.append(f"workload route {route_text(route)}: {exc}")
        now = self._time("apply", start)

        with _netlink.Netlink() as nl:
            snap = nl.snapshot()
            routes = snap["routes"]
            failed = _routes.verify(actions, routes)
            if source and source["networks"]:
                # Verified when a new plan over every peer finds nothing left to do for the network.
                try:
                    again, lookups = self._plan_source(nl, snap, source["calico_ip"])
                    left = {net["network"] for net in again["networks"]}
                except ValueError:  # the Calico IP left its interface meanwhile
                    lookups, left = {}, {net["network"] for net in source["networks"]}
                for net in source["networks"]:
                    net["after"] = [_routes.lookup_text(peer, lookups.get(peer)) for peer in net["peers"]]
                    net["verified"] = net["network"] not in left
                    if not net["verified"]:
                        failed.append({"action": net["action"], "route": net["route"],
                                       "now": "; ".join(net["after"])})
        residual = _contract.route_drift(routes, self.expected, result["host"], neighbours=snap["neighbours"],
                                         fdb=snap["fdb"])
        failed += [{"action": "restore", "route": {"dst": item["dst"], "dev": "vxlan.calico"}, "now": item["kind"]}
                   for item in residual["drift"] if item["kind"] in _contract.L2_KINDS]
        left = {w["dst"] for w in _contract.workload_routes(_contract.workload_state(snap))}
        failed += [{"action": "add", "route": r, "now": "missing"}
                   for r in result["workload_routes"] if r["dst"] in left]
        result.update(verified=not failed and not errors, residual_drift=residual["drift"])
        self._time("verify", now)
        if errors:
            self.fail("the kernel refused some changes: " + "; ".join(errors), not_applied=errors, not_verified=failed)
        if failed:
            self.fail("changes did not stick (BIRD or Felix may have put routes back, or a policy rule wins): "
                      + "; ".join(f"{f['action']} {route_text(f['route'])} -> now {f['now']}" for f in failed),
                      not_verified=failed)
        self.module.exit_json(**result)


def build_module():
    return AnsibleModule(
        argument_spec={
            "expected_map": {"type": "dict", "required": True},
            "host": {"type": "str"},
            "fix_next_hops": {"type": "bool", "default": True},
            "add_missing": {"type": "bool", "default": True},
            "remove_orphans": {"type": "bool", "default": True},
            "protocols": {"type": "list", "elements": "str", "default": list(_routes.DEFAULT_PROTOCOLS)},
            "touch_foreign": {"type": "bool", "default": False},
            "source_routes": {"type": "bool", "default": False},
            "source_route_gateway": {"type": "str"},
            "allow_default_route": {"type": "bool", "default": False},
            "max_deletes": {"type": "int"},
            "force": {"type": "bool", "default": False},
            "workload_routes": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )


def main():
    repair = RouteRepair(build_module())
    if not _netlink.HAS_PYROUTE2:
        repair.fail(_netlink.missing_pyroute2(), exception=_netlink.PYROUTE2_IMPORT_ERROR)
    try:
        repair.run()
    except OSError as exc:
        repair.fail(f"netlink: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
