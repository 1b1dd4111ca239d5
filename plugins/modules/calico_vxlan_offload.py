#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_vxlan_offload
short_description: Turn VXLAN checksum offload off on vxlan.calico now, as Felix does with ChecksumOffloadBroken
version_added: 0.1.0
description:
  - Where the kernel or the NIC's driver computes the inner checksums of VXLAN packets wrongly or slowly, pods can ping
    each other but TCP stalls or crawls (the catalogue's OFF001; Calico issues 3145, 9433, 11435). Felix turns the
    offload off itself only on kernels up to 5.7, or with FelixConfiguration C(featureDetectOverride)
    C(ChecksumOffloadBroken=true).
  - The module reads the device's feature bits through ethtool's netlink interface (what C(ethtool -k) shows) and, with
    O(tx_checksum=off), asks the kernel to turn every C(tx-checksum-*) bit that is on off (what C(ethtool -K DEVICE tx
    off) and Felix's C(EthtoolTXOff) do), then reads the bits again and fails when one is still on.
  - This lasts until the device is recreated (Felix recreates it when its address or parent changes, a reboot). The
    lasting fix is the override, in RV(remedy); Felix with it turns the offload off at every start.
author:
  - netdoctor.calico contributors (@netdoctor)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details: Reads the bits and says which would change; changes nothing.
  diff_mode:
    support: full
    details: The device's bits as C(ethtool -k) prints them, before and after.
  idempotent:
    support: full
options:
  device:
    description: The VXLAN device.
    type: str
    default: vxlan.calico
  tx_checksum:
    description:
      - V(off) turns the transmit checksum offload off (the fix); V(on) asks for C(tx-checksum-ip-generic) back (to undo
        it where the kernel allows).
    type: str
    choices: ["off", "on"]
    default: "off"
notes:
  - A device that does not exist is not an error - RV(present) is false and nothing changes (a node not in VXLAN mode).
  - Needs CAP_NET_ADMIN (become) to change the bits; reading them needs no privilege.
"""

EXAMPLES = r"""
- name: Turn VXLAN checksum offload off on this node now
  netdoctor.calico.calico_vxlan_offload:

- name: Only show whether it would change
  netdoctor.calico.calico_vxlan_offload:
  check_mode: true
  register: offload

- name: The lasting fix, once for the cluster
  ansible.builtin.command: >-
    kubectl patch felixconfiguration default --type=merge
    -p '{"spec":{"featureDetectOverride":"ChecksumOffloadBroken=true"}}'
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
present:
  description: Whether the device exists.
  returned: always
  type: bool
before:
  description: The device's checksum and segmentation bits as C(ethtool -k) prints them, before the change.
  returned: always
  type: list
  elements: str
  sample: ["tx-checksum-ip-generic: on", "tx-checksum-ipv4: off [fixed]"]
after:
  description: The same after the change (in check mode, what is expected).
  returned: always
  type: list
  elements: str
wanted:
  description: The bits asked for, name -> on.
  returned: always
  type: dict
  sample: {"tx-checksum-ip-generic": false}
persistent:
  description: Always false - the device's bits last until it is recreated.
  returned: always
  type: bool
remedy:
  description: The lasting fix (FelixConfiguration's featureDetectOverride).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _dataplane

REMEDY = ("kubectl patch felixconfiguration default --type=merge -p "
          "'{\"spec\":{\"featureDetectOverride\":\"ChecksumOffloadBroken=true\"}}' (calicoctl patch felixconfiguration "
          "default -p ... with etcd): Felix then turns the offload off on its VXLAN and IPIP devices at every start.")


def wanted_bits(features, state):
    """{name: bool} of the bits to change: off - every tx-checksum bit that is on and can change; on -
    tx-checksum-ip-generic when it is off and can change."""
    if state == "off":
        return {n: False for n in _dataplane.TX_CHECKSUM if features[n]["on"] and not features[n]["fixed"]}
    bit = features["tx-checksum-ip-generic"]
    return {"tx-checksum-ip-generic": True} if not bit["on"] and not bit["fixed"] else {}


# Segmentation needs checksum offload: without any tx-checksum bit the kernel drops these (and keeps
# them requested), "Dropping TSO features since no CSUM feature".
NEEDS_CSUM = ("tx-tcp-segmentation", "tx-tcp6-segmentation")


def expected(features, wanted):
    """The bits as check mode expects them after the change."""
    out = {n: dict(v) for n, v in features.items()}
    for name, on in wanted.items():
        out[name]["on"] = on
    if not any(out[n]["on"] for n in _dataplane.TX_CHECKSUM if n in out):
        for name in NEEDS_CSUM:
            if name in out and out[name]["on"]:
                out[name].update(on=False, requested=True)
    return out


def main():
    module = AnsibleModule(
        argument_spec={"device": {"type": "str", "default": "vxlan.calico"},
                       "tx_checksum": {"type": "str", "choices": ["off", "on"], "default": "off"}},
        supports_check_mode=True)
    device, state = module.params["device"], module.params["tx_checksum"]
    result = {"changed": False, "present": False, "before": [], "after": [], "wanted": {}, "persistent": False,
              "remedy": REMEDY}
    try:
        features = _dataplane.read_features(device)
    except OSError as exc:
        if exc.errno == 19:  # ENODEV
            module.exit_json(**result)
        module.fail_json(msg=f"cannot read {device}'s features through ethtool's netlink interface: {exc}", **result)
    before = _dataplane.ethtool_text(features)
    wanted = wanted_bits(features, state)
    result.update(present=True, before=before, wanted=wanted, changed=bool(wanted))
    after = expected(features, wanted)
    if wanted and not module.check_mode:
        try:
            _dataplane.set_features(device, wanted)
            after = _dataplane.read_features(device)
        except OSError as exc:
            module.fail_json(msg=f"the kernel refused to change {device}'s features ({', '.join(wanted)}): {exc}",
                             **result)
        still = [n for n, on in wanted.items() if after[n]["on"] != on]
        if still:
            result["after"] = _dataplane.ethtool_text(after)
            module.fail_json(msg=f"{device}: {', '.join(still)} did not change (the driver keeps it; "
                                 f"`ethtool -k {device}`)", **result)
    result["after"] = _dataplane.ethtool_text(after)
    if module._diff and wanted:
        result["diff"] = {"before": "\n".join(before) + "\n", "after": "\n".join(result["after"]) + "\n",
                          "before_header": f"ethtool -k {device}", "after_header": f"ethtool -k {device}"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
