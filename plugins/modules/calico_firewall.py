#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_firewall
short_description: Let Calico's flows between nodes (overlay, BGP, Typha) through the host's nftables firewall
version_added: 0.1.0
description:
  - Calico's nodes talk to each other with the flows of O(flows) - V(vxlan) (UDP 4789, or FelixConfiguration's
    C(vxlanPort)), V(vxlan-v6), V(ipip) (IP protocol 4), V(wireguard) (UDP 51820), V(wireguard-v6) (UDP 51821),
    V(bgp) (TCP 179) and V(typha) (TCP 5473). A host firewall that drops one of them breaks the overlay while BGP may
    still be Established (the catalogue's FW001; BGP001 for BGP).
  - The module reads the running nftables ruleset (C(nft -j list ruleset), which also holds the rules of iptables-nft),
    follows each flow's packets with each of O(peers) through every input and output base chain the way the kernel
    does, and names the rules and policies that drop them in RV(blocking).
  - 'Each base chain that drops (or may drop) a flow gets accept rules for that flow at its head, scoped to the peers
    and marked with the comment C(netdoctor.calico: <flow> with Calico peers) - for example
    C(ip saddr { 192.0.2.11, 192.0.2.12 } udp dport 4789 accept) on input and C(ip daddr ...) on output,
    C(meta l4proto 4) for IPIP. Each flow keeps its own rules; the rules of flows not in O(flows) are left alone.'
  - firewalld's own table (C(inet firewalld)) is never changed - firewalld rewrites it at every reload and may own it.
    When a firewalld chain drops a flow, the module changes nothing and fails, listing the C(firewall-cmd) rich rules
    that let the flow in (RV(firewalld_commands)).
  - Every change is one C(nft -f -) batch, which the kernel applies atomically. Afterwards the module reads the ruleset
    again and fails, naming the chain, when a packet of a flow is still dropped.
author:
  - netdoctor.calico contributors (@netdoctor)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details: Reads and judges the ruleset and returns the exact commands it would run; changes nothing.
  diff_mode:
    support: full
    details: The rules of the changed chains before and after (without handles and counter values).
  idempotent:
    support: full
options:
  flows:
    description:
      - The flows to let through (or, with O(state=absent), whose rules to remove).
    type: list
    elements: str
    choices: [vxlan, vxlan-v6, ipip, wireguard, wireguard-v6, bgp, typha]
    required: true
  ports:
    description:
      - Ports other than the defaults, by flow - V(vxlan) FelixConfiguration C(vxlanPort), V(wireguard)
        C(wireguardListeningPort), V(bgp) BGPConfiguration C(listenPort). Ignored for V(ipip), which has no port.
    type: dict
    default: {}
  peers:
    description:
      - The Calico IPs (IPv4 and/or IPv6) of the nodes this node exchanges the flows with - for the overlay, every other
        node of the cluster. Each flow uses the addresses of its IP version.
      - Required, and not empty, with O(state=present); ignored with O(state=absent).
    type: list
    elements: str
    default: []
  local_addresses:
    description:
      - This node's own Calico IPs, at most one IPv4 and one IPv6 address. They decide rules that match this node's
        address; without them such a rule may match.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) puts the accept rules where a flow is dropped (and removes them where nothing drops it any more).
      - V(absent) deletes every rule of the given flows, in every chain, whatever O(peers) says.
    type: str
    choices: [present, absent]
    default: present
  nft:
    description:
      - The C(nft) binary, a name looked up in C(PATH) and C(/usr/sbin), or a path. When the default is not found the
        module changes nothing, warns and returns RV(firewall=none); a given path that does not exist is an error.
    type: str
    default: nft
notes:
  - The rules are B(not persistent) (RV(persistent) is always V(false)); a reboot or a reload of the firewall service
    removes them. Make them permanent in the firewall's own configuration (C(/etc/nftables.conf), the iptables rules
    file, C(ufw allow from PEER to any port 4789 proto udp)).
  - Felix's tables (C(ip calico), C(ip6 calico)) and chains (C(cali-*)) are neither judged nor changed.
  - VXLAN's source port changes with every flow (the local port range), so its packets are judged as C(ct state new)
    in both directions; WireGuard goes from its port to its port; IPIP has no ports.
  - Cloud security groups and firewalls between the nodes are not on the node - the audit's probe matrix points at
    them when probes fail and no node drops the flow. IPIP is IP protocol 4 (C(ipencap)), not 94 (C(ipip)).
