#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_bgp_firewall
short_description: Let BGP between Calico nodes through the host's nftables firewall
version_added: 0.1.0
description:
  - Calico's BGP needs TCP port 179 both ways between nodes. A host firewall that drops it leaves the BGP sessions down
    (the catalogue's BGP001). This module reads the running nftables ruleset (C(nft -j list ruleset), which also holds
    the rules of iptables-nft), follows the packets of a BGP session with each of O(peers) through every input and
    output base chain the way the kernel does, and names the rules and policies that drop them in RV(blocking).
  - 'Each base chain that drops (or may drop) any of these packets gets accept rules at its head, scoped to the peers
    and the port and marked with the comment C(netdoctor.calico: BGP with Calico peers) - for example
    C(ip saddr { 198.51.100.11, 198.51.100.12 } tcp dport 179 accept) and the same with C(tcp sport 179) on input,
    C(ip daddr ...) on output; C(ip6) rules for IPv6 peers. Chains that let BGP through get nothing. In the
    C(INPUT)/C(OUTPUT) chains of iptables-nft the rules name one peer each, because C(iptables-nft-save) cannot print a
    set of addresses and would save the rule as an accept from anyone.'
  - Every change is one C(nft -f -) batch, which the kernel applies atomically. Afterwards the module reads the ruleset
    again and fails, naming the chain, when a BGP packet is still dropped.
  - The packets judged, per peer - input, the peer's connection to O(port) (C(ct state new)) and the peer's answers to
    this node's connection (from O(port), C(ct state established)); output, the mirror images.
    Rules that match on what the module cannot know (interfaces other than C(lo), marks, rate limits, iptables-nft
    C(xt) matches such as C(-m conntrack)) are judged conservatively - a drop that may match is reported with
    C(certain=false) and fixed, an accept that may match is assumed not to.
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
  peers:
    description:
      - The Calico IPs (IPv4 and/or IPv6) of the nodes this node has BGP sessions with - the other nodes of a full
        mesh, or the route reflectors.
      - Required, and not empty, with O(state=present); ignored with O(state=absent).
      - The rules list exactly these addresses, sorted; a run with another list replaces the rules.
    type: list
    elements: str
    default: []
  local_addresses:
    description:
      - This node's own Calico IPs, at most one IPv4 and one IPv6 address. They decide rules that match this node's
        address (C(ip daddr) on input, C(ip saddr) on output); without them such a rule may match.
    type: list
    elements: str
    default: []
  port:
    description:
      - The BGP port (Calico's C(listenPort) in its C(BGPConfiguration)).
    type: int
    default: 179
  state:
    description:
      - V(present) puts the accept rules where BGP is dropped (and removes them where nothing drops it any more).
      - V(absent) deletes every rule carrying the module's comment, in every chain, whatever O(peers) says.
    type: str
    choices: [present, absent]
    default: present
  nft:
    description:
      - The C(nft) binary, a name looked up in C(PATH) and C(/usr/sbin), or a path.
      - When the default C(nft) is not found there is no nftables ruleset to read - the module changes nothing, warns
        and returns RV(firewall=none). A given path that does not exist is an error.
    type: str
    default: nft
notes:
  - The rules are B(not persistent) - they live in the running ruleset only (RV(persistent) is always V(false)).
    A reboot, C(systemctl restart nftables), or a reload by firewalld or ufw replaces the ruleset and removes them.
    Make them permanent in the firewall's own configuration (C(/etc/nftables.conf), a firewalld rich rule,
    C(ufw allow from PEER to any port 179 proto tcp)), or for a plain nftables host save the running ruleset
    (C(nft list ruleset > /etc/nftables.conf)) after checking it.
  - There is no backup option - nothing is written to disk. RV(before) holds the changed chains' rules as they were.
  - Felix's own nftables tables (C(ip calico), C(ip6 calico)) and its iptables-nft chains (C(cali-*)) are neither
    judged nor changed - Felix rewrites them and lets BGP through itself (its failsafe ports include tcp:179 both ways).
    A jump into a C(cali-) chain is passed over.
  - Judged are the base chains of type C(filter) or C(route) with hook C(input) or C(output) in the C(ip), C(ip6) and
    C(inet) families - a packet passes only if every one of them accepts it. Chains on other hooks (C(prerouting),
    C(forward)), the C(netdev), C(bridge) and C(arp) families, and iptables-legacy rules (not in nftables) are not.
  - A rule saved and restored with C(iptables-nft-save) and C(iptables-nft-restore) loses its nftables comment, so the
    module no longer recognises it as its own.
seealso:
  - name: Calico - network requirements
    description: The ports Calico needs open between hosts, BGP's TCP/179 among them.
    link: https://docs.tigera.io/calico/latest/getting-started/kubernetes/requirements#network-requirements
  - module: netdoctor.calico.calico_node_facts
