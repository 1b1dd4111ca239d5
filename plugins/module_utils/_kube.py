# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: not a public API, may change at any time without notice.

"""Where calico-node reads its IP autodetection method on a live cluster, as kubectl sees it.

Pure: kubectl command lines, and readers over the JSON ``kubectl get -o json`` prints - the
calico-node DaemonSet's env (manifest installs) and the operator's Installation
(``spec.calicoNetwork.nodeAddressAutodetectionV4/V6``, reference/calico_internals.md 1.6).
"""

from __future__ import annotations

import json

from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect

DAEMONSET = "calico-node"
CONTAINER = "calico-node"
INSTALLATION = "installations.operator.tigera.io"
INSTALLATION_NAME = "default"
ENV = {4: "IP_AUTODETECTION_METHOD", 6: "IP6_AUTODETECTION_METHOD"}
IP_ENV = {4: "IP", 6: "IP6"}
OPERATOR_FIELD = {4: "nodeAddressAutodetectionV4", 6: "nodeAddressAutodetectionV6"}
# tigera/operator's getAutodetectionMethod precedence (pkg/render/node.go).
_OPERATOR_ORDER = ("interface", "skipInterface", "canReach", "firstFound", "cidrs", "kubernetes")


def base_command(kubectl, kubeconfig=None, context=None):
    cmd = [kubectl]
    if kubeconfig:
        cmd.append("--kubeconfig=" + kubeconfig)
    if context:
        cmd.append("--context=" + context)
    return cmd


def get_daemonset(base, namespace):
    return [*base, "get", "daemonset", DAEMONSET, "--namespace=" + namespace, "--output=json"]


def set_env(base, namespace, values, dry_run=False):
    """``kubectl set env`` on the calico-node container only (not the init containers)."""
    return [*base, "set", "env", "daemonset/" + DAEMONSET, "--namespace=" + namespace, "--containers=" + CONTAINER,
            *(["--dry-run=server"] if dry_run else []), *(f"{name}={value}" for name, value in values.items())]


def get_installation(base):
    return [*base, "get", INSTALLATION, INSTALLATION_NAME, "--output=json"]


def patch_installation(base, patch, dry_run=False):
    return [*base, "patch", INSTALLATION, INSTALLATION_NAME, "--type=merge",
            "--patch=" + json.dumps(patch, sort_keys=True), *(["--dry-run=server"] if dry_run else [])]


def container_env(daemonset):
    """The calico-node container's env list; ValueError when the DaemonSet has no such container."""
    containers = (((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    for container in containers:
        if container.get("name") == CONTAINER:
            return container.get("env") or []
    raise ValueError(f"the {DAEMONSET} DaemonSet has no container named {CONTAINER}")


def env_entries(env):
    """``[{"name", "value": str | None, "value_from": bool}]`` of a Kubernetes env list."""
    return [{"name": e.get("name"), "value": e.get("value"), "value_from": "valueFrom" in e} for e in env]


def operator_owner(obj):
    """The tigera/operator owner reference of an object, or None: the operator reverts edits to what it owns."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if str(ref.get("apiVersion", "")).startswith("operator.tigera.io/"):
            return ref
    return None


def env_plan(entries, values):
    """What setting ``values`` ({name: value}) does to ``entries`` (``env_entries`` or
    ``_manifest.calico_node_env`` output)::

        {"previous": {name: str | None}, "changed": [name]}

    The last entry of a name wins, as it does in the container. Raises ValueError for a name set
    with ``valueFrom``: its source, not the DaemonSet, holds the value.
    """
    previous, changed = {}, []
    for name, value in values.items():
        mine = [e for e in entries if e["name"] == name]
        if any(e["value_from"] for e in mine):
            raise ValueError(f"{name} is set with valueFrom in the {CONTAINER} container; change its source, or "
                             "replace valueFrom with value first")
        previous[name] = mine[-1]["value"] if mine else None
        if not mine or any(e["value"] != value for e in mine):
            changed.append(name)
    return {"previous": previous, "changed": changed}


def ip_warnings(entries, versions):
    """Why a method set for the given IP versions would not be used: calico-node autodetects IPv4 only
    with IP=autodetect (or IP unset on a node not registered yet) and IPv6 only with IP6=autodetect
    (reference/calico_internals.md 1.2)."""
    env = {e["name"]: e for e in entries}
    warnings = []
    for version in sorted(versions):
        name = IP_ENV[version]
        entry = env.get(name)
        value = None if entry is None else ("valueFrom" if entry["value_from"] else entry["value"])
        if value == "autodetect" or (version == 4 and not value):
            continue
        shown = "unset" if not value else repr(value)
        warnings.append(f"{name} is {shown}: calico-node uses {ENV[version]} only when {name}=autodetect"
                        + (" (or IP is unset on a node that has no address yet)" if version == 4 else ""))
    return warnings


def installation_autodetection(installation, version):
    """``spec.calicoNetwork.nodeAddressAutodetectionV4`` (or V6) of an Installation, None when unset."""
    network = (installation.get("spec") or {}).get("calicoNetwork") or {}
    return network.get(OPERATOR_FIELD[version])


def method_from_operator_form(form):
    """The IP_AUTODETECTION_METHOD the operator renders for a nodeAddressAutodetection object, or None
    when it sets none (the operator then renders IP=none)."""
    for key in _OPERATOR_ORDER:
        value = (form or {}).get(key)
        if not value:
            continue
        if key == "firstFound":
            return _autodetect.FIRST_FOUND
        if key == "kubernetes":
            return _autodetect.K8S_INTERNAL_IP
        if key == "cidrs":
            return _autodetect.CIDR + ",".join(value)
        prefix = {"interface": _autodetect.INTERFACE, "skipInterface": _autodetect.SKIP_INTERFACE,
                  "canReach": _autodetect.CAN_REACH}[key]
        return prefix + value
    return None


def installation_patch(current, forms):
    """A JSON merge patch (RFC 7386) that makes each ``{version: operator form}`` the whole
    nodeAddressAutodetection object: keys of ``current`` not in the new form are nulled, since the
    operator admits only one method and a merge patch would otherwise keep the old one."""
    network = {}
    for version, form in forms.items():
        old = installation_autodetection(current, version) or {}
        network[OPERATOR_FIELD[version]] = {**{k: None for k in old if k not in form}, **form}
    return {"spec": {"calicoNetwork": network}}