seealso:
  - name: Calico - network requirements
    description: The ports and protocols Calico needs open between hosts.
    link: https://docs.tigera.io/calico/latest/getting-started/kubernetes/requirements#network-requirements
  - module: netdoctor.calico.calico_node_facts
"""

EXAMPLES = r"""
- name: Let VXLAN from the other nodes through this node's firewall
  netdoctor.calico.calico_firewall:
    flows: [vxlan]
    peers: "{{ groups['calico_nodes'] | difference([inventory_hostname]) | map('extract', hostvars, 'calico_ip') }}"
    local_addresses: ["{{ calico_ip }}"]

- name: IPIP and BGP, showing only what would change
  netdoctor.calico.calico_firewall:
    flows: [ipip, bgp]
    peers: [192.0.2.11, 192.0.2.12]
  check_mode: true
  register: overlay_fw

- name: VXLAN on FelixConfiguration's vxlanPort
  netdoctor.calico.calico_firewall:
    flows: [vxlan]
    ports: {vxlan: 4790}
    peers: [192.0.2.11, 192.0.2.12]

- name: Remove the module's VXLAN rules again
  netdoctor.calico.calico_firewall:
    flows: [vxlan]
    state: absent
"""

RETURN = r"""
firewall:
  description: V(nftables) when the ruleset was read, V(none) when there is no C(nft) binary (nothing examined).
  returned: always
  type: str
  sample: nftables
blocking:
  description:
    - What drops (or may drop) a packet of a flow in the ruleset as it was read, one entry per flow, rule or policy and
      base chain; empty with O(state=absent).
    - C(flow), C(chain) (holds the rule), C(base_chain) (the hooked chain it decides for), C(handle) (null for a
      policy), C(rule), C(certain) (false when the match or the way to it cannot be judged), C(packets) and, in
      firewalld's table, C(firewalld_zone).
  returned: always
  type: list
  elements: dict
  sample:
    - {flow: vxlan, family: inet, table: filter, chain: input, base_chain: input, hook: input, handle: 7,
       rule: ip saddr 192.0.2.12 udp dport 4789 drop, certain: true, packets: [VXLAN from 192.0.2.12 to port 4789]}
actions:
  description: The nft commands of the batch, in order (run unless in check mode). Inserts put the last rule in first.
  returned: always
  type: list
  elements: str
  sample:
    - 'insert rule inet filter input ip saddr { 192.0.2.11, 192.0.2.12 } udp dport 4789 accept comment
      "netdoctor.calico: VXLAN with Calico peers"'
before:
  description: Every rule of the changed chains before the change, in order, with its handle.
  returned: always
  type: list
  elements: dict
firewalld_commands:
  description: When firewalld's table drops a flow - the C(firewall-cmd) commands that let it in (the module fails).
  returned: always
  type: list
  elements: str
verified:
  description:
    - True when the ruleset read after the run lets every packet of every flow through (O(state=present)) or holds none
      of the flows' rules (O(state=absent)); the module fails otherwise. False in check mode when something would
      change, and when there is no nftables ruleset.
  returned: always
  type: bool
persistent:
  description: Always false - the rules are in the running ruleset only.
  returned: always
  type: bool
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _firewall

SBIN = ["/usr/sbin", "/sbin"]


def read_ruleset(module, nft, result):
    rc, out, err = module.run_command([nft, "-j", "list", "ruleset"])
    if rc != 0:
        module.fail_json(msg=f"{nft} -j list ruleset exited {rc}: {err.strip() or out.strip()}", **result)
    try:
        return _firewall.parse(json.loads(out))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        module.fail_json(msg=f"cannot read the JSON of {nft} -j list ruleset: {exc!r}", **result)


def plan_flows(ruleset, specs, peers, local, state):
    """One plan per flow, each over the ruleset as the earlier ones leave it: (blocking, changes, actions)."""
    blocking, changes, actions, current = [], [], [], ruleset
    for spec in specs:
        mine = [p for p in peers if p.version in spec["versions"]]
        if state == "present" and not mine:
            continue
        planned = _firewall.plan(current, mine, spec["port"] or 1, local, state, spec=spec)
        blocking += [dict(r, flow=spec["name"]) for r in planned["blocking"]]
        changes += planned["changes"]
        actions += planned["actions"]
        current = _firewall.simulate(current, planned["changes"])
    return blocking, changes, actions, current


