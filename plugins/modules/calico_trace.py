#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_trace
short_description: One node's half of the 8-step pod-to-pod trace (seed 003)
version_added: 0.1.0
description:
  - Reads what one node contributes to the trace of pod O(src) to pod O(dst) and back - the eight steps of the
    collection's seed 003 (pod A to node A, node A out toward node B, node B accepts, node B to pod B, and the same
    for the reply).
  - Run it on every node. A node that hosts neither pod answers after two kernel route lookups
    (RV(trace.owns) is empty). A node that hosts one of them (the kernel delivers the pod IP to a C(cali*) veth, or
    the node holds the pod's block) also returns its pod's workload route and veth, the kernel's lookups
    (C(ip route get)) towards both pods and towards the underlay next hop, the VXLAN neighbour and FDB entries on the
    way, the sysctls that gate forwarding (C(ip_forward), C(forwarding), C(proxy_arp), C(rp_filter)), its Calico IP
    and its mode.
  - When the pod's network namespace can be found from the node - a process in it (the pod's pause container) or a
    bind mount under O(netns_dirs) (C(ip netns), containerd, CRI-O, Docker) whose namespace holds the pod IP - it
    also runs a bounded probe from the pod to the other pod (C(ping -n -c 1 -W 1), retried once) and then reads the
    pod's route to the other pod and its neighbour entry for the gateway C(169.254.1.1), which must be the host
    veth's MAC. When the namespace cannot be found, or C(nsenter)/C(ping) are missing, the probe and the pod-side
    reads are skipped and the result says why.
  - The results of all nodes are combined on the controller by the C(netdoctor.calico.trace_steps) filter, which
    names the first failing step; the C(netdoctor.calico.trace) playbook does all of it.
author:
  - netdoctor.calico contributors (@netdoctor)
requirements:
  - pyroute2 >= 0.7.2 on the managed node (the distribution's python3-pyroute2 is enough)
  - C(nsenter) (util-linux) and C(ping) on the managed node, for the probe
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details: The module only reads; the probe sends one or two ICMP echo requests from the pod and changes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: It never changes the node.
options:
  src:
    description:
      - IP address of the pod the trace starts from.
    type: str
    required: true
  dst:
    description:
      - IP address of the pod the trace goes to.
    type: str
    required: true
  probe:
    description:
      - Run the probe from this node's pod to the other pod when the pod's network namespace is found.
      - Without it the pod-side reads still run; the gateway's neighbour entry may then be missing (nothing resolved
        it yet), which is not counted as a failure.
    type: bool
    default: true
  intended_ip:
    description:
      - The address this node should be registered with (for example the inventory's C(calico_intended_ip)). The trace
        quotes it next to the registered IP when they differ (AD001).
    type: str
  bird_socket:
    description:
      - BIRD's control socket; BIRD's router id is the node's registered IP in BGP and IPIP mode.
    type: path
    default: /var/run/calico/bird.ctl
  netns_dirs:
    description:
      - Directories of bind-mounted network namespaces searched for the pod's namespace after the processes.
    type: list
    elements: path
    default: [/run/netns, /var/run/netns, /run/docker/netns, /var/run/docker/netns]
notes:
  - The probe and the pod-side reads stay inside the pod's own network namespace; the probe is bounded to two
    C(ping -n -c 1 -W 1).
  - Namespaces held by processes are matched by reading C(/proc/<pid>/net/fib_trie) (or C(if_inet6)), without
    entering them; only the one holding the pod IP is entered.
"""

EXAMPLES = r"""
- name: Each node's half of the trace
  netdoctor.calico.calico_trace:
    src: 198.18.65.1
    dst: 198.18.66.1
  register: calico_trace

- name: The eight steps, from every node's half
  ansible.builtin.debug:
    msg: "{{ (dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars)
      | map(attribute='calico_trace', default=none))) | netdoctor.calico.trace_steps('198.18.65.1', '198.18.66.1'))
      ['lines'] }}"
  run_once: true