"""

EXAMPLES = r"""
- name: Let BGP with the other nodes through this node's firewall
  netdoctor.calico.calico_bgp_firewall:
    peers: "{{ groups['calico_nodes'] | difference([inventory_hostname]) | map('extract', hostvars, 'calico_ip') }}"
    local_addresses:
      - "{{ calico_ip }}"

- name: Only show what blocks BGP and what would change
  netdoctor.calico.calico_bgp_firewall:
    peers: [198.51.100.11, 198.51.100.12, "2001:db8:100::12"]
  check_mode: true
  register: bgp_fw

- name: Show the rules that drop BGP
  ansible.builtin.debug:
    var: bgp_fw.blocking

- name: Remove the module's rules again
  netdoctor.calico.calico_bgp_firewall:
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
    - What drops (or may drop) a BGP packet in the ruleset as it was read, one entry per rule or policy and base chain;
      empty with O(state=absent), which judges nothing.
    - C(chain) holds the rule, C(base_chain) is the hooked chain it decides for (they differ after a C(jump));
      C(handle) is null for a chain's policy; C(certain) is false when the rule's match, or the way to it, depends on
      what the module cannot know; C(packets) says which packets it drops.
  returned: always
  type: list
  elements: dict
  sample:
    - family: inet
      table: filter
      chain: input
      base_chain: input
      hook: input
      handle: 7
      rule: ip saddr 198.51.100.12 tcp dport 179 drop
      certain: true
      packets: [from 198.51.100.12 to port 179]
actions:
  description: The nft commands of the batch, in order (run unless in check mode). Inserts put the last rule in first.
  returned: always
  type: list
  elements: str
  sample:
    - delete rule inet filter input handle 21
    - 'insert rule inet filter input ip saddr { 198.51.100.11, 198.51.100.12 } tcp sport 179 accept comment
      "netdoctor.calico: BGP with Calico peers"'
    - 'insert rule inet filter input ip saddr { 198.51.100.11, 198.51.100.12 } tcp dport 179 accept comment
      "netdoctor.calico: BGP with Calico peers"'
before:
  description: Every rule of the changed chains before the change, in order, with its handle.
  returned: always
  type: list
  elements: dict
  sample: [{"family": "inet", "table": "filter", "chain": "input", "handle": 7,
            "rule": "ip saddr 198.51.100.12 tcp dport 179 drop"}]
verified:
  description:
    - True when the ruleset read after the run lets every BGP packet through (O(state=present)) or holds none of the
      module's rules (O(state=absent)); the module fails otherwise. False in check mode when something would change,
      and when there is no nftables ruleset.
  returned: always
  type: bool
  sample: true
persistent:
  description: Always false - the rules are in the running ruleset only; see the notes for making them permanent.
  returned: always
  type: bool
  sample: false
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


def leftovers(planned, present):
    """Why the ruleset read after the run is not what was asked for, or None."""
    if present and planned["blocking"]:
        return "BGP is still dropped after the change: " + "; ".join(
            f"{r['family']} {r['table']} {r['chain']} ({r['rule']}) drops {', '.join(r['packets'])}"
            for r in planned["blocking"])
    if not present and planned["actions"]:
        chains = ", ".join(f"{c['family']} {c['table']} {c['chain']}" for c in planned["changes"])
        return f"rules marked '{_firewall.MARKER}' are still in chains: {chains}"
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "peers": {"type": "list", "elements": "str", "default": []},
            "local_addresses": {"type": "list", "elements": "str", "default": []},
            "port": {"type": "int", "default": 179},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "nft": {"type": "str", "default": "nft"},
        },
        supports_check_mode=True,
    )
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    params = module.params
    present = params["state"] == "present"
    result = {"changed": False, "firewall": "none", "blocking": [], "actions": [], "before": [], "verified": False,
              "persistent": False}
    try:
        peers, local = _firewall.check_params(params["peers"] if present else [], params["port"],
                                              params["local_addresses"], params["state"])
    except ValueError as exc:
        module.fail_json(msg=str(exc), **result)

    nft = module.get_bin_path(params["nft"], opt_dirs=SBIN)
    if nft is None:
        if params["nft"] != "nft":
            module.fail_json(msg=f"nft: {params['nft']} not found or not executable", **result)
        module.warn("nft not found: no nftables ruleset was examined (iptables-legacy rules never are)")
        module.exit_json(**result)
    result["firewall"] = "nftables"

    ruleset = read_ruleset(module, nft, result)
    planned = _firewall.plan(ruleset, peers, params["port"], local, params["state"])
    changes = planned["changes"]
    result.update(changed=bool(changes), blocking=planned["blocking"], actions=planned["actions"],
                  before=_firewall.chain_rules(ruleset, changes))
    after = _firewall.simulate(ruleset, changes)
    if changes and not module.check_mode:
        rc, out, err = module.run_command([nft, "-f", "-"], data="\n".join(planned["actions"]))
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
        problem = leftovers(_firewall.plan(after, peers, params["port"], local, params["state"]), present)
        if problem:
            module.fail_json(msg=problem, **result)
        result["verified"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
