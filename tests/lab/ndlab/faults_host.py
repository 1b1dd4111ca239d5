"""Host-configuration faults (issue 15: identities, host network managers, iptables backends, CNI
files, registration, pools). Each one is a state of the node's own files, processes, rules or
legacy iptables that the lab's Felix and confd (reconcile) never touch, so it lasts until heal;
faults.py registers them (FAULTS), applies them after its reconcile (apply) and undoes them
before its heal (heal). Every process is started with start_in_node (recorded by pid, stopped
by down and heal)."""

import base64
import hashlib
import json
import time

from .addressing import MODES
from .model import node_by_name
from .node import keeper, node_path, start_in_node, stop_in_node
from .runner import in_netns, ip_batch, remove_file, run, write_text

ALL_MODES = set(MODES)
FAULTS = {
    "cloned-identity": ALL_MODES,          # the peer's /etc/machine-id and hostname (a cloned VM)
    "networkd-foreign": ALL_MODES,         # systemd-networkd runs with ManageForeign* at their default (yes)
    "nm-cloud-setup": ALL_MODES,           # nm-cloud-setup enabled for EC2, its policy rules in place
    "link-remac": ALL_MODES,               # a .link file with MACAddressPolicy=random for vxlan.calico
    "iptables-legacy-leftovers": ALL_MODES,  # Felix moved to nftables, its cali- chains left in iptables-legacy
    "cni-foreign-first": ALL_MODES,        # 05-cilium.conflist sorts before 10-calico.conflist
    "cni-token-expired": ALL_MODES,        # calico-kubeconfig's token expired an hour ago
    "cni-bin-missing": ALL_MODES,          # containerd's bin_dir lacks the calico binary
    "registered-32": ALL_MODES,            # calico-node pinned to IP=<address>/32 (eth0 has a /26)
    "pool-overlap-bridge": ALL_MODES,      # a docker0 bridge inside the IP pool
}
PEER_FAULTS = ("cloned-identity",)

NETWORKD_DROPIN = "/etc/systemd/networkd.conf.d/calico.conf"
CALICO_LINK = "/etc/systemd/network/00-calico.link"
REMAC_LINK = "/etc/systemd/network/50-vxlan-mac.link"
CLOUD_WANTS = ("/etc/systemd/system/NetworkManager.service.wants/nm-cloud-setup.service",
               "/etc/systemd/system/timers.target.wants/nm-cloud-setup.timer")
CLOUD_DROPIN = "/etc/systemd/system/nm-cloud-setup.service.d/10-ec2.conf"
FOREIGN_CNI = "/etc/cni/net.d/05-cilium.conflist"
CNI_KUBECONFIG = "/etc/cni/net.d/calico-kubeconfig"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
CNI_BIN = "/var/lib/netdoctor-lab-cni/bin"
LEGACY_CHAINS = ("cali-INPUT", "cali-FORWARD", "cali-OUTPUT")
POOL_BRIDGE_CIDR = "198.18.0.1/24"  # inside the lab's pool 198.18.0.0/16, never a lab block (.0.0/24)


def machine_id(lab, node):
    """The node's own /etc/machine-id (the lab's nodes would otherwise share the machine's)."""
    return hashlib.sha256(f"{lab['name']}/{node['name']}".encode()).hexdigest()[:32]


