#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_autodetection
short_description: Set the IP autodetection method where calico-node reads it
version_added: 0.1.0
description:
  - Sets C(IP_AUTODETECTION_METHOD) (O(method)) and C(IP6_AUTODETECTION_METHOD) (O(method6)) where calico-node reads
    them - the fix for the catalogue's AD001 and AD002 (autodetection picks the wrong address).
  - Validates every method as calico-node of O(calico_version) does before anything changes. calico-node terminates
    on an invalid method, so a typo would take the node's networking down on every node at the next restart.
  - O(target=manifest) edits a C(calico.yaml) on the managed node - the C(calico-node) container of the DaemonSet named
    C(calico-node), in any document of the file. Only the lines of the variable change (or two lines are added after
    C(IP)); comments, quoting and every other byte stay. The result is re-read with PyYAML, when installed, to prove
    nothing else changed.
  - O(target=daemonset) reads the live DaemonSet with C(kubectl get -o json) and runs
    C(kubectl set env daemonset/calico-node --containers=calico-node) only when a value differs. It refuses a
    DaemonSet owned by tigera-operator, which would revert the edit.
  - O(target=installation) reads the operator's C(Installation) named C(default) and replaces its whole
    C(spec.calicoNetwork.nodeAddressAutodetectionV4) (or C(V6)) object with a merge patch - the operator admits only
    one method, so the keys of the old one are removed.
  - Changing the DaemonSet's pod template (directly or through the operator) rolls calico-node on every node, as its
    update strategy allows.
author:
  - netdoctor.calico contributors (@netdoctor)
requirements:
  - kubectl on the managed node for O(target=daemonset) and O(target=installation)
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details:
      - Reads the current value and reports what would change. For the kubectl targets the change is also sent as a
        server-side dry run (C(--dry-run=server)), which persists nothing but needs the same permissions as the change.
  diff_mode:
    support: full
    details: The manifest's text, or the env values / operator objects, before and after.
  idempotent:
    support: full
options:
  target:
    description:
      - Where calico-node reads its method - a manifest file, the live C(calico-node) DaemonSet (manifest installs),
        or the tigera-operator C(Installation) (operator installs).
    type: str
    required: true
    choices: [manifest, daemonset, installation]
  method:
    description:
      - The IPv4 method, for example C(interface=^eth0$), C(cidr=192.0.2.0/24), C(can-reach=192.0.2.1),
        C(skip-interface=^eth1$), C(kubernetes-internal-ip) or C(first-found).
      - calico-node uses it only with C(IP=autodetect) (or C(IP) unset on a node not registered yet); the module warns
        otherwise.
    type: str
  method6:
    description:
      - The IPv6 method (C(IP6_AUTODETECTION_METHOD), or C(nodeAddressAutodetectionV6)). calico-node detects IPv6 only
        with C(IP6=autodetect).
    type: str
  calico_version:
    description:
      - The Calico version the methods are validated for - C(cidr=) exists from v3.16 and C(kubernetes-internal-ip) from
        v3.22. The newest version the collection knows when not given.
    type: str
  path:
    description:
      - The manifest, for O(target=manifest). Its mode and owner are kept.
    type: path
  backup:
    description:
      - With O(target=manifest), keep a timestamped copy of the manifest before changing it, as M(ansible.builtin.copy)
        does. The copy's name ends in C(~), so C(kubectl apply -f DIR) skips it.
    type: bool
    default: true
  kubectl:
    description:
      - The kubectl binary, a name looked up in C(PATH) or a path.
    type: str
    default: kubectl
  kubeconfig:
    description:
      - The kubeconfig kubectl uses (C(--kubeconfig)); kubectl's own default when not given.
    type: path
  context:
    description:
      - The kubeconfig context (C(--context)); the current context when not given.
    type: str
  namespace:
    description:
      - The namespace of the C(calico-node) DaemonSet, for O(target=daemonset). Operator installs run it in
        C(calico-system) and own it - use O(target=installation) there.
    type: str
    default: kube-system
notes:
  - O(target=manifest) follows block-style YAML, as upstream manifests and C(kubectl get -o yaml) write it; a manifest
    where the way to the env list is written in flow style (for example C(env) as a C([...]) list), or a variable set
    with C(valueFrom), is refused with a message saying so.
seealso:
  - name: Calico - IP autodetection methods
    description: The methods and what they choose.
    link: https://docs.tigera.io/calico/latest/networking/ipam/ip-autodetection
  - module: netdoctor.calico.calico_node_facts
    description: Replays a method on a node's interfaces, to choose one that picks the right address everywhere.
