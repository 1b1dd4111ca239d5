"""Line-oriented editing of calico-node's env in a calico.yaml (plugins/module_utils/_manifest.py)."""

from __future__ import annotations

import difflib
import os

import pytest
import yaml
from ansible_collections.netdoctor.calico.plugins.module_utils import _manifest as mf

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "manifests", "calico.yaml.txt")
METHOD = "IP_AUTODETECTION_METHOD"
METHOD6 = "IP6_AUTODETECTION_METHOD"


@pytest.fixture(scope="module")
def upstream():
    with open(FIXTURE, encoding="utf-8") as f:
        return f.read()


def changed_lines(before, after):
    """(removed, added) lines of a line diff."""
    diff = list(difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True)))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def env_of(text):
    return {e["name"]: e for e in mf.calico_node_env(text)}


def calico_node_container(text):
    docs = list(yaml.safe_load_all(text))
    ds = next(d for d in docs if d and d["kind"] == "DaemonSet")
    return next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")


# --- reading ---------------------------------------------------------------------------------


def test_reads_the_calico_node_container_env_and_nothing_else(upstream):
    env = mf.calico_node_env(upstream)
    names = [e["name"] for e in env]
    # exactly the container's entries, in order, as PyYAML reads them (not the init containers',
    # not kube-controllers', not the commented-out CALICO_IPV4POOL_CIDR)
    assert names == [e["name"] for e in calico_node_container(upstream)["env"]]
    assert "CNI_CONF_NAME" not in names and "ENABLED_CONTROLLERS" not in names and "CALICO_IPV4POOL_CIDR" not in names
    by_name = {e["name"]: e for e in env}
    assert by_name["IP"]["value"] == "autodetect" and not by_name["IP"]["value_from"]
    assert by_name["CALICO_IPV4POOL_IPIP"]["value"] == "Always"
    assert by_name["NODENAME"]["value_from"] and by_name["NODENAME"]["value"] is None
    assert upstream.splitlines()[by_name["IP"]["line"] - 1].strip() == "- name: IP"


# --- setting ---------------------------------------------------------------------------------


def test_absent_variable_is_inserted_after_ip(upstream):
    after = mf.set_env(upstream, {METHOD: "interface=^eth0$"})
    removed, added = changed_lines(upstream, after)
    assert removed == []
    assert added == ["            - name: IP_AUTODETECTION_METHOD\n", '              value: "interface=^eth0$"\n']
    lines = after.splitlines()
    at = lines.index("            - name: IP_AUTODETECTION_METHOD")
    assert lines[at - 2:at] == ["            - name: IP", '              value: "autodetect"']
    # the comment that introduces the next entry stays with it
    assert lines[at + 2] == "            # Enable IPIP"
    names = [e["name"] for e in calico_node_container(after)["env"]]
    assert names[names.index("IP") + 1] == METHOD
    assert mf.check_edit(upstream, after, {METHOD: "interface=^eth0$"}) is True


def test_present_variable_is_replaced_in_place(upstream):
    once = mf.set_env(upstream, {METHOD: "first-found"})
    twice = mf.set_env(once, {METHOD: "cidr=192.0.2.0/24, 198.51.100.0/24"})
    removed, added = changed_lines(once, twice)
    assert removed == ['              value: "first-found"\n']
    assert added == ['              value: "cidr=192.0.2.0/24, 198.51.100.0/24"\n']
    assert env_of(twice)[METHOD]["value"] == "cidr=192.0.2.0/24, 198.51.100.0/24"


def test_setting_the_same_value_again_changes_no_byte(upstream):
    once = mf.set_env(upstream, {METHOD: "interface=^eth0$", METHOD6: "first-found"})
    assert mf.set_env(once, {METHOD: "interface=^eth0$", METHOD6: "first-found"}) == once
    # and an equal value written in another style is left as the user wrote it
    plain = once.replace('value: "interface=^eth0$"', "value: interface=^eth0$  # pinned")
    assert mf.set_env(plain, {METHOD: "interface=^eth0$"}) == plain


def test_ipv6_method_goes_after_the_ipv4_one(upstream):
    after = mf.set_env(upstream, {METHOD: "first-found", METHOD6: "cidr=2001:db8::/64"})
    names = [e["name"] for e in mf.calico_node_env(after)]
    assert names[names.index("IP"):names.index("IP") + 3] == ["IP", METHOD, METHOD6]
    assert mf.check_edit(upstream, after, {METHOD: "first-found", METHOD6: "cidr=2001:db8::/64"})


def test_valuefrom_entries_are_untouched(upstream):
    after = mf.set_env(upstream, {METHOD: "kubernetes-internal-ip"})
    before_c, after_c = calico_node_container(upstream), calico_node_container(after)
    with_ref = [e for e in before_c["env"] if "valueFrom" in e]
    assert with_ref and with_ref == [e for e in after_c["env"] if "valueFrom" in e]


def test_a_variable_set_with_valuefrom_is_refused(upstream):
    text = upstream.replace(
        '            - name: IP\n              value: "autodetect"\n',
        '            - name: IP\n              value: "autodetect"\n'
        "            - name: IP_AUTODETECTION_METHOD\n              valueFrom:\n                configMapKeyRef:\n"
        "                  name: calico-config\n                  key: ip_autodetection_method\n")
    assert env_of(text)[METHOD]["value_from"]
    with pytest.raises(mf.ManifestError, match="valueFrom"):
        mf.set_env(text, {METHOD: "first-found"})