def fake_jwt(exp, sub="system:serviceaccount:kube-system:calico-cni-plugin"):
    """A token shaped like a service-account JWT (the signature is not a signature)."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return ".".join([part({"alg": "RS256", "kid": "netdoctor-lab"}),
                     part({"iss": "https://kubernetes.default.svc", "sub": sub, "exp": int(exp),
                           "iat": int(exp) - 86400}),
                     base64.urlsafe_b64encode(hashlib.sha256(str(exp).encode()).digest()).decode().rstrip("=")])


def kubeconfig(token):
    return ("# Kubeconfig file for Calico CNI plugin.\napiVersion: v1\nkind: Config\nclusters:\n- name: local\n"
            "  cluster:\n    server: https://127.0.0.1:6443\n    insecure-skip-tls-verify: true\nusers:\n"
            f"- name: calico\n  user:\n    token: {token}\ncontexts:\n- name: calico-context\n  context:\n"
            "    cluster: local\n    user: calico\ncurrent-context: calico-context\n")


def _nsenter(node, cmd):
    return ["nsenter", "-t", str(keeper(node)), "-m", "-u", "-n", "--"] + cmd


def _set_hostname(lab, node, name):
    run(_nsenter(node, ["hostname", name]))
    write_text(node_path(node, "/etc/hostname"), name + "\n")
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             f"{node['underlay_ip']}\t{node['hostname']}" + (f" {name}" if name != node["hostname"] else "")]
    write_text(node_path(node, "/etc/hosts"), "\n".join(lines) + "\n")


def _pod_env(node, changes):
    env = [e for e in node["pod_template"] if e["name"] not in changes]
    node["pod_template"] = env + [{"name": k, "value": v} for k, v in changes.items()]


def prepare(lab, node, fault):
    """Before faults.py's reconcile: what reconcile must render (a calico-node pod's env)."""
    name = fault["fault"]
    if name == "registered-32":
        _pod_env(node, {"IP": f"{node['underlay_ip']}/32"})
    elif name == "iptables-legacy-leftovers":
        _pod_env(node, {"FELIX_NFTABLESMODE": "Enabled"})


def apply(lab, node, fault):
    """After faults.py's reconcile: the fault's files, processes and kernel state."""
    name, ns = fault["fault"], node["namespace"]
    if name == "cloned-identity":
        peer = node_by_name(lab, fault["peer"])
        write_text(node_path(node, "/etc/machine-id"), machine_id(lab, peer) + "\n")
        _set_hostname(lab, node, peer["hostname"])
    elif name == "networkd-foreign":
        if "networkd" not in node["procs"]:
            start_in_node(lab, node, "networkd",
                          ["bash", "-c", "exec -a /lib/systemd/systemd-networkd sleep infinity"])
    elif name == "nm-cloud-setup":
        for link in CLOUD_WANTS:
            path = node_path(node, link)
            remove_file(path)
            run(["mkdir", "-p", path.rsplit("/", 1)[0]])
            run(["ln", "-s", "/usr/lib/systemd/system/" + link.rsplit("/", 1)[1], path])
        write_text(node_path(node, CLOUD_DROPIN), "[Service]\nEnvironment=NM_CLOUD_SETUP_EC2=yes\n")
        ip, gw, subnet = node["underlay_ip"], lab["gateway_ip"], lab["underlay_cidr"]
        ip_batch([f"route replace {subnet} dev eth0 table 30200", f"rule add priority 30200 from {ip} table 30200",
                  "rule add priority 30350 table main suppress_prefixlength 0",
                  f"route replace default via {gw} dev eth0 table 30400",
                  f"rule add priority 30400 from {ip} table 30400"], ns)
    elif name == "link-remac":
        write_text(node_path(node, REMAC_LINK), "# a tool's own MAC policy for VXLAN devices\n[Match]\n"
                   "OriginalName=vxlan*\n\n[Link]\nMACAddressPolicy=random\n")
    elif name == "iptables-legacy-leftovers":
        lines = ["*filter"] + [f":{c} - [0:0]" for c in LEGACY_CHAINS]
        lines += [f"-A {c.split('-', 1)[1]} -m comment --comment \"cali:leftover\" -j {c}" for c in LEGACY_CHAINS]
        lines += ["-A cali-FORWARD -m comment --comment \"cali:leftover\" -m mark --mark 0x10000/0x10000 -j ACCEPT",
                  "COMMIT"]
        run(in_netns(ns, ["iptables-legacy-restore", "--noflush"]), input="\n".join(lines) + "\n")
    elif name == "cni-foreign-first":
        write_text(node_path(node, FOREIGN_CNI), json.dumps({
            "cniVersion": "0.3.1", "name": "cilium",
            "plugins": [{"type": "cilium-cni", "enable-debug": False}, {"type": "portmap",
                                                                        "capabilities": {"portMappings": True}}]},
            indent=2) + "\n")
    elif name == "cni-token-expired":
        write_text(node_path(node, CNI_KUBECONFIG), kubeconfig(fake_jwt(time.time() - 3600)), 0o600)
    elif name == "cni-bin-missing":
        write_text(node_path(node, CONTAINERD_CONFIG),
                   'version = 2\n[plugins."io.containerd.grpc.v1.cri".cni]\n'
                   f'  bin_dir = "{CNI_BIN}"\n  conf_dir = "/etc/cni/net.d"\n')
        for plugin in ("calico-ipam", "portmap", "bandwidth"):
            write_text(node_path(node, f"{CNI_BIN}/{plugin}"), "#!/bin/sh\nexit 0\n", 0o755)
    elif name == "pool-overlap-bridge":
        have = run(in_netns(ns, ["ip", "link", "show", "docker0"]), check=False).returncode == 0
        if not have:
            # Down, as docker leaves it with no container: no connected route BIRD could export.
            ip_batch(["link add docker0 type bridge", f"addr add {POOL_BRIDGE_CIDR} dev docker0"], ns)


def undo(lab, node, fault):
    """Undo one fault (heal): files removed, processes stopped, kernel state deleted."""
    name, ns = fault["fault"], node["namespace"]
    if name == "cloned-identity":
        write_text(node_path(node, "/etc/machine-id"), machine_id(lab, node) + "\n")
        _set_hostname(lab, node, node["hostname"])
    elif name == "networkd-foreign":
        stop_in_node(node, "networkd")
        remove_file(node_path(node, NETWORKD_DROPIN))
    elif name == "nm-cloud-setup":
        for path in (*CLOUD_WANTS, CLOUD_DROPIN):
            remove_file(node_path(node, path))
        for prio in (30200, 30350, 30400):
            run(in_netns(ns, ["ip", "rule", "del", "priority", str(prio)]), check=False)
        for table in (30200, 30400):
            run(in_netns(ns, ["ip", "route", "flush", "table", str(table)]), check=False)
    elif name == "link-remac":
        remove_file(node_path(node, REMAC_LINK))
        remove_file(node_path(node, CALICO_LINK))
    elif name == "iptables-legacy-leftovers":
        run(in_netns(ns, ["iptables-legacy-restore"]), input="*filter\nCOMMIT\n", check=False)
    elif name == "cni-foreign-first":
        remove_file(node_path(node, FOREIGN_CNI))
    elif name == "cni-token-expired":
        remove_file(node_path(node, CNI_KUBECONFIG))
    elif name == "cni-bin-missing":
        remove_file(node_path(node, CONTAINERD_CONFIG))
        run(["rm", "-rf", node_path(node, CNI_BIN.rsplit("/", 1)[0])], check=False)
    elif name == "pool-overlap-bridge":
        run(in_netns(ns, ["ip", "link", "del", "docker0"]), check=False)


def heal(lab):
    """Before faults.py's heal clears the list: undo every host fault still in place."""
    for fault in list(lab["faults"]):
        if fault["fault"] in FAULTS:
            node = node_by_name(lab, fault["node"])
            if node is not None:
                undo(lab, node, fault)