"""

EXAMPLES = r"""
- name: Pin the method in the manifest the cluster is installed from
  netdoctor.calico.calico_autodetection:
    target: manifest
    path: /srv/k8s/calico.yaml
    method: cidr=192.0.2.0/24
  delegate_to: localhost
  run_once: true

- name: Set it on the live DaemonSet of a manifest install
  netdoctor.calico.calico_autodetection:
    target: daemonset
    method: interface=^eth0$
    kubeconfig: /etc/kubernetes/admin.conf
  run_once: true

- name: Set it in the operator's Installation (operator installs)
  netdoctor.calico.calico_autodetection:
    target: installation
    method: kubernetes-internal-ip
  run_once: true
"""

RETURN = r"""
target:
  description: O(target).
  returned: always
  type: str
  sample: daemonset
method:
  description: The IPv4 method set (or that would be set in check mode); null when O(method) was not given.
  returned: always
  type: str
  sample: interface=^eth0$
method6:
  description: The IPv6 method set; null when O(method6) was not given.
  returned: always
  type: str
  sample: null
previous:
  description:
    - The IPv4 method before the change - the env value, or for O(target=installation) the method the operator
      renders from the old object. Null when none was set.
  returned: always
  type: str
  sample: first-found
previous6:
  description: The IPv6 method before the change; null when none was set or O(method6) was not given.
  returned: always
  type: str
  sample: null
operator_form:
  description: The C(nodeAddressAutodetectionV4)/C(V6) objects set, keyed by C(v4)/C(v6).
  returned: when O(target=installation)
  type: dict
  sample: {"v4": {"interface": "^eth0$"}}
command:
  description: The kubectl command that changed the cluster (its dry run in check mode); null when nothing changed.
  returned: when O(target) is V(daemonset) or V(installation)
  type: list
  elements: str
  sample: ["kubectl", "set", "env", "daemonset/calico-node", "--namespace=kube-system", "--containers=calico-node",
           "IP_AUTODETECTION_METHOD=interface=^eth0$"]
backup_file:
  description: The copy of the previous manifest; null when none was made.
  returned: when O(target=manifest)
  type: str
  sample: /srv/k8s/calico.yaml.4242.2024-05-01@10:11:12~
diff:
  description: What changed, before and after.
  returned: in diff mode
  type: dict
  sample: {"before": {"IP_AUTODETECTION_METHOD": null}, "after": {"IP_AUTODETECTION_METHOD": "interface=^eth0$"}}