"""

RETURN = r"""
trace:
  description:
    - This node's half. C(owns) lists which of O(src) and O(dst) are pods on this node; when it is empty the other
      keys are absent. The collection's docs/trace.md describes every key.
  returned: always
  type: dict
  contains:
    schema_version:
      description: Version of this layout.
      type: int
      sample: 1
    host:
      description: The node's hostname.
      type: str
      sample: node1
    owns:
      description: The pod IPs of O(src) and O(dst) that live on this node.
      type: list
      elements: str
      sample: [198.18.65.1]
    node_ip:
      description: The node's registered Calico IP as the node knows it, or null.
      type: str
      sample: 192.0.2.75
    node_ip_source:
      description: Where RV(trace.node_ip) was read - C(bird_router_id), C(vxlan_local) or C(calico_node_env).
      type: str
      sample: bird_router_id
    intended_ip:
      description: O(intended_ip), as given.
      type: str
    mode:
      description: Calico's networking mode inferred from the node's devices and routes (bgp, ipip, vxlan, ...).
      type: str
      sample: bgp
    tunnel:
      description: The tunnel device (C(device), C(address), C(mtu), C(up)), or null.
      type: dict
    vxlan:
      description: C(device), C(local) (the outer source address) and C(mac) of vxlan.calico, or null.
      type: dict
    local_blocks:
      description: The node's own IPAM blocks (its blackhole routes).
      type: list
      elements: str
    addresses:
      description: The node's global addresses - C(address), C(prefixlen), C(dev).
      type: list
      elements: dict
    links:
      description:
        - Every link except other pods' veths, by name - C(index), C(name), C(kind), C(up), C(operstate), C(mtu),
          C(mac).
      type: dict
    sysctls:
      description:
        - C(net.ipv4.ip_forward), the all/default C(rp_filter) and, per link of RV(trace.links), C(rp_filter),
          C(proxy_arp) and C(forwarding).
      type: dict
    pods:
      description:
        - Per pod IP on this node - C(interface) (the host veth), C(route) (its workload route), C(block) (the local
          block route), C(netns) (the namespace path used, or null), C(note) (how it was found, or why not), C(pod)
          (the pod side - C(interface), C(operstate), C(mac), C(holds_ip), C(route) to the other pod and
          C(gateway_neighbour)) and C(probe) (C(ran), C(ok), C(attempts), C(command), C(output)).
      type: dict
    paths:
      description:
        - Per pod IP (both) - C(lookup) (the kernel's route lookup), C(routes) (the main-table routes holding the
          address, most specific first) and C(underlay) (toward the other node - C(target), C(via), C(lookup),
          C(neighbour), C(tunnel_neighbour), C(fdb); null for this node's own pods).
      type: dict
"""

import os
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _bird, _netlink, _node_files, _trace

DEFAULT_NETNS_DIRS = ["/run/netns", "/var/run/netns", "/run/docker/netns", "/var/run/docker/netns"]
PROBE_ATTEMPTS = 2  # a second ping only after a lost one: a busy node may drop one reply


def _inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _netns_addresses(path):
    try:
        with _netlink.Netlink(path) as nl:
            return {a["address"] for a in nl.snapshot()["addresses"]}
    except (OSError, ValueError, TimeoutError):
        return set()


def find_pod_netns(ip, netns_dirs, proc="/proc"):
    """(path, note) of the network namespace that holds the pod IP, or (None, why not).

    Processes first (the pod's pause container): their /proc/<pid>/net shows the namespace's
    local addresses without entering it. Then bind-mounted namespaces no process holds, each
    entered once. Every namespace is looked at once, the node's own never."""
    v6 = ":" in ip
    seen = {_inode(f"{proc}/self/ns/net")}
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        pids = []
    for pid in pids:
        ino = _inode(f"{proc}/{pid}/ns/net")
        if ino is None or ino in seen:
            continue
        seen.add(ino)
        text = _read(f"{proc}/{pid}/net/{'if_inet6' if v6 else 'fib_trie'}")
        local = _trace.if_inet6_addresses(text) if v6 else _trace.fib_trie_local_addresses(text)
        if ip in local:
            comm = _read(f"{proc}/{pid}/comm").strip()
            return f"{proc}/{pid}/ns/net", f"the network namespace of process {pid} ({comm})"
    dirs = []
    for directory in netns_dirs:
        real = os.path.realpath(directory)
        if real not in dirs and os.path.isdir(real):
            dirs.append(real)
    for directory in dirs:
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            ino = _inode(path)
            if ino is None or ino in seen:
                continue
            seen.add(ino)
            if ip in _netns_addresses(path):
                return path, f"the bind-mounted network namespace {path}"
    return None, (f"no process's network namespace and none under {', '.join(netns_dirs)} holds {ip}, so the probe "
                  "and the pod-side checks were skipped")


def probe(module, netns, target):
    """A bounded ping from inside the pod's namespace (never from the node's)."""
    nsenter, ping = module.get_bin_path("nsenter"), module.get_bin_path("ping")
    if not nsenter or not ping:
        missing = " and ".join(name for name, path in (("nsenter", nsenter), ("ping", ping)) if not path)
        return {"ran": False, "ok": None, "note": f"{missing} not found on the node, so the probe was skipped"}
    cmd = [nsenter, f"--net={netns}", "--", ping, "-n", "-c", "1", "-W", "1", target]
    rc, out, err = 1, "", ""
    attempts = 0
    while attempts < PROBE_ATTEMPTS:
        attempts += 1
        rc, out, err = module.run_command(cmd)
        if rc == 0:
            break
    summary = next((line for line in out.splitlines() if "transmitted" in line), None)
    return {"ran": True, "ok": rc == 0, "attempts": attempts, "command": " ".join(cmd),
            "output": summary or (err.strip() or out.strip())[-300:]}


def pod_reads(module, ip, other, want_probe):
    """The pod side: find its namespace, probe the other pod, then read the pod's route and the
    gateway's neighbour entry (after the probe, which made the pod resolve it)."""
    netns, note = find_pod_netns(ip, module.params["netns_dirs"])
    info = {"netns": netns, "note": note, "snapshot": None, "lookup": None, "probe": None}
    if netns is None:
        return info
    if want_probe:
        info["probe"] = probe(module, netns, other)
    try:
        with _netlink.Netlink(netns) as nl:
            info["snapshot"] = nl.snapshot()
            info["lookup"] = nl.route_get(other)
    except (OSError, ValueError, TimeoutError) as exc:
        info["note"] = f"{note}, but reading it failed: {exc}"
        info["snapshot"] = None
    return info


def gather(module, src, dst):
    params = module.params
    host = socket.gethostname()
    with _netlink.Netlink() as nl:
        lookups = {ip: nl.route_get(ip) for ip in (src, dst)}
        routes = nl.snapshot()["routes"] if _trace.needs_routes(lookups) else []
        owned = [ip for ip in (src, dst)
                 if _trace.owns(ip, lookups[ip], _trace.covering_routes(routes, ip) if routes else None)]
        if not owned:
            return _trace.node_half(host=host, src=src, dst=dst, snapshot=None, lookups=lookups)
        # The probe goes first, so the neighbour entries read next show what it resolved.
        pods = {ip: pod_reads(module, ip, dst if ip == src else src, params["probe"]) for ip in owned}
        snap = nl.snapshot()
        underlay_lookups = {}
        for ip in (src, dst):
            if ip in owned:
                continue
            under = _trace.underlay_target(lookups[ip], snap["neighbours"], snap["fdb"])
            if under and under["target"]:
                underlay_lookups[under["target"]] = nl.route_get(under["target"])
    sysctls = _node_files.read_sysctls(_trace.half_interfaces(snap, lookups, owned))
    router_id = _bird.bird_facts(params["bird_socket"])["router_id"] if os.path.exists(params["bird_socket"]) else None
    env_ip = None
    if not router_id:
        env_ip = ((_node_files.read_calico_node() or {}).get("env") or {}).get("IP")
    ip, source = _trace.registered_ip(router_id, snap, env_ip)
    return _trace.node_half(host=host, src=src, dst=dst, snapshot=snap, lookups=lookups, sysctls=sysctls,
                            underlay_lookups=underlay_lookups, pods=pods, node_ip=ip, node_ip_source=source,
                            intended_ip=params["intended_ip"])


def build_module():
    return AnsibleModule(
        argument_spec={
            "src": {"type": "str", "required": True},
            "dst": {"type": "str", "required": True},
            "probe": {"type": "bool", "default": True},
            "intended_ip": {"type": "str"},
            "bird_socket": {"type": "path", "default": _bird.DEFAULT_SOCKET},
            "netns_dirs": {"type": "list", "elements": "path", "default": list(DEFAULT_NETNS_DIRS)},
        },
        supports_check_mode=True,
    )


def main():
    module = build_module()
    if not _netlink.HAS_PYROUTE2:
        module.fail_json(msg=_netlink.missing_pyroute2(), exception=_netlink.PYROUTE2_IMPORT_ERROR)
    try:
        src = _trace.ip_text(module.params["src"], "src")
        dst = _trace.ip_text(module.params["dst"], "dst")
        _trace.check_pair(src, dst)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        half = gather(module, src, dst)
    except OSError as exc:
        module.fail_json(msg=f"cannot read the node's network state: {exc}")
    module.exit_json(changed=False, trace=half)


if __name__ == "__main__":
    main()
