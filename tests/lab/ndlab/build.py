"""Bringing a lab up (namespaces, links, keepers, then a reconcile) and tearing one down."""

import contextlib
import os
import shutil
import signal
import sys

from .addressing import POD_MTU, prefix
from .errors import LabError, UsageError
from .model import new_lab
from .node import sshd_ready, start_keeper
from .reconcile import converge, reconcile
from .render import inventory_text
from .runner import (
    alive,
    in_netns,
    ip_batch,
    log_tail,
    pmap,
    poll,
    processes_in,
    run,
    run_json,
    stop_records,
    write_text,
)
from .state import BASE, lab_dir, load, node_dir, pick_slot, save


def make_client_key(lab):
    d = os.path.join(lab_dir(lab["name"]), "ssh")
    os.makedirs(d, mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(lab_dir(lab["name"]), "cp"), mode=0o700, exist_ok=True)
    key = os.path.join(d, "id_ed25519")
    if not os.path.exists(key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"netdoctor-lab-{lab['name']}",
             "-f", key])
    shutil.copyfile(key + ".pub", os.path.join(d, "authorized_keys"))
    os.chmod(os.path.join(d, "authorized_keys"), 0o600)


def all_namespaces(lab):
    out = [lab["gw_namespace"]]
    for node in lab["nodes"]:
        out.append(node["namespace"])
        out += [pod["namespace"] for pod in node["pods"]]
    return out