def firewalld_commands(blocking, specs, peers):
    zones = {}
    for r in blocking:
        if "firewalld_zone" in r:
            zones.setdefault(r["flow"], set()).add(r["firewalld_zone"])
    out = []
    for spec in specs:
        for zone in sorted(zones.get(spec["name"], ()), key=str):
            out += _firewall.firewalld_commands(spec, peers, zone)[:-1]
    return [*out, "firewall-cmd --reload"] if out else []


def main():
    module = AnsibleModule(
        argument_spec={
            "flows": {"type": "list", "elements": "str", "required": True, "choices": list(_firewall.FLOWS)},
            "ports": {"type": "dict", "default": {}},
            "peers": {"type": "list", "elements": "str", "default": []},
            "local_addresses": {"type": "list", "elements": "str", "default": []},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "nft": {"type": "str", "default": "nft"},
        },
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    params = module.params
    present = params["state"] == "present"
    result = {"changed": False, "firewall": "none", "blocking": [], "actions": [], "before": [],
              "firewalld_commands": [], "verified": False, "persistent": False}
    unknown = sorted(set(params["ports"]) - set(_firewall.FLOWS))
    if unknown:
        module.fail_json(msg=f"ports: unknown flow(s) {', '.join(unknown)}", **result)
    try:
        specs = [_firewall.flow(name, int(params["ports"][name]) if name in params["ports"] else None)
                 for name in dict.fromkeys(params["flows"])]
        if any(s["port"] is not None and not 1 <= s["port"] <= 65535 for s in specs):
            raise ValueError("ports: a port is 1-65535")
        peers, local = _firewall.check_params(params["peers"] if present else [], 1, params["local_addresses"],
                                              params["state"])
    except (TypeError, ValueError) as exc:
        module.fail_json(msg=str(exc), **result)

    nft = module.get_bin_path(params["nft"], opt_dirs=SBIN)
    if nft is None:
        if params["nft"] != "nft":
            module.fail_json(msg=f"nft: {params['nft']} not found or not executable", **result)
        module.warn("nft not found: no nftables ruleset was examined (iptables-legacy rules never are)")
        module.exit_json(**result)
    result["firewall"] = "nftables"

    ruleset = read_ruleset(module, nft, result)
    blocking, changes, actions, after = plan_flows(ruleset, specs, peers, local, params["state"])
    result.update(blocking=blocking, firewalld_commands=firewalld_commands(blocking, specs, peers))
    if present and result["firewalld_commands"]:
        module.fail_json(msg="firewalld's own chains drop " + ", ".join(sorted({r["flow"] for r in blocking
                                                                                if "firewalld_zone" in r}))
                         + ": the module does not change firewalld's table (firewalld rewrites it at every reload) "
                         "and changed nothing; let the flows in with firewall-cmd: "
                         + "; ".join(result["firewalld_commands"]), **result)
    result.update(changed=bool(changes), actions=actions, before=_firewall.chain_rules(ruleset, changes))
    if changes and not module.check_mode:
        rc, out, err = module.run_command([nft, "-f", "-"], data="\n".join(actions))
        if rc != 0:
            result["changed"] = False
            module.fail_json(msg=f"nft rejected the batch, nothing was changed: {err.strip() or out.strip()}",
                             **result)
        after = read_ruleset(module, nft, result)
    if module._diff and changes:
        result["diff"] = {"before": _firewall.chains_text(ruleset, changes),
                          "after": _firewall.chains_text(after, changes),
                          "before_header": "nftables ruleset", "after_header": "nftables ruleset"}
    if not (changes and module.check_mode):
        left_blocking, _c, left_actions, _a = plan_flows(after, specs, peers, local, params["state"])
        if present and left_blocking:
            module.fail_json(msg="still dropped after the change: " + "; ".join(
                f"{r['flow']}: {r['family']} {r['table']} {r['chain']} ({r['rule']}) drops {', '.join(r['packets'])}"
                for r in left_blocking), **result)
        if not present and left_actions:
            module.fail_json(msg="rules of the flows are still there: " + "; ".join(left_actions), **result)
        result["verified"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
