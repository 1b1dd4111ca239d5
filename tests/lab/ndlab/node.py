"""A node's namespaces and processes: the keeper that owns its mount and UTS namespaces, and
what runs inside it (recorded in node["procs"])."""

import hashlib
import os
import socket

from .addressing import POD_MTU
from .errors import LabError
from .render import cni_conflist, sshd_config
from .runner import PATH_ENV, alive, log_tail, poll, remove_file, run, spawn, stop_records, write_text
from .state import lab_dir, node_dir

KEEPER_SH = """set -e
S={d}
hostname {hostname}
mount -n -t overlay lab-etc -o lowerdir=/etc,upperdir=$S/etc-upper,workdir=$S/etc-work /etc
mount -n -t overlay lab-varlib -o lowerdir=/var/lib,upperdir=$S/varlib-upper,workdir=$S/varlib-work /var/lib
mkdir -p /var/lib/calico
mount -n --bind $S/calico-lib /var/lib/calico
# A private /run (NetworkManager, dbus, sshd, calico) that still shows the lab's state dir.
mount -n -t tmpfs -o mode=0755,size=64m lab-run $S/run
mkdir -p $S/run/netdoctor-lab/{lab} $S/run/calico $S/run/dbus $S/run/sshd $S/run/NetworkManager $S/run/lock
mount -n --bind {labdir} $S/run/netdoctor-lab/{lab}
mount -n --bind $S/calico-run $S/run/calico
mount -n --move $S/run /run
: > $S/ready
exec sleep infinity
"""


def start_keeper(lab, node):
    d = node_dir(lab, node)
    for sub in ("etc-upper", "etc-work", "varlib-upper", "varlib-work", "calico-lib",
                "calico-run", "run"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    remove_file(os.path.join(d, "ready"))
    mtu = POD_MTU[lab["mode"]]
    write_text(os.path.join(d, "calico-lib", "nodename"), node["name"])
    write_text(os.path.join(d, "calico-lib", "mtu"), f"{mtu}\n")
    script = os.path.join(d, "keeper.sh")
    write_text(script, KEEPER_SH.format(d=d, hostname=node["hostname"], lab=lab["name"],
                                        labdir=lab_dir(lab["name"])), 0o755)
    node["procs"]["keeper"] = spawn(
        ["ip", "netns", "exec", node["namespace"], "unshare", "--mount", "--uts",
         "--propagation", "private", "--", "/bin/sh", script], os.path.join(d, "keeper.log"))
    ready = poll(lambda: os.path.exists(os.path.join(d, "ready"))
                 or not alive(node["procs"]["keeper"]), 15, 0.02)
    if not ready or not os.path.exists(os.path.join(d, "ready")):
        raise LabError(f"{node['name']}: keeper failed: {log_tail(os.path.join(d, 'keeper.log'))}")
    etc = node_path(node, "/etc")
    write_text(f"{etc}/hostname", node["hostname"] + "\n")
    # Its own machine id (faults_host.machine_id): the overlay would show every node the machine's.
    write_text(f"{etc}/machine-id", hashlib.sha256(f"{lab['name']}/{node['name']}".encode()).hexdigest()[:32] + "\n")
    write_text(f"{etc}/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               f"{node['underlay_ip']}\t{node['hostname']}\n")
    write_text(f"{etc}/cni/net.d/10-calico.conflist", cni_conflist(lab, node))


def keeper(node):
    rec = node["procs"].get("keeper")
    if not alive(rec):
        raise LabError(f"{node['name']}: its keeper process is gone; `labctl down` and `up` again")
    return rec["pid"]


def node_path(node, path):
    """A path as the node sees it (its own /etc, /var/lib, /run), through its keeper's root."""
    return f"/proc/{keeper(node)}/root{path}"


def start_in_node(lab, node, key, argv, env=None):
    """Start argv in the node's namespaces, in its own session, and record its pid."""
    cmd = ["nsenter", "-t", str(keeper(node)), "-m", "-u", "-n", "--"] + argv
    rec = spawn(cmd, os.path.join(node_dir(lab, node), f"{key}.log"),
                env=env or {"PATH": PATH_ENV, "LANG": "C.UTF-8"})
    node["procs"][key] = rec
    return rec


def stop_in_node(node, *keys):
    stop_records([node["procs"].pop(k) for k in keys if k in node["procs"]])


def start_sshd(lab, node):
    d = node_dir(lab, node)
    key = os.path.join(d, "ssh_host_ed25519_key")
    if not os.path.exists(key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node["name"], "-f", key])
    write_text(os.path.join(d, "sshd_config"), sshd_config(lab, node))
    start_in_node(lab, node, "sshd", ["/usr/sbin/sshd", "-D", "-e", "-f",
                                      os.path.join(d, "sshd_config")])


def sshd_ready(node):
    try:
        with socket.create_connection((node["underlay_ip"], 22), timeout=1) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False