"""

import json
import os
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect, _kube, _manifest, _node_files

VERSIONS = ((4, "method"), (6, "method6"))


class Autodetection:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.methods = {v: module.params[key] for v, key in VERSIONS if module.params[key] is not None}
        self.env = {_kube.ENV[v]: m for v, m in self.methods.items()}
        self.result = {"changed": False, "target": module.params["target"], "method": module.params["method"],
                       "method6": module.params["method6"], "previous": None, "previous6": None}

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **self.result, **kwargs)

    def _previous(self, previous):
        for v, key in ((4, "previous"), (6, "previous6")):
            if v in self.methods:
                self.result[key] = previous.get(v)

    def _diff(self, before, after):
        if self.module._diff:
            self.result["diff"] = {"before": before, "after": after}

    # --- manifest -----------------------------------------------------------------------------

    def manifest(self):
        module, path = self.module, self.params["path"]
        self.result["backup_file"] = None
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.fail(f"cannot read the manifest {path}: {exc}")
        try:
            entries = _manifest.calico_node_env(text)
            plan = _kube.env_plan(entries, self.env)
            new = _manifest.set_env(text, self.env)
            if new != text:
                _manifest.check_edit(text, new, self.env)
        except ValueError as exc:
            self.fail(f"{path}: {exc}")
        self._previous({v: plan["previous"][name] for v, name in _kube.ENV.items() if name in self.env})
        for warning in _kube.ip_warnings(entries, self.methods):
            module.warn(f"{path}: {warning}")
        self.result["changed"] = new != text
        if module._diff and new != text:
            self.result["diff"] = {"before": text, "after": new, "before_header": path, "after_header": path}
        # Do the work.
        if new != text and not module.check_mode:
            if self.params["backup"]:
                self.result["backup_file"] = module.backup_local(path)
            module.atomic_move(_node_files.staged(path, new, stat.S_IMODE(os.stat(path).st_mode)), path)

    # --- kubectl ------------------------------------------------------------------------------

    def _kubectl(self, cmd, what):
        rc, out, err = self.module.run_command(cmd)
        if rc != 0:
            self.fail(f"kubectl could not {what}: {err.strip() or out.strip()}", cmd=cmd, rc=rc, stdout=out, stderr=err)
        return out

    def _read_json(self, cmd, what):
        out = self._kubectl(cmd, "read " + what)
        try:
            return json.loads(out)
        except ValueError:
            self.fail(f"kubectl printed no JSON for {what}", cmd=cmd, stdout=out)

    def _apply(self, cmd, what):
        """Run the change (in check mode, its server-side dry run)."""
        self.result["command"] = cmd
        self._kubectl(cmd, what + (" (server-side dry run)" if self.module.check_mode else ""))

    def _base(self):
        kubectl = self.params["kubectl"]
        binary = kubectl if os.sep in kubectl else self.module.get_bin_path(kubectl)
        if not binary or not os.access(binary, os.X_OK):
            self.fail(f"kubectl not found ({kubectl!r}); install it or give its path in the kubectl option")
        self.result["command"] = None
        return _kube.base_command(binary, self.params["kubeconfig"], self.params["context"])

    def daemonset(self):
        base, namespace = self._base(), self.params["namespace"]
        what = f"daemonset/{_kube.DAEMONSET} in namespace {namespace}"
        ds = self._read_json(_kube.get_daemonset(base, namespace), what)
        owner = _kube.operator_owner(ds)
        if owner:
            self.fail(f"{what} is owned by tigera-operator ({owner.get('kind')}/{owner.get('name')}), which reverts "
                      "changes to it; use target=installation")
        try:
            entries = _kube.env_entries(_kube.container_env(ds))
            plan = _kube.env_plan(entries, self.env)
        except ValueError as exc:
            self.fail(f"{what}: {exc}")
        self._previous({v: plan["previous"][name] for v, name in _kube.ENV.items() if name in self.env})
        for warning in _kube.ip_warnings(entries, self.methods):
            self.module.warn(f"{what}: {warning}")
        self.result["changed"] = bool(plan["changed"])
        self._diff({n: plan["previous"][n] for n in self.env}, dict(self.env))
        if plan["changed"]:
            values = {n: self.env[n] for n in plan["changed"]}
            self._apply(_kube.set_env(base, namespace, values, dry_run=self.module.check_mode), "set env on " + what)

    def installation(self):
        base = self._base()
        what = f"{_kube.INSTALLATION}/{_kube.INSTALLATION_NAME}"
        inst = self._read_json(_kube.get_installation(base), what)
        forms = {v: _autodetect.operator_form(m) for v, m in self.methods.items()}
        current = {v: _kube.installation_autodetection(inst, v) for v in forms}
        self._previous({v: _kube.method_from_operator_form(current[v]) for v in forms})
        self.result["operator_form"] = {f"v{v}": form for v, form in forms.items()}
        changed = {v: form for v, form in forms.items() if current[v] != form}
        self.result["changed"] = bool(changed)
        self._diff({_kube.OPERATOR_FIELD[v]: current[v] for v in forms},
                   {_kube.OPERATOR_FIELD[v]: forms[v] for v in forms})
        if changed:
            patch = _kube.installation_patch(inst, changed)
            self._apply(_kube.patch_installation(base, patch, dry_run=self.module.check_mode), "patch " + what)

    def run(self):
        getattr(self, self.params["target"])()
        self.module.exit_json(**self.result)


def build_module():
    return AnsibleModule(
        argument_spec={
            "target": {"type": "str", "required": True, "choices": ["manifest", "daemonset", "installation"]},
            "method": {"type": "str"},
            "method6": {"type": "str"},
            "calico_version": {"type": "str"},
            "path": {"type": "path"},
            "backup": {"type": "bool", "default": True},
            "kubectl": {"type": "str", "default": "kubectl"},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
            "namespace": {"type": "str", "default": "kube-system"},
        },
        required_one_of=[("method", "method6")],
        required_if=[("target", "manifest", ["path"])],
        supports_check_mode=True,
    )


def validation_errors(methods, calico_version):
    """Why calico-node (of that version) would reject each method, before anything changes."""
    try:
        _autodetect.parse_calico_version(calico_version)
    except ValueError as exc:
        return [f"calico_version: {exc}"]
    errors = []
    for key, method in methods.items():
        error = _autodetect.validate_method(method, calico_version)
        if error:
            errors.append(f"{key}: {error} - calico-node would terminate with it")
    return errors


def main():
    module = build_module()
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    p = module.params
    errors = validation_errors({key: p[key] for _v, key in VERSIONS if p[key] is not None}, p["calico_version"])
    if errors:
        module.fail_json(msg="; ".join(errors), changed=False)
    try:
        Autodetection(module).run()
    except OSError as exc:
        module.fail_json(msg=f"cannot change {p['path'] or p['target']}: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