def test_quotes_and_escapes_survive_a_round_trip(upstream):
    method = r'interface=^(eth|ens)[0-9]+$, "odd\name'
    after = mf.set_env(upstream, {METHOD: method})
    assert env_of(after)[METHOD]["value"] == method
    assert {e["name"]: e.get("value") for e in calico_node_container(after)["env"]}[METHOD] == method


def test_other_value_styles_are_replaced_whole():
    text = ("kind: DaemonSet\nmetadata:\n  name: calico-node\nspec:\n  template:\n    spec:\n      containers:\n"
            "      - name: calico-node\n        env:\n        - name: IP_AUTODETECTION_METHOD\n"
            "          value: >-\n            interface=eth0\n        # next\n        - name: IP\n"
            "          value: 'autodetect'  # keep\n        image: calico/node\n")
    after = mf.set_env(text, {METHOD: "can-reach=192.0.2.1", "IP": "autodetect"})
    assert after == text.replace('          value: >-\n            interface=eth0\n',
                                 '          value: "can-reach=192.0.2.1"\n')
    assert mf.check_edit(text, after, {METHOD: "can-reach=192.0.2.1", "IP": "autodetect"})


# --- layouts ---------------------------------------------------------------------------------

KUBECTL_STYLE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: calico-config
data:
  note: "kind: DaemonSet"
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: something-else
spec:
  template:
    spec:
      containers:
      - name: calico-node
        env:
        - name: IP
          value: autodetect
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  labels:
    k8s-app: calico-node
  name: calico-node
spec:
  template:
    spec:
      initContainers:
      - name: install-cni
        env:
        - name: IP
          value: autodetect
      containers:
      -
        env:
        - value: "kubernetes"
          name: DATASTORE_TYPE
        - {name: FELIX_LOGSEVERITYSCREEN, value: info}
        - name: IP
          value: autodetect
        image: quay.io/calico/node:v3.30.0
        name: calico-node
"""


def test_multi_document_file_with_kubectl_style_sequences():
    after = mf.set_env(KUBECTL_STYLE, {METHOD: "skip-interface=^br-.*"})
    removed, added = changed_lines(KUBECTL_STYLE, after)
    assert removed == []
    assert added == ["        - name: IP_AUTODETECTION_METHOD\n", '          value: "skip-interface=^br-.*"\n']
    docs = list(yaml.safe_load_all(after))
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "IP", "value": "autodetect"}]
    ours = docs[2]["spec"]["template"]["spec"]
    assert ours["initContainers"][0]["env"] == [{"name": "IP", "value": "autodetect"}]
    assert ours["containers"][0]["env"][-1] == {"name": METHOD, "value": "skip-interface=^br-.*"}
    assert mf.check_edit(KUBECTL_STYLE, after, {METHOD: "skip-interface=^br-.*"})


def test_crlf_line_endings_and_no_final_newline_are_kept():
    crlf = KUBECTL_STYLE.replace("\n", "\r\n")
    after = mf.set_env(crlf, {METHOD: "first-found"})
    assert "\n" not in after.replace("\r\n", "") and len(after.splitlines()) == len(crlf.splitlines()) + 2
    last = ("kind: DaemonSet\r\nmetadata:\r\n  name: calico-node\r\nspec:\r\n  template:\r\n    spec:\r\n"
            "      containers:\r\n      - name: calico-node\r\n        env:\r\n        - name: IP\r\n"
            "          value: autodetect")
    assert mf.set_env(last, {METHOD: "first-found"}) == (
        last + '\r\n        - name: IP_AUTODETECTION_METHOD\r\n          value: "first-found"\r\n')


def test_empty_env_gets_its_first_entry():
    text = "kind: DaemonSet\nmetadata:\n  name: calico-node\nspec:\n  template:\n    spec:\n      containers:\n" \
           "        - name: calico-node\n          env:\n          image: calico/node\n"
    after = mf.set_env(text, {METHOD: "first-found"})
    assert calico_node_container(after)["env"] == [{"name": METHOD, "value": "first-found"}]


@pytest.mark.parametrize(("text", "message"), [
    ("kind: ConfigMap\nmetadata:\n  name: calico-node\n", "no DaemonSet named calico-node"),
    ("kind: DaemonSet\nmetadata:\n  name: calico-node\nspec:\n  template:\n    spec:\n      containers:\n"
     "        - name: calico-node\n          env: [{name: IP, value: autodetect}]\n",
     "not written as a block sequence"),
    ("kind: DaemonSet\nmetadata: {name: calico-node}\n", "not written as a block mapping"),
    ("kind: DaemonSet\nmetadata:\n  name: calico-node\nspec:\n  template:\n    spec:\n      containers:\n"
     "        - name: calico-node\n          image: x\n", "no env list"),
    ("kind: DaemonSet\nmetadata:\n  name: calico-node\nspec:\n  template:\n    spec:\n      containers:\n"
     "        - name: install-cni\n", "0 containers named calico-node"),
    ("kind: DaemonSet\nmetadata:\n  name: calico-node\n---\nkind: DaemonSet\nmetadata:\n  name: calico-node\n",
     "2 DaemonSets named calico-node"),
])
def test_what_cannot_be_edited_safely_is_refused(text, message):
    with pytest.raises(mf.ManifestError, match=message):
        mf.set_env(text, {METHOD: "first-found"})


def test_check_edit_catches_a_change_outside_the_variables(upstream):
    after = mf.set_env(upstream, {METHOD: "first-found"}).replace('value: "Always"', 'value: "Never"', 1)
    with pytest.raises(mf.ManifestError, match="left alone"):
        mf.check_edit(upstream, after, {METHOD: "first-found"})
    with pytest.raises(mf.ManifestError, match="not valid YAML"):
        mf.check_edit(upstream, "a: [", {METHOD: "first-found"})
