"""kubectl commands and readers for calico-node's autodetection method (plugins/module_utils/_kube.py)."""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect, _kube

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kube")


def load(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


def test_commands():
    base = _kube.base_command("/usr/bin/kubectl", "/etc/kubernetes/admin.conf", "prod")
    assert base == ["/usr/bin/kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "--context=prod"]
    assert _kube.base_command("kubectl") == ["kubectl"]
    assert _kube.get_daemonset(["kubectl"], "kube-system") == [
        "kubectl", "get", "daemonset", "calico-node", "--namespace=kube-system", "--output=json"]
    # one argument per variable, so a value with spaces, commas or '=' needs no quoting
    assert _kube.set_env(["kubectl"], "kube-system", {"IP_AUTODETECTION_METHOD": "cidr=192.0.2.0/24, 10.0.0.0/8"},
                         dry_run=True) == [
        "kubectl", "set", "env", "daemonset/calico-node", "--namespace=kube-system", "--containers=calico-node",
        "--dry-run=server", "IP_AUTODETECTION_METHOD=cidr=192.0.2.0/24, 10.0.0.0/8"]
    assert _kube.get_installation(["k"]) == ["k", "get", "installations.operator.tigera.io", "default", "--output=json"]
    patch = {"spec": {"calicoNetwork": {"nodeAddressAutodetectionV4": {"a": 1}}}}
    cmd = _kube.patch_installation(["k"], patch)
    assert cmd[:5] == ["k", "patch", "installations.operator.tigera.io", "default", "--type=merge"]
    assert json.loads(cmd[5].removeprefix("--patch=")) == patch
    assert len(cmd) == 6


def test_daemonset_env_and_plan():
    entries = _kube.env_entries(_kube.container_env(load("daemonset-kube-system.json")))
    by_name = {e["name"]: e for e in entries}
    assert by_name["IP"] == {"name": "IP", "value": "autodetect", "value_from": False}
    assert by_name["NODENAME"]["value_from"]
    plan = _kube.env_plan(entries, {"IP_AUTODETECTION_METHOD": "interface=^eth0$", "IP": "autodetect"})
    assert plan == {"previous": {"IP_AUTODETECTION_METHOD": None, "IP": "autodetect"},
                    "changed": ["IP_AUTODETECTION_METHOD"]}
    with pytest.raises(ValueError, match="valueFrom"):
        _kube.env_plan(entries, {"NODENAME": "x"})
    with pytest.raises(ValueError, match="no container named calico-node"):
        _kube.container_env({"spec": {"template": {"spec": {"containers": [{"name": "install-cni"}]}}}})


def test_plan_with_a_repeated_variable_changes_until_every_copy_agrees():
    entries = [{"name": "M", "value": "a", "value_from": False}, {"name": "M", "value": "b", "value_from": False}]
    assert _kube.env_plan(entries, {"M": "b"}) == {"previous": {"M": "b"}, "changed": ["M"]}
    entries[0]["value"] = "b"
    assert _kube.env_plan(entries, {"M": "b"})["changed"] == []


def test_operator_owner():
    assert _kube.operator_owner(load("daemonset-kube-system.json")) is None
    owner = _kube.operator_owner(load("daemonset-calico-system.json"))
    assert (owner["kind"], owner["name"]) == ("Installation", "default")


@pytest.mark.parametrize(("env", "versions", "warned"), [
    ({"IP": "autodetect"}, {4}, []),
    ({}, {4}, []),                                  # unset: autodetects on a new node
    ({"IP": ""}, {4}, []),
    ({"IP": "192.0.2.11"}, {4}, ["IP is '192.0.2.11'"]),
    ({"IP": "none"}, {4}, ["IP is 'none'"]),
    ({"IP": "autodetect"}, {4, 6}, ["IP6 is unset"]),
    ({"IP6": "autodetect"}, {6}, []),
])
def test_ip_warnings(env, versions, warned):
    entries = [{"name": k, "value": v, "value_from": False} for k, v in env.items()]
    warnings = _kube.ip_warnings(entries, versions)
    assert [w.split(":")[0] for w in warnings] == warned


@pytest.mark.parametrize("method", [
    "first-found", "kubernetes-internal-ip", "interface=^eth0$", "skip-interface=^br-.*,^docker.*",
    "can-reach=192.0.2.1", "cidr=192.0.2.0/24,198.51.100.0/24",
])
def test_operator_form_round_trip(method):
    assert _kube.method_from_operator_form(_autodetect.operator_form(method)) == method


def test_operator_precedence_and_unset():
    # two methods set at once (the CRD's CEL rule forbids it): the operator renders interface first
    assert _kube.method_from_operator_form({"firstFound": True, "interface": "eth0"}) == "interface=eth0"
    assert _kube.method_from_operator_form({"firstFound": False}) is None
    assert _kube.method_from_operator_form(None) is None


def test_installation_patch_replaces_the_whole_object():
    inst = load("installation-default.json")
    assert _kube.installation_autodetection(inst, 4) == {"firstFound": True}
    assert _kube.installation_autodetection(inst, 6) is None
    patch = _kube.installation_patch(inst, {4: {"interface": "^eth0$"}, 6: {"firstFound": True}})
    assert patch == {"spec": {"calicoNetwork": {
        "nodeAddressAutodetectionV4": {"firstFound": None, "interface": "^eth0$"},
        "nodeAddressAutodetectionV6": {"firstFound": True}}}}
    # an unchanged key is set, not nulled
    assert _kube.installation_patch(inst, {4: {"firstFound": True}}) == {
        "spec": {"calicoNetwork": {"nodeAddressAutodetectionV4": {"firstFound": True}}}}
