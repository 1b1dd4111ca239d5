#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_nm_unmanaged
short_description: Keep NetworkManager off Calico's devices with a drop-in, and prove it took effect
version_added: 0.1.0
description:
  - Writes a NetworkManager drop-in that adds Calico's devices (C(cali*), C(tunl*), C(vxlan.calico), C(vxlan-v6.calico),
    C(wireguard.cali), C(wg-v6.cali)) and any O(extra_devices) to C([keyfile] unmanaged-devices) with C(+=), so it
    keeps what other drop-ins list instead of replacing it. This is the fix for the catalogue's NM001 (pods restarting
    because NetworkManager tears Calico's devices down).
  - After writing it verifies the B(effective) configuration with NetworkManager's own parser
    (C(NetworkManager --print-config)) and fails, naming the file, when a file read later replaces the list
    (C(unmanaged-devices=)), removes Calico's entries (C(unmanaged-devices-=)) or hides the drop-in. Without the
    NetworkManager binary (for example before NetworkManager is installed) the collection's model of NetworkManager's
    parser is used, as it is in check mode.
  - When the file changed and NetworkManager runs, asks it to re-read its configuration (C(nmcli general reload conf),
    or the D-Bus C(Reload) call with the configuration flag through C(busctl) or C(dbus-send) when nmcli is missing).
    It never restarts NetworkManager - a restart over SSH can cut the session.
  - The file is written atomically with mode C(0644); the module owns its whole content.
author:
  - netdoctor.calico contributors (@netdoctor)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details:
      - Predicts the effective configuration from the files on disk with the drop-in in place, and fails as the real
        run would.
  diff_mode:
    support: full
    details: The drop-in's text before and after.
  idempotent:
    support: full
