"""Path faults (issue 12): the node's kernel state broken by hand, the way a person (or a stray
script) breaks a node - plain ip/bridge commands inside the node, or BIRD killed by its pid.

faults.py registers them (FAULTS), applies them after its reconcile (`apply`, for every path fault
in the lab, so a later fault's reconcile does not undo an earlier one) and undoes them before its
heal (`heal`). The lab's Felix (reconcile) does not re-add a pod's /32 route nor touch policy rules;
it does re-program the VXLAN neighbours and FDB and restart a dead BIRD, which is why `apply` runs
after every reconcile until heal. Nothing here is desired state: `heal` restores what `apply` took.
"""

import os
import signal

from .addressing import MODES, proto_name
from .birdctl import bird_cmd, bird_protocols, bird_socket_host_path
from .errors import LabError
from .kernel import route_table
from .model import node_by_name
from .runner import alive, in_netns, ip_batch, poll, reap, run

ALL_MODES = set(MODES)
FAULTS = {
    "workload-route-deleted": ALL_MODES,   # the node's first pod lost its /32 dev caliX route (WL001)
    "vxlan-fdb-deleted": {"vxlan"},         # the peer's FDB entry on vxlan.calico deleted (VX001)
    "vxlan-neigh-deleted": {"vxlan"},       # the peer's permanent VTEP neighbour deleted (VX001)
    "policy-rule-divert": ALL_MODES,       # to <peer block> lookup 100, where table 100 blackholes it (PBR001)
    "bird-dead": {"bgp", "ipip"},          # the node's BIRD killed by its pid (BIRD001)
}
PEER_FAULTS = ("vxlan-fdb-deleted", "vxlan-neigh-deleted", "policy-rule-divert")
# inject() must not wait for the usual convergence: the sessions to the node are meant to be down.
NO_CONVERGE = ("bird-dead",)
RULE_PRIORITY = 100
RULE_TABLE = 100


def apply(lab):
    """After faults.py's reconcile: (re-)apply every path fault of the lab."""
    for fault in lab["faults"]:
        if fault["fault"] in FAULTS:
            _apply(lab, node_by_name(lab, fault["node"]), fault)


def _apply(lab, node, fault):
    name, ns = fault["fault"], node["namespace"]
    if name == "workload-route-deleted":
        pod = node["pods"][0]
        run(in_netns(ns, ["ip", "route", "del", f"{pod['ip']}/32", "dev", pod["interface"]]), check=False)
    elif name in ("vxlan-fdb-deleted", "vxlan-neigh-deleted"):
        peer = node_by_name(lab, fault["peer"])
        if name == "vxlan-fdb-deleted":
            run(in_netns(ns, ["bridge", "fdb", "del", peer["vxlan_mac"], "dev", "vxlan.calico",
                              "dst", peer["calico_ip"], "self"]), check=False)
        else:
            run(in_netns(ns, ["ip", "neigh", "del", peer["tunnel_address"], "dev", "vxlan.calico"]),
                check=False)
    elif name == "policy-rule-divert":
        block = node_by_name(lab, fault["peer"])["block"]
        ip_batch([f"route replace blackhole {block} table {RULE_TABLE}"], ns)
        rules = run(in_netns(ns, ["ip", "rule", "show", "priority", str(RULE_PRIORITY)])).stdout
        if f"to {block}" not in rules:
            ip_batch([f"rule add to {block} lookup {RULE_TABLE} priority {RULE_PRIORITY}"], ns)
    elif name == "bird-dead":
        _kill_bird(lab, node)


def _kill_bird(lab, node):
    rec = node["procs"].get("bird")
    if alive(rec):
        os.kill(rec["pid"], signal.SIGKILL)     # a crash: no BGP notification, the socket file stays
        poll(lambda: not alive(rec), 5, 0.02)
        reap(rec["pid"])
    # The peers would keep the node's routes for the graceful-restart time (120 s); drop the
    # sessions on their side at once, as bgp-peer-down does instead of waiting for hold time.
    peers = [n for n in lab["nodes"] if n is not node]
    name = proto_name(node["calico_ip"])
    for peer in peers:
        bird_cmd(bird_socket_host_path(lab, peer), f"restart {name}")

    def down():
        for peer in peers:
            if bird_protocols(bird_socket_host_path(lab, peer)).get(name) == "Established":
                return False
            if lab["mode"] == "bgp" and node["block"] in route_table(peer["namespace"]):
                return False
        return True

    if not poll(down, 30, 0.25):
        raise LabError(f"{node['name']}: its peers still hold its BGP sessions or routes after BIRD died")


def heal(lab):
    """Before faults.py's heal clears the list: restore what reconcile does not (the pod's /32
    route, the policy rule and its table); BIRD, neighbours and FDB come back with reconcile."""
    for fault in lab["faults"]:
        if fault["fault"] not in FAULTS:
            continue
        node = node_by_name(lab, fault["node"])
        ns = node["namespace"]
        if fault["fault"] == "workload-route-deleted":
            pod = node["pods"][0]
            ip_batch([f"route replace {pod['ip']}/32 dev {pod['interface']} scope link proto boot"], ns)
        elif fault["fault"] == "policy-rule-divert":
            block = node_by_name(lab, fault["peer"])["block"]
            run(in_netns(ns, ["ip", "rule", "del", "to", block, "lookup", str(RULE_TABLE),
                              "priority", str(RULE_PRIORITY)]), check=False)
            run(in_netns(ns, ["ip", "route", "flush", "table", str(RULE_TABLE)]), check=False)
