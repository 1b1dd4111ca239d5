"""The incident catalogue's faults, injected by name and healed (tests/lab/README.md, Faults)."""

from . import faults_dataplane, faults_host, faults_path
from .addressing import MODES, proto_name, underlay_ip
from .birdctl import bird_cmd, bird_socket_host_path
from .calico_node import IP_METHOD, default_ds_env, set_template_env
from .errors import UsageError
from .model import faults_on, node_by_name
from .reconcile import converge, reconcile
from .runner import ip_batch
from .state import save

ALL_MODES = set(MODES)
FAULTS = {
    "nm-unmanaged-missing": ALL_MODES,
    "nm-unmanaged-overridden": ALL_MODES,
    "autodetect-wrong-nic": ALL_MODES,
    "stale-route": ALL_MODES,
    # Native BGP has no node-side missing-route fault that lasts: BIRD re-asserts its routes every
    # 2 s, so a route is missing there only through its session (bgp-peer-down) or its configuration.
    "missing-route": {"ipip", "vxlan"},
    "src-asym": ALL_MODES,
    "rp-filter-strict": ALL_MODES,
    "no-ip-forward": ALL_MODES,
    "proxy-arp-off": ALL_MODES,
    "bgp-peer-down": {"bgp", "ipip"},
}
FAULTS.update(faults_host.FAULTS)
FAULTS.update(faults_dataplane.FAULTS)   # desired state, applied by reconcile (faults_dataplane.apply)
FAULTS.update(faults_path.FAULTS)        # kernel state broken by hand, re-applied after every reconcile
PEER_FAULTS = ("stale-route", "missing-route", "bgp-peer-down", *faults_host.PEER_FAULTS,
               *faults_dataplane.PEER_FAULTS, *faults_path.PEER_FAULTS)


def inject(lab, name, node_name=None):
    """Under the lock: fault `name` on node `node_name` (default: the last node), applied and
    converged; nothing changes when the node has it already."""
    if name not in FAULTS:
        raise UsageError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    if lab["mode"] not in FAULTS[name]:
        raise UsageError(f"fault {name} does not apply to a {lab['mode']} lab "
                         f"(only {', '.join(sorted(FAULTS[name]))})")
    if name == "autodetect-wrong-nic" and not lab["extra_nic"]:
        raise UsageError("fault autodetect-wrong-nic needs a lab made with --extra-nic")
    node = node_by_name(lab, node_name or lab["nodes"][-1]["name"])
    if name in PEER_FAULTS and len(lab["nodes"]) < 2:
        raise UsageError(f"fault {name} needs at least two nodes")
    if faults_on(lab, node, name):
        return
    fault = {"fault": name, "node": node["name"]}
    if name in PEER_FAULTS:
        fault["peer"] = next(n["name"] for n in lab["nodes"] if n is not node)
    if name == "src-asym":
        taken = {f.get("address") for f in lab["faults"]}
        fault["address"] = next(a for a in (underlay_ip(lab["slot"], h) for h in range(2, 10))
                                if a not in taken)
    if name == "autodetect-wrong-nic":
        # The template loses the method (first-found takes the newest NIC), and only this
        # node's pod has been recreated since: the others run the older template.
        set_template_env(lab, [e for e in lab["daemonset"]["env"] if e["name"] != IP_METHOD])
        node["pod_template"] = lab["daemonset"]["env"]
    if name in faults_host.FAULTS:
        faults_host.prepare(lab, node, fault)
    lab["faults"].append(fault)
    try:
        reconcile(lab)
        after_fault(lab, node, fault)
        faults_path.apply(lab)
    finally:
        save(lab)
    if not any(f["fault"] in faults_path.NO_CONVERGE for f in lab["faults"]):
        converge(lab)


def after_fault(lab, node, fault):
    name = fault["fault"]
    if name == "proxy-arp-off":
        for pod in node["pods"]:
            ip_batch(["neigh flush dev eth0"], pod["namespace"])
    elif name == "bgp-peer-down":
        # Drop the established session at once on both ends instead of waiting for hold time.
        peer = node_by_name(lab, fault["peer"])
        for a, b in ((node, peer), (peer, node)):
            bird_cmd(bird_socket_host_path(lab, a), f"restart {proto_name(b['calico_ip'])}")
    elif name in faults_host.FAULTS:
        faults_host.apply(lab, node, fault)


def heal(lab):
    """Under the lock: every fault undone, the original template rolled out, converged."""
    faults_host.heal(lab)
    faults_path.heal(lab)
    lab["faults"] = []
    set_template_env(lab, default_ds_env(lab))
    for node in lab["nodes"]:
        node["pod_template"] = lab["daemonset"]["env"]
    try:
        reconcile(lab)
    finally:
        save(lab)
    # A pod that lost its gateway (proxy-arp-off) keeps a FAILED entry for 169.254.1.1 for a
    # while; forget it so the healed lab answers the first ping.
    for node in lab["nodes"]:
        for pod in node["pods"]:
            ip_batch(["neigh flush dev eth0"], pod["namespace"])
    converge(lab)
    save(lab)