options:
  path:
    description:
      - The drop-in to manage. It must be a C(NAME.conf) file directly in C(/etc/NetworkManager/conf.d),
        C(/run/NetworkManager/conf.d) (gone at reboot) or C(/usr/lib/NetworkManager/conf.d) (the vendor directory).
      - NetworkManager reads the files of one directory in name order and lets a later file override an earlier one;
        a name in C(/etc) hides the same name in C(/run) and C(/usr/lib).
    type: path
    default: /etc/NetworkManager/conf.d/calico.conf
  state:
    description:
      - V(present) writes the drop-in, V(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
  extra_devices:
    description:
      - More devices to keep unmanaged besides Calico's own.
      - A bare name or glob (C(flannel*)) becomes C(interface-name:flannel*); a NetworkManager device spec starting with
        C(interface-name:), C(mac:), C(type:), C(driver:), C(s390-subchannels:) or C(dhcp-plugin:) is written as given.
      - Rejected before anything changes - C(except:) specs (they change what the whole merged list matches), names
        that match every interface, names Linux cannot have (C(/), C(:), whitespace, more than 15 characters; write a
        MAC address as C(mac:...)), malformed MAC addresses and empty specs.
    type: list
    elements: str
    default: []
  backup:
    description:
      - Keep a timestamped copy of the previous file next to it before replacing or removing it, as
        M(ansible.builtin.copy) does. The copy's name ends in C(~), so NetworkManager (which reads only C(*.conf))
        ignores it.
    type: bool
    default: true
  reload:
    description:
      - Ask a running NetworkManager to re-read its configuration files when the drop-in changed.
      - The module has no restart option - a reload applies C(unmanaged-devices) to existing devices without taking
        the host's connections down.
    type: bool
    default: true
  fail_on_override:
    description:
      - Fail when, after the change, the effective configuration does not leave every Calico device and every
        O(extra_devices) spec unmanaged - because a file read later overrides the drop-in, a file of the same name hides
        it, or NetworkManager rejects its configuration. The message names the files.
      - With V(false) the module warns instead and returns the same evidence in RV(managed_calico_devices) and
        RV(overridden_by); the drop-in is written either way.
      - With O(state=absent) there is nothing to verify and this is ignored.
    type: bool
    default: true
notes:
  - A later file that sets C(unmanaged-devices=) but still lists Calico's devices is reported in RV(overridden_by) and
    is not an error - the effective configuration is what counts.
  - The verification covers configuration only. udev rules and C(nmcli device set ... managed) act at run time and are
    reported by M(netdoctor.calico.calico_node_facts) in its live C(devices).
  - In check mode with O(state=absent), a file of the same name in C(/run) or C(/usr/lib) that removing the drop-in
    would uncover is not part of the prediction.
  - There is no systemd-networkd counterpart. networkd touches only the links a C(.network) file matches; the fix there
    is narrowing that file's C([Match]), which M(netdoctor.calico.calico_node_facts) points at.
seealso:
  - name: Calico - configure NetworkManager
    description: Calico's documented drop-in.
    link: https://docs.tigera.io/calico/latest/operations/troubleshoot/troubleshooting#configure-networkmanager
  - module: netdoctor.calico.calico_node_facts
"""

EXAMPLES = r"""
- name: Keep NetworkManager off Calico's devices
  netdoctor.calico.calico_nm_unmanaged:

- name: Also keep flannel's and one NIC by MAC address unmanaged, and audit without failing on an override
  netdoctor.calico.calico_nm_unmanaged:
    extra_devices:
      - flannel*
      - mac:52:54:00:12:34:56
    fail_on_override: false
  register: nm
  check_mode: true

- name: Show the files that undo the drop-in
  ansible.builtin.debug:
    var: nm.overridden_by
"""

RETURN = r"""
path:
  description: The drop-in.
  returned: always
  type: str
  sample: /etc/NetworkManager/conf.d/calico.conf
content:
  description: The drop-in's text as written (or as it would be in check mode); null with O(state=absent).
  returned: always
  type: str
  sample: "[keyfile]\nunmanaged-devices+=interface-name:cali*;interface-name:tunl*;...\n"
effective_unmanaged_devices:
  description: NetworkManager's effective C([keyfile] unmanaged-devices) after the change, one device spec per item.
  returned: always
  type: list
  elements: str
  sample: ["interface-name:cali*", "interface-name:tunl*", "interface-name:vxlan.calico"]
managed_calico_devices:
  description: Calico's device names or patterns that the effective configuration still lets NetworkManager manage.
  returned: always
  type: list
  elements: str
  sample: ["tunl*", "vxlan.calico"]
missing_specs:
  description: O(extra_devices) specs missing from the effective list.
  returned: always
  type: list
  elements: str
  sample: []
overridden_by:
  description:
    - Files that undo the drop-in - C(op) is C(=) (read later, replaces the list), C(-=) (read later, removes entries of
      ours) or C(hides) (same name, read instead); C(value) is what the file sets or removes.
  returned: always
  type: list
  elements: dict
  sample: [{"file": "/etc/NetworkManager/conf.d/rke2-canal.conf", "op": "=", "value": ["interface-name:flannel*"]}]
verified_with:
  description:
    - C(NetworkManager --print-config) when NetworkManager's own parser checked the effective configuration, C(model)
      when it was predicted (check mode, or no NetworkManager binary).
  returned: always
  type: str
  sample: NetworkManager --print-config
config_error:
  description: Why NetworkManager (or the model) rejects the configuration; null when it parses.
  returned: always
  type: str
  sample: null
reloaded:
  description: Whether NetworkManager was asked to re-read its configuration.
  returned: always
  type: bool
  sample: true
backup_file:
  description: The copy of the previous file; null when none was made.
  returned: always
  type: str
  sample: /etc/NetworkManager/conf.d/calico.conf.4242.2024-05-01@10:11:12~
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_config, _nm_dropin, _node_files

NM_BINARY = "NetworkManager"
MODE = 0o644
SBIN = ["/usr/sbin", "/sbin"]


def _read(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None


class DropIn:
    def __init__(self, module, extra):
        self.module = module
        self.params = module.params
        self.path = module.params["path"]
        self.extra = extra
        self.present = module.params["state"] == "present"
        self.result = {"changed": False, "path": self.path, "content": None, "effective_unmanaged_devices": [],
                       "managed_calico_devices": [], "missing_specs": [], "overridden_by": [],
                       "verified_with": "model", "config_error": None, "reloaded": False, "backup_file": None}

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **self.result, **kwargs)

    def run(self):
        module, path = self.module, self.path
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
            self.fail(f"{path} exists and is not a regular file; the module only replaces regular files")
        before = _read(path)
        want = _nm_dropin.dropin_text(self.extra) if self.present else None
        self.result["content"] = want
        content_changed = before != want
        mode_wrong = self.present and before is not None and (os.stat(path).st_mode & 0o7777) != MODE
        self.result["changed"] = content_changed or mode_wrong
        if module._diff and content_changed:
            self.result["diff"] = {"before": before or "", "after": want or "",
                                   "before_header": path, "after_header": path}

        discovered = _nm_config.discover("/")
        nm_bin = module.get_bin_path(NM_BINARY, opt_dirs=SBIN)
        nm_version = self._nm_version(nm_bin)
        model = _nm_config.merge(_nm_config.with_dropin(discovered, path, want or ""), nm_version=nm_version)

        # Do the work.
        if not module.check_mode:
            if content_changed:
                self._act(before, want)
            elif mode_wrong:
                os.chmod(path, MODE)
        config = self._effective(model, nm_bin, nm_version)
        found = _nm_dropin.overrides(discovered, path, _nm_dropin.CALICO_SPECS + tuple(self.extra), model) \
            if self.present else []
        self.result["overridden_by"] = found
        verdict = _nm_dropin.verdict(config, self.extra) if config else None
        if verdict:
            for key in ("effective_unmanaged_devices", "managed_calico_devices", "missing_specs"):
                self.result[key] = verdict[key]
        if content_changed and not module.check_mode and self.params["reload"] and config:
            self._reload()

        if self.present and (verdict is None or not verdict["ok"]):
            msg = (_nm_dropin.failure_message(path, verdict, found) if verdict else
                   f"NetworkManager rejects its configuration, so {path} cannot take effect: "
                   f"{self.result['config_error']}")
            if self.params["fail_on_override"]:
                self.fail(msg)
            module.warn(msg)
        module.exit_json(**self.result)

    def _nm_version(self, nm_bin):
        if not nm_bin:
            return None
        rc, out, _err = self.module.run_command([nm_bin, "--version"])
        return out.strip() if rc == 0 else None

    def _act(self, before, want):
        module, path = self.module, self.path
        if before is not None and self.params["backup"]:
            self.result["backup_file"] = module.backup_local(path)
        if want is None:
            os.unlink(path)
        else:
            module.atomic_move(_node_files.staged(path, want, MODE), path)
            # atomic_move copies the old file's mode onto the new one
            os.chmod(path, MODE)

    def _effective(self, model, nm_bin, nm_version):
        """The effective configuration (``calico_devices()`` input), or None when it does not parse."""
        if nm_bin and not self.module.check_mode:
            rc, out, err = self.module.run_command([nm_bin, "--print-config"])
            if rc == 0:
                self.result["verified_with"] = "NetworkManager --print-config"
                return _nm_dropin.config_from_print_config(out)
            self.result["config_error"] = f"NetworkManager --print-config exited {rc}: {err.strip() or out.strip()}"
            return None
        if not nm_bin and not self.module.check_mode:
            model = _nm_config.merge(_nm_config.discover("/"), nm_version=nm_version)
        if model["errors"]:
            self.result["config_error"] = "; ".join(f"{e['file']}: {e['error']}" for e in model["errors"])
            return None
        return model

    def _reload(self):
        module = self.module
        if not _nm_config.running(module.run_command, module.get_bin_path("nmcli"), module.get_bin_path("busctl"),
                                  module.get_bin_path("dbus-send")):
            return
        cmd = _nm_dropin.reload_command(module.get_bin_path("nmcli"), module.get_bin_path("busctl"),
                                        module.get_bin_path("dbus-send"))
        if cmd is None:
            module.warn("NetworkManager runs but neither nmcli, busctl nor dbus-send is available to reload it; "
                        f"{self.path} takes effect at its next reload")
            return
        rc, out, err = module.run_command(cmd)
        if rc != 0:
            self.fail(f"{self.path} was written, but asking NetworkManager to reload its configuration failed; "
                      "it takes effect at the next reload", cmd=cmd, rc=rc, stdout=out, stderr=err)
        self.result["reloaded"] = True


def build_module():
    return AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": _nm_dropin.DEFAULT_PATH},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "extra_devices": {"type": "list", "elements": "str", "default": []},
            "backup": {"type": "bool", "default": True},
            "reload": {"type": "bool", "default": True},
            "fail_on_override": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )


def main():
    module = build_module()
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    error = _nm_dropin.check_path(module.params["path"])
    if error:
        module.fail_json(msg=error, changed=False)
    try:
        extra = _nm_dropin.extra_specs(module.params["extra_devices"])
    except ValueError as exc:
        module.fail_json(msg=f"extra_devices: {exc}", changed=False)
    try:
        DropIn(module, extra).run()
    except OSError as exc:
        module.fail_json(msg=f"cannot change {module.params['path']}: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