def build_topology(lab):
    """Namespaces, bridges, veths: one `ip -batch` in the root namespace."""
    p = prefix(lab["name"])
    lines = [f"netns add {ns}" for ns in all_namespaces(lab)]
    lines += [f"link add {lab['bridge']} type bridge",
              f"addr add {lab['controller_ip']}/26 dev {lab['bridge']}",
              f"link add {p}-g type veth peer name eth0 netns {lab['gw_namespace']}",
              f"link set {p}-g master {lab['bridge']} up"]
    if lab["extra_bridge"]:
        lines.append(f"link add {lab['extra_bridge']} type bridge")
    root_links = [lab["bridge"], f"{p}-g"] + ([lab["extra_bridge"]] if lab["extra_bridge"] else [])
    for i, node in enumerate(lab["nodes"], 1):
        # eth0 first, eth1 after: the second NIC gets the higher ifindex (seed 004).
        lines += [f"link add {p}-n{i} type veth peer name eth0 netns {node['namespace']}",
                  f"link set {p}-n{i} master {lab['bridge']} up"]
        root_links.append(f"{p}-n{i}")
        if lab["extra_bridge"]:
            # Isolated ports: nodes cannot reach each other over the second network.
            lines += [f"link add {p}-e{i} type veth peer name eth1 netns {node['namespace']}",
                      f"link set {p}-e{i} master {lab['extra_bridge']} up",
                      f"link set dev {p}-e{i} type bridge_slave isolated on"]
            root_links.append(f"{p}-e{i}")
    lines.append(f"link set {lab['bridge']} up")
    if lab["extra_bridge"]:
        lines.append(f"link set {lab['extra_bridge']} up")
    ip_batch(lines)
    # The root namespace takes no part in IPv6 on lab links (no RAs, no DAD chatter).
    run(["sysctl", "-q", "-w"] + [f"net.ipv6.conf.{x}.disable_ipv6=1" for x in root_links])
    gw = lab["gw_namespace"]
    ip_batch(["link set lo up", f"addr add {lab['gateway_ip']}/26 dev eth0", "link set eth0 up"], gw)
    run(in_netns(gw, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
    pmap(lambda n: build_node_net(lab, n), lab["nodes"])


def build_node_net(lab, node):
    mtu = POD_MTU[lab["mode"]]
    lines = ["link set lo up", f"addr add {node['underlay_ip']}/26 dev eth0", "link set eth0 up"]
    if node["extra_ip"]:
        lines += [f"addr add {node['extra_ip']}/26 dev eth1", "link set eth1 up"]
    lines.append(f"route add default via {lab['gateway_ip']} dev eth0")
    for pod in node["pods"]:
        # What Calico's CNI plugin and Felix program for a workload (calico_internals 2.3).
        lines += [f"link add {pod['interface']} mtu {mtu} address ee:ee:ee:ee:ee:ee type veth "
                  f"peer name eth0 mtu {mtu} address {pod['mac']} netns {pod['namespace']}",
                  f"link set {pod['interface']} up",
                  f"route add {pod['ip']}/32 dev {pod['interface']} scope link proto boot",
                  f"neigh add {pod['ip']} lladdr {pod['mac']} dev {pod['interface']} nud permanent"]
    ip_batch(lines, node["namespace"])
    for pod in node["pods"]:
        ip_batch(["link set lo up", f"addr add {pod['ip']}/32 dev eth0", "link set eth0 up",
                  "route add 169.254.1.1 dev eth0 scope link",
                  "route add default via 169.254.1.1 dev eth0"], pod["namespace"])
    node["netns_inode"] = os.stat(f"/run/netns/{node['namespace']}").st_ino


def up(args):
    """Under the lock: the lab `args` asks for, built, or re-asserted when it already runs."""
    lab = load(args.name, required=False)
    if lab:
        same = (lab["mode"], len(lab["nodes"]), lab["pods_per_node"], lab["extra_nic"],
                lab["nm"]) == (args.mode, args.nodes, args.pods_per_node, args.extra_nic, args.nm)
        healthy = lab["status"] == "ready" and all(
            alive(n["procs"].get("keeper")) for n in lab["nodes"])
        if healthy and not same:
            raise UsageError(f"lab {args.name} exists with mode={lab['mode']} "
                             f"nodes={len(lab['nodes'])} pods={lab['pods_per_node']} "
                             f"extra_nic={lab['extra_nic']} nm={lab['nm']}; `down` it first")
        if healthy:
            reconcile(lab)
            save(lab)
            if not lab["faults"]:
                converge(lab)
            return lab
        teardown(args.name, lab)     # a half-built or dead lab (e.g. after a reboot)
    lab = new_lab(args, pick_slot())
    os.makedirs(lab_dir(lab["name"]))
    save(lab)
    try:
        build(lab)
    except BaseException:
        # A second Ctrl-C or TERM must not leave a half-removed lab behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            teardown(lab["name"], lab)
        except Exception as exc:
            print(f"labctl: cleaning up after the failure failed too: {exc}", file=sys.stderr)
        raise
    return lab


def build(lab):
    make_client_key(lab)
    for node in lab["nodes"]:
        os.makedirs(node_dir(lab, node), exist_ok=True)
    try:
        build_topology(lab)
        pmap(lambda n: start_keeper(lab, n), lab["nodes"])
        reconcile(lab)
    finally:
        save(lab)   # the recorded pids are what teardown kills
    for node in lab["nodes"]:
        if not poll(lambda node=node: sshd_ready(node), 15, 0.05):
            raise LabError(f"{node['name']}: sshd not answering: "
                           f"{log_tail(os.path.join(node_dir(lab, node), 'sshd.log'))}")
    converge(lab)
    write_text(os.path.join(lab_dir(lab["name"]), "inventory.yml"), inventory_text(lab))
    lab["status"] = "ready"
    save(lab)


def teardown(name, lab):
    """Remove everything lab `name` made; tolerant of a half-built or absent lab."""
    p = prefix(name)
    records = []
    if lab:
        for node in lab["nodes"]:
            records += list(node.get("procs", {}).values())
    stop_records(records)
    namespaces = [ns for ns in run(["ip", "netns", "list"]).stdout.split()
                  if ns.startswith(p + "-")]
    inodes = set()
    for ns in namespaces:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(f"/run/netns/{ns}").st_ino)
    # Whatever still lives in the lab's namespaces (ssh sessions, `labctl exec` shells) can only
    # be there because of the lab; it would pin the namespaces, links and mounts.
    if inodes:
        stop_records(processes_in(inodes))
    if namespaces:
        run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {ns}\n" for ns in namespaces),
            check=False)
    links = [link["ifname"] for link in run_json(["ip", "-j", "link", "show"])
             if link["ifname"].startswith(p + "-")]
    if links:
        run(["ip", "-force", "-batch", "-"], input="".join(f"link del {x}\n" for x in links),
            check=False)
    d = lab_dir(name)
    with open("/proc/self/mountinfo") as fh:
        mounts = [line.split()[4] for line in fh if line.split()[4].startswith(d + "/")]
    for mnt in sorted(mounts, reverse=True):
        run(["umount", "-l", mnt], check=False)
    shutil.rmtree(d, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(BASE)
    leftovers = [ns for ns in run(["ip", "netns", "list"]).stdout.split() if ns.startswith(p + "-")]
    if leftovers or os.path.exists(d):
        raise LabError(f"could not remove lab {name}: namespaces {leftovers}, dir {os.path.exists(d)}")
