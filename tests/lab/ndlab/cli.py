"""labctl - a Calico node data plane in network namespaces (netdoctor.calico test lab).

Every node is a network namespace plus a keeper process that owns the node's mount and
UTS namespaces (own hostname, own /etc, /var/lib and /run). In it run what a Calico node
runs, or a faithful stand-in: BIRD 1.6 (bgp, ipip), sshd, a `calico-node` process whose
environment carries calico-node's settings, and NetworkManager with a private dbus when a
fault needs it. Pods are namespaces wired exactly as Calico's CNI plugin and Felix wire
them. The lab state (its "datastore") is /run/netdoctor-lab/<name>/state.json.

Subcommands (all need root):
  up --name N --nodes K --mode bgp|vxlan|ipip [--pods-per-node P] [--extra-nic] [--nm]
      Build and wait until converged (BGP Established, every remote block route present).
      Idempotent; cleans up after itself on failure. Prints the lab record (see `show`).
  down --name N          Remove everything the lab made; success when nothing is left.
  inventory --name N     Print the path of the lab's Ansible inventory (group calico_nodes).
  kubeconfig --name N    Print the path of the lab's kubeconfig, for tests/lab/kubectl (below).
  nodes --name N         Print the nodes as a JSON list (schema below).
  show --name N          Print the lab record: {"name","mode","slot","pods_per_node",
                         "extra_nic","nm","controller_ip","gateway_ip","faults":[{"fault",
                         "node",...}],"nodes":[<node>...]}.
  list                   Print every lab as {"name","mode","slot","nodes"}.
  exec --name N NODE|POD -- CMD...
                         Run CMD in a node (net+mount+UTS namespaces of its keeper) or in a
                         pod (its network namespace); exit code and stdio passed through.
  ping --name N          All-pairs pod ping (`ping -c 1 -W 1`, a pair fails when two in a row
                         get no reply); prints a JSON matrix, then `X passed, Y failed`.
                         Exit 0 only when nothing failed.
  fault --name N FAULT [--node NODE]   Inject a fault (default node: the last one).
  heal --name N          Undo every fault and wait for a converged, fully pingable lab.

Node record (`nodes`, `show`):
  {"name": "node1", "hostname": "node1", "namespace": "nd-<lab>-node1",
   "pid": <keeper pid>, "underlay": ["192.0.2.75/26"], "extra": ["198.51.100.75/26"] | [],
   "calico_ip": <registered IP, the lab's datastore>, "intended_ip": <underlay IP>,
   "asn": 64512, "blocks": ["198.18.65.0/26"],
   "tunnel_device": null | "tunl0" | "vxlan.calico", "tunnel_address": null | "198.18.65.0",
   "vxlan_mac": null | "66:..", "autodetection_method": null | "interface=^eth0$",
   "calico_node": {"ready": true | false (crash-looping), "message": <its startup log line>},
   "processes": {"keeper": pid, "calico-node": pid, "sshd": pid, "bird": pid, ...},
   "pods": [{"name": "node1-p1", "namespace": "nd-<lab>-node1-p1" (its netns),
             "ip": "198.18.65.1", "interface": "cali<11 hex>"}]}

Addressing (documentation/benchmark ranges only). A lab takes the lowest free slot k in
0..3 whose ranges collide with nothing in the root namespace (on a host whose own uplink is
in 192.0.2.0/24, slot 0 is skipped). Underlay 192.0.2.64k/26: controller (root namespace,
on bridge nd-<lab>-u) .64k+1, gateway namespace nd-<lab>-gw .64k+62 (forwards, no default
route), node i .64k+10+i. Extra NIC network 198.51.100.64k/26 (isolated bridge ports, no
gateway): node i .64k+10+i. Pod block of node i: 198.18.(64k+i).0/26; tunnel address .0,
pods .1, .2, ...

Modes:
  bgp    BIRD full iBGP mesh (AS 64512), `blackhole <block> proto bird`, remote blocks
         `via <peer IP> dev eth0 proto bird`.
  vxlan  No BIRD. vxlan.calico (VNI 4096, port 4789, local = node IP, MTU 1450) with
         routes, permanent neighbours and FDB as Felix programs them; blackhole proto 80.
  ipip   BIRD for the sessions only (Felix owns IPIP routes, Calico v3.33+). This kernel has
         no ipip module, so tunl0 is IPIP-SHAPED, NOT IP-in-IP: a VXLAN device (VNI 1, port
         4789) WITHOUT a local address, so, exactly as with IPIP, the outer source address is
         whatever the kernel route lookup towards the peer picks. MTU 1480, routes
         `<block> via <peer IP> dev tunl0 proto 80 onlink`.
  In ipip and vxlan modes each node runs an nftables table `ip calico` that, like Felix,
  accepts encapsulated packets only from registered node IPs.

Faults: nm-unmanaged-missing, nm-unmanaged-overridden, autodetect-wrong-nic (needs
--extra-nic), stale-route, missing-route (ipip, vxlan), src-asym, rp-filter-strict,
no-ip-forward, proxy-arp-off, bgp-peer-down (bgp, ipip). tests/lab/README.md describes each one's effect.

Cluster emulation: tests/lab/kubectl is a kubectl for the lab (the subset the collection
runs), found through `kubeconfig` (server https://127.0.0.1:6443, never contacted). The lab
has one calico-node DaemonSet (kube-system): its template's env is every stand-in's env.
`kubectl set env daemonset/calico-node ...` changes the template and rolls it out like the
DaemonSet controller (RollingUpdate, maxUnavailable 1): each calico-node restarts with the
new env (new pid), re-detects its IPv4 address as calico-node's startup does (IP=autodetect
with first-found, interface=, skip-interface=, cidr=, can-reach=, kubernetes-internal-ip;
links in reverse ifindex order, unanchored regexes; kept when nothing matches), the
datastore registers it and the fleet is re-rendered; an unknown method makes calico-node
terminate: the stand-in stops, the node keeps its registered IP and the rollout halts.
`kubectl get nodes|ipamblocks.crd.projectcalico.org|blockaffinities.crd.projectcalico.org`
show the datastore in the Kubernetes-datastore shapes. `heal` restores the template.

Exit codes: 0 ok, 1 failure, 2 usage error (bad name, fault not applicable to the lab).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, wait

from .addressing import MODES
from .build import teardown, up
from .errors import LabError, UsageError
from .faults import FAULTS, heal, inject
from .model import lab_record, node_by_name, node_record
from .node import keeper
from .render import inventory_text, kubeconfig_text
from .runner import check_root, in_netns, write_text
from .state import all_labs, check_name, lab_dir, load, locked

MAX_NODES = 50
MAX_PODS = 60


def json_out(obj):
    print(json.dumps(obj, indent=2))


def cmd_up(args):
    check_name(args.name)
    check_root()
    if not 1 <= args.nodes <= MAX_NODES:
        raise UsageError(f"--nodes must be 1..{MAX_NODES}")
    if not 0 <= args.pods_per_node <= MAX_PODS:
        raise UsageError(f"--pods-per-node must be 0..{MAX_PODS}")
    with locked():
        json_out(lab_record(up(args)))
    return 0


def cmd_down(args):
    check_name(args.name)
    check_root()
    with locked():
        teardown(args.name, load(args.name, required=False))
    return 0


def cmd_nodes(args):
    lab = load(args.name)
    json_out([node_record(lab, n) for n in lab["nodes"]])
    return 0


def cmd_show(args):
    json_out(lab_record(load(args.name)))
    return 0


def cmd_list(args):
    json_out([{"name": lab["name"], "mode": lab["mode"], "slot": lab["slot"],
               "nodes": len(lab["nodes"])} for lab in all_labs()])
    return 0


def cmd_inventory(args):
    lab = load(args.name)
    path = os.path.join(lab_dir(lab["name"]), "inventory.yml")
    write_text(path, inventory_text(lab))
    print(path)
    return 0


def cmd_kubeconfig(args):
    lab = load(args.name)
    path = os.path.join(lab_dir(lab["name"]), "kubeconfig")
    write_text(path, kubeconfig_text(lab), 0o600)
    print(path)
    return 0


def cmd_exec(args):
    lab = load(args.name)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError("exec needs a command after --")
    pods = {pod["name"]: pod for node in lab["nodes"] for pod in node["pods"]}
    if args.node in pods:
        argv = in_netns(pods[args.node]["namespace"], cmd)
    else:
        node = node_by_name(lab, args.node)
        argv = ["nsenter", "-t", str(keeper(node)), "-m", "-u", "-n", "--"] + cmd
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def cmd_ping(args):
    lab = load(args.name)
    pods = [pod for node in lab["nodes"] for pod in node["pods"]]
    pairs = [(a, b) for a in pods for b in pods if a is not b]

    def one(pair):
        src, dst = pair
        cmd = in_netns(src["namespace"], ["ping", "-c", "1", "-W", "1", "-q", dst["ip"]])
        # A second try, so that a busy machine losing one reply does not fail a healthy pair.
        for _attempt in range(2):
            try:
                if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  timeout=10, check=False).returncode == 0:
                    return True
            except subprocess.TimeoutExpired:
                pass
        return False

    pool = ThreadPoolExecutor(max_workers=32)
    futures = {pool.submit(one, pair): pair for pair in pairs}
    done, _pending = wait(futures, timeout=args.timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    matrix = {a["name"]: {} for a in pods}
    failures = []
    for fut, (src, dst) in futures.items():
        ok = fut in done and fut.result()
        matrix[src["name"]][dst["name"]] = ok
        if not ok:
            failures.append([src["name"], dst["name"]])
    print(json.dumps({"lab": lab["name"], "pods": [p["name"] for p in pods], "matrix": matrix,
                      "failures": sorted(failures)}))
    print(f"{len(pairs) - len(failures)} passed, {len(failures)} failed")
    return 0 if not failures else 1


def cmd_fault(args):
    check_root()
    with locked():
        lab = load(args.name)
        inject(lab, args.fault, args.node)
        json_out(lab_record(lab))
    return 0


def cmd_heal(args):
    check_root()
    with locked():
        lab = load(args.name)
        heal(lab)
        json_out(lab_record(lab))
    return 0


def parser():
    ap = argparse.ArgumentParser(prog="labctl", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        if name != "list":
            p.add_argument("--name", required=True, help="lab name, [a-z][a-z0-9]{0,5}")
        return p

    p = add("up", cmd_up, "build a lab and wait until it converged")
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--pods-per-node", type=int, default=2)
    p.add_argument("--extra-nic", action="store_true", help="a second, isolated NIC eth1")
    p.add_argument("--nm", action="store_true",
                   help="run NetworkManager on every node with Calico's calico.conf")
    add("down", cmd_down, "remove a lab")
    add("inventory", cmd_inventory, "print the path of the lab's Ansible inventory")
    add("kubeconfig", cmd_kubeconfig, "print the path of the kubeconfig tests/lab/kubectl serves")
    add("nodes", cmd_nodes, "print the nodes as JSON")
    add("show", cmd_show, "print the lab record as JSON")
    add("list", cmd_list, "print all labs as JSON")
    p = add("exec", cmd_exec, "run a command in a node or a pod")
    p.add_argument("node", help="node name (node1) or pod name (node1-p1)")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p = add("ping", cmd_ping, "all-pairs pod ping")
    p.add_argument("--timeout", type=float, default=120, help="bound for the whole run (s)")
    p = add("fault", cmd_fault, "inject a fault")
    p.add_argument("fault", help=", ".join(FAULTS))
    p.add_argument("--node", help="default: the last node")
    add("heal", cmd_heal, "undo all faults")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    # TERM unwinds like Ctrl-C, so a killed `up` still cleans up what it made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return args.func(args)
    except LabError as exc:
        print(f"labctl: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:     # `labctl nodes | head`
        sys.stderr.close()
        return 0
