"""calico_nm_unmanaged and calico_autodetection run through real Ansible (`ansible localhost -m ...`).

NetworkManager: the module runs at its real default path inside a private mount namespace in which
a temp tree is bind-mounted over /etc/NetworkManager, /usr/lib/NetworkManager/conf.d,
/run/NetworkManager (on a private tmpfs /run) and /var/lib/NetworkManager, so it reads and writes
only the tree and verifies with the real `NetworkManager --print-config`. The reload tests start a
real NetworkManager and a private system bus inside private mount, network and UTS namespaces and
read NetworkManager's own log.

Manifests: a temp copy of tests/unit/fixtures/manifests/calico.yaml.txt.

kubectl: there is no cluster here. tests/integration/fake_kubectl.py stands in for kubectl and the
API server: it serves the DaemonSet and Installation JSON of tests/unit/fixtures/kube (written in
the shape `kubectl get -o json` prints, not recorded from a live cluster), applies `set env` and
merge patches to them, enforces the Installation's one-method rule and records every call.
"""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from contextlib import suppress

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_config as nm
from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_dropin as dropin
from ansible_collections.netdoctor.calico.tests.integration.module_run import run_module

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "tests", "unit", "fixtures")
FAKE_KUBECTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_kubectl.py")
NM = "/usr/sbin/NetworkManager"
CONF_D = "/etc/NetworkManager/conf.d"
CALICO_CONF = CONF_D + "/calico.conf"

needs_nm = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(NM, os.X_OK) or shutil.which("unshare") is None,
    reason="needs root, NetworkManager and unshare")


def snapshot(root):
    """{relative path: (bytes, mode)} of every file under root."""
    files = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = (f.read(), stat.S_IMODE(os.lstat(path).st_mode))
    return files


# --- NetworkManager in a private mount namespace ------------------------------------------------

MOUNTS = """set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/NetworkManager
mount --bind "$1/run/NetworkManager" /run/NetworkManager
mount --bind "$1/etc/NetworkManager" /etc/NetworkManager
mount --bind "$1/usr/lib/NetworkManager/conf.d" /usr/lib/NetworkManager/conf.d
mount --bind "$1/var/lib/NetworkManager" /var/lib/NetworkManager
[ -z "$2" ] || mount --bind /dev/null "$2"
shift 2
exec "$@"
"""


def nm_tree(root, files=None):
    for d in ("etc/NetworkManager/conf.d", "usr/lib/NetworkManager/conf.d", "run/NetworkManager/conf.d",
              "var/lib/NetworkManager"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    files = {"/etc/NetworkManager/NetworkManager.conf": "[main]\nplugins=keyfile\n", **(files or {})}
    for path, text in files.items():
        with open(os.path.join(root, path.lstrip("/")), "w", encoding="utf-8") as f:
            f.write(text)
    return str(root)


def in_tree(root, hide=""):
    """Command prefix: run in a private mount namespace over the tree (``hide``: a binary to mask)."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNTS, "sh", root, hide]


def nm_run(root, args, **kw):
    return run_module("calico_nm_unmanaged", args, prefix=in_tree(root), **kw)


def print_config(root):
    done = subprocess.run([*in_tree(root), NM, "--print-config"], capture_output=True, text=True, timeout=60,
                          check=True)
    return dropin.config_from_print_config(done.stdout)


def host_path(root, path):
    return os.path.join(root, path.lstrip("/"))


@needs_nm
def test_nm_check_mode_then_write_then_idempotent(tmp_path):
    root = nm_tree(tmp_path, {"/usr/lib/NetworkManager/conf.d/00-vendor.conf":
                              "[keyfile]\nunmanaged-devices=interface-name:eth9\n"})
    assert nm.calico_devices(print_config(root))["managed_calico_devices"]
    # after print_config: NetworkManager writes its NetworkManager-intern.conf when that is missing
    pristine = snapshot(root)

    checked = nm_run(root, {}, check=True, diff=True)
    assert checked["changed"] and not checked.get("failed")
    assert checked["verified_with"] == "model" and checked["managed_calico_devices"] == []
    assert checked["diff"]["before"] == "" and checked["diff"]["after"] == dropin.dropin_text()
    assert snapshot(root) == pristine

    first = nm_run(root, {})
    assert first["changed"] and first["verified_with"] == "NetworkManager --print-config"
    assert first["managed_calico_devices"] == [] and first["overridden_by"] == [] and not first["reloaded"]
    assert first["effective_unmanaged_devices"] == ["interface-name:eth9", *dropin.CALICO_SPECS]
    assert first["backup_file"] is None
    written = snapshot(root)
    assert written[CALICO_CONF.lstrip("/")] == (dropin.dropin_text().encode(), 0o644)
    assert {k: v for k, v in written.items() if k != CALICO_CONF.lstrip("/")} == pristine
    # NetworkManager's own parser, independently of the module
    assert nm.calico_devices(print_config(root))["managed_calico_devices"] == []

    again = nm_run(root, {}, diff=True)
    assert not again["changed"] and "diff" not in again and snapshot(root) == written


@needs_nm
def test_nm_replaces_the_documented_dropin_with_a_backup(tmp_path):
    docs = ("[keyfile]\nunmanaged-devices=interface-name:cali*;interface-name:tunl*;"
            "interface-name:vxlan.calico\n")
    root = nm_tree(tmp_path, {CALICO_CONF: docs})
    os.chmod(host_path(root, CALICO_CONF), 0o600)
    result = nm_run(root, {"extra_devices": ["flannel*"]}, diff=True)
    assert result["changed"] and result["diff"]["before"] == docs
    backup = result["backup_file"]
    assert os.path.dirname(backup) == CONF_D and not backup.endswith(".conf")
    with open(host_path(root, backup), encoding="utf-8") as f:
        assert f.read() == docs
    after = snapshot(root)[CALICO_CONF.lstrip("/")]
    assert after == (dropin.dropin_text(["interface-name:flannel*"]).encode(), 0o644)
    assert result["effective_unmanaged_devices"][-1] == "interface-name:flannel*"
    # NetworkManager ignores the backup (only *.conf counts)
    assert nm.merge(nm.discover(root))["files"] == ["/etc/NetworkManager/NetworkManager.conf", CALICO_CONF]

    # only the mode is wrong: fixed, no reload, no new backup
    os.chmod(host_path(root, CALICO_CONF), 0o600)
    fixed = nm_run(root, {"extra_devices": ["flannel*"]})
    assert fixed["changed"] and fixed["backup_file"] is None
    assert stat.S_IMODE(os.stat(host_path(root, CALICO_CONF)).st_mode) == 0o644


OVERRIDES = {
    "replaces": ("rke2-canal.conf", "[keyfile]\nunmanaged-devices=interface-name:cali*;interface-name:flannel*\n",
                 "=", ["tunl*", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali"]),
    "removes": ("zz-minus.conf", "[keyfile]\nunmanaged-devices-=interface-name:tunl*\n", "-=", ["tunl*"]),
}


@needs_nm
@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_nm_a_later_override_fails_and_names_the_file(tmp_path, case):
    name, text, op, managed = OVERRIDES[case]
    culprit = f"{CONF_D}/{name}"
    root = nm_tree(tmp_path, {culprit: text})
    pristine = snapshot(root)

    checked = nm_run(root, {}, check=True)
    assert checked["failed"] and culprit in checked["msg"] and snapshot(root) == pristine
    assert checked["managed_calico_devices"] == managed

    result = nm_run(root, {})
    assert result["failed"] and result["changed"]
    assert culprit in result["msg"] and result["verified_with"] == "NetworkManager --print-config"
    assert [(o["file"], o["op"]) for o in result["overridden_by"]] == [(culprit, op)]
    assert result["managed_calico_devices"] == managed
    # the drop-in is written either way: it is right, the later file is what must change
    assert os.path.exists(host_path(root, CALICO_CONF))
    assert nm.calico_devices(print_config(root))["managed_calico_devices"] == managed

    warned = nm_run(root, {"fail_on_override": False})
    assert not warned.get("failed") and not warned["changed"] and warned["managed_calico_devices"] == managed
    assert any(culprit in w for w in warned["warnings"])


@needs_nm
def test_nm_a_later_list_that_keeps_calico_is_reported_not_failed(tmp_path):
    later = f"{CONF_D}/zz-full.conf"
    root = nm_tree(tmp_path, {later: "[keyfile]\nunmanaged-devices=" + ";".join(dropin.CALICO_SPECS) + "\n"})
    result = nm_run(root, {})
    assert result["changed"] and not result.get("failed") and result["managed_calico_devices"] == []
    assert [o["file"] for o in result["overridden_by"]] == [later]


@needs_nm
def test_nm_a_same_named_file_in_etc_hides_a_run_dropin(tmp_path):
    root = nm_tree(tmp_path, {CALICO_CONF: "[keyfile]\nunmanaged-devices=interface-name:eth9\n"})
    result = nm_run(root, {"path": "/run/NetworkManager/conf.d/calico.conf"})
    assert result["failed"] and result["overridden_by"] == [{"file": CALICO_CONF, "op": "hides", "value": []}]
    assert "is read instead of /run/NetworkManager/conf.d/calico.conf" in result["msg"]


@needs_nm
@pytest.mark.parametrize(("args", "message"), [
    ({"extra_devices": ["00:11:22:33:44:55"]}, "write mac:00:11:22:33:44:55"),
    ({"extra_devices": ["flannel*", "*"]}, "every interface"),
    ({"extra_devices": ["except:interface-name:eth0"]}, "except:"),
    ({"extra_devices": ["averyveryverylongname0"]}, "at most 15"),
    ({"path": "calico.conf"}, "path must be absolute"),
    ({"path": "/etc/NetworkManager/calico.conf"}, "NAME.conf file directly in"),
    ({"state": "gone"}, "value of state must be one of"),
])
def test_nm_bad_input_fails_before_anything_changes(tmp_path, args, message):
    root = nm_tree(tmp_path, {CALICO_CONF: "[keyfile]\nunmanaged-devices=interface-name:cali*\n"})
    pristine = snapshot(root)
    result = nm_run(root, args)
    assert result["failed"] and not result["changed"] and message in result["msg"]
    assert snapshot(root) == pristine


@needs_nm
def test_nm_absent_removes_the_dropin(tmp_path):
    root = nm_tree(tmp_path)
    nm_run(root, {})
    written = snapshot(root)
    checked = nm_run(root, {"state": "absent"}, check=True, diff=True)
    assert checked["changed"] and checked["diff"]["after"] == "" and snapshot(root) == written
    assert "interface-name:cali*" not in checked["effective_unmanaged_devices"]
    removed = nm_run(root, {"state": "absent"})
    assert removed["changed"] and removed["content"] is None and not removed.get("failed")
    assert not os.path.exists(host_path(root, CALICO_CONF))
    assert os.path.exists(host_path(root, removed["backup_file"]))
    assert removed["managed_calico_devices"] == list(nm.CALICO_DEVICES)
    assert not nm_run(root, {"state": "absent"})["changed"]


@needs_nm
def test_nm_without_the_networkmanager_binary_the_model_verifies(tmp_path):
    root = nm_tree(tmp_path, {f"{CONF_D}/rke2-canal.conf": "[keyfile]\nunmanaged-devices=interface-name:flannel*\n"})
    result = run_module("calico_nm_unmanaged", {}, prefix=in_tree(root, hide=NM))
    assert result["failed"] and result["verified_with"] == "model"
    assert f"{CONF_D}/rke2-canal.conf" in result["msg"] and len(result["managed_calico_devices"]) == 6


# --- a running NetworkManager: the reload ----------------------------------------------------------

NODE = """set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/NetworkManager /run/dbus
mount --bind "$1/run/NetworkManager" /run/NetworkManager
mount --bind "$1/etc/NetworkManager" /etc/NetworkManager
mount --bind "$1/usr/lib/NetworkManager/conf.d" /usr/lib/NetworkManager/conf.d
mount --bind "$1/var/lib/NetworkManager" /var/lib/NetworkManager
mount --bind "$1/resolv.conf" /etc/resolv.conf
ip link set lo up
mkfifo /run/dbus-ready
dbus-daemon --system --nofork --nopidfile --print-address=3 >/dev/null 2>&1 3>/run/dbus-ready &
echo "dbus $!"
timeout 30 head -n 1 /run/dbus-ready >/dev/null
NetworkManager --debug >"$2" 2>&1 </dev/null &
echo "nm $!"
gdbus wait --system --timeout 30 org.freedesktop.NetworkManager
echo "ready $$"
wait
"""


class LiveNM:
    """NetworkManager and a system bus in private mount, network and UTS namespaces over a tree."""

    def __init__(self, root):
        self.root, self.log = root, os.path.join(root, "nm.log")
        with open(os.path.join(root, "resolv.conf"), "w", encoding="utf-8"):
            pass
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--net", "--uts", "--fork", "--kill-child",
             "sh", "-c", NODE, "sh", root, self.log], stdout=subprocess.PIPE, text=True)
        # The script announces each pid, then "ready" once NetworkManager owns its bus name; it gives up
        # (and the pipe closes) when the bus or NetworkManager is not up within 30 s.
        self.pids = {}
        for line in self.proc.stdout:
            key, pid = line.split()
            self.pids[key] = int(pid)
            if key == "ready":
                break
        if "ready" not in self.pids:
            self.stop()
            raise AssertionError(f"NetworkManager did not come up:\n{self.read_log()}")
        self.keeper, self.nm = self.pids["ready"], self.pids["nm"]

    def prefix(self):
        return ["nsenter", "-t", str(self.keeper), "-m", "-u", "-n", "--"]

    def read_log(self):
        with suppress(OSError), open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()
        return ""

    def stop(self):
        started = [self.pids[k] for k in ("nm", "dbus") if k in self.pids]
        for pid in started:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for pid in started:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture
def live_nm(tmp_path):
    if shutil.which("dbus-daemon") is None or shutil.which("gdbus") is None:
        pytest.skip("needs dbus-daemon and gdbus")
    # dns=none: the private NetworkManager must not write resolv.conf (bind-mounted anyway)
    root = nm_tree(tmp_path, {"/etc/NetworkManager/NetworkManager.conf":
                              "[main]\nplugins=keyfile\ndns=none\nrc-manager=unmanaged\n"})
    node = LiveNM(root)
    yield node
    node.stop()


def reloads(log):
    return [line for line in log.splitlines() if 'audit: op="reload" arg="1"' in line and 'result="success"' in line]


@needs_nm
def test_nm_reloads_a_running_networkmanager_only_when_changed(live_nm):
    first = run_module("calico_nm_unmanaged", {}, prefix=live_nm.prefix())
    assert first["changed"] and first["reloaded"] and first["managed_calico_devices"] == []
    log = live_nm.read_log()
    assert len(reloads(log)) == 1
    # NetworkManager re-read its files and found new values, now with ours
    assert re.search(r"config: signal: CONF,.*values-user \(.*etc: calico\.conf\)", log)

    again = run_module("calico_nm_unmanaged", {}, prefix=live_nm.prefix())
    assert not again["changed"] and not again["reloaded"]
    assert len(reloads(live_nm.read_log())) == 1

    checked = run_module("calico_nm_unmanaged", {"extra_devices": ["flannel*"]}, prefix=live_nm.prefix(), check=True)
    assert checked["changed"] and not checked["reloaded"] and len(reloads(live_nm.read_log())) == 1

    no_reload = run_module("calico_nm_unmanaged", {"extra_devices": ["flannel*"], "reload": False},
                           prefix=live_nm.prefix())
    assert no_reload["changed"] and not no_reload["reloaded"] and len(reloads(live_nm.read_log())) == 1
    assert os.path.exists(f"/proc/{live_nm.nm}")     # never restarted


@needs_nm
def test_nm_reload_falls_back_to_dbus_without_nmcli(live_nm):
    nmcli = shutil.which("nmcli")
    if nmcli:
        # mask nmcli inside the node's mount namespace only
        subprocess.run([*live_nm.prefix(), "mount", "--bind", "/dev/null", nmcli], check=True, timeout=30)
    result = run_module("calico_nm_unmanaged", {}, prefix=live_nm.prefix())
    assert result["changed"] and result["reloaded"]
    assert len(reloads(live_nm.read_log())) == 1


# --- manifests ----------------------------------------------------------------------------------

METHOD = "interface=^eth0$"


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "calico.yaml"
    shutil.copyfile(os.path.join(FIXTURES, "manifests", "calico.yaml.txt"), path)
    os.chmod(path, 0o640)
    return path


def test_manifest_check_diff_write_and_idempotence(manifest):
    pristine = snapshot(manifest.parent)
    original = manifest.read_text(encoding="utf-8")
    args = {"target": "manifest", "path": str(manifest), "method": METHOD}

    checked = run_module("calico_autodetection", args, check=True, diff=True)
    assert checked["changed"] and checked["previous"] is None and checked["method"] == METHOD
    assert snapshot(manifest.parent) == pristine
    expected = original.replace('              value: "autodetect"\n',
                                '              value: "autodetect"\n            - name: IP_AUTODETECTION_METHOD\n'
                                f'              value: "{METHOD}"\n', 1)
    assert checked["diff"]["before"] == original and checked["diff"]["after"] == expected

    result = run_module("calico_autodetection", args)
    assert result["changed"] and manifest.read_text(encoding="utf-8") == expected
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o640
    with open(result["backup_file"], encoding="utf-8") as f:
        assert f.read() == original
    written = snapshot(manifest.parent)

    again = run_module("calico_autodetection", args)
    assert not again["changed"] and again["previous"] == METHOD and again["backup_file"] is None
    assert snapshot(manifest.parent) == written

    v6 = run_module("calico_autodetection", {**args, "method6": "cidr=2001:db8::/64"})
    assert v6["changed"] and v6["previous6"] is None
    assert any("IP6 is unset" in w for w in v6["warnings"])


@pytest.mark.parametrize(("args", "message"), [
    ({"method": "eth0"}, "Invalid IP autodetection method: eth0"),
    ({"method": "interface=eth(0"}, "method:"),
    ({"method": "cidr=192.0.2.0/33"}, "Invalid CIDR"),
    ({"method": "kubernetes-internal-ip", "calico_version": "3.20"}, "Invalid IP autodetection method"),
    ({"method": "first-found", "method6": "can-reach"}, "method6: Invalid IP autodetection method"),
    ({"method": "first-found", "calico_version": "latest"}, "calico_version"),
    ({}, "one of the following is required: method, method6"),
])
def test_manifest_bad_method_fails_before_anything_changes(manifest, args, message):
    pristine = snapshot(manifest.parent)
    result = run_module("calico_autodetection", {"target": "manifest", "path": str(manifest), **args})
    assert result["failed"] and not result["changed"] and message in result["msg"]
    assert snapshot(manifest.parent) == pristine


def test_manifest_variable_from_valuefrom_is_refused(manifest):
    text = manifest.read_text(encoding="utf-8").replace(
        '            - name: IP\n              value: "autodetect"\n',
        '            - name: IP\n              value: "autodetect"\n            - name: IP_AUTODETECTION_METHOD\n'
        "              valueFrom:\n                configMapKeyRef:\n                  name: calico-config\n"
        "                  key: ip_autodetection_method\n")
    manifest.write_text(text, encoding="utf-8")
    pristine = snapshot(manifest.parent)
    result = run_module("calico_autodetection", {"target": "manifest", "path": str(manifest), "method": METHOD})
    assert result["failed"] and "valueFrom" in result["msg"] and snapshot(manifest.parent) == pristine


# --- kubectl against the stand-in ------------------------------------------------------------------


@pytest.fixture
def kube(tmp_path):
    """A state dir with the fixture objects and a bin dir whose `kubectl` is the stand-in."""
    state, bindir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bindir.mkdir()
    for src, dst in (("daemonset-kube-system.json", "daemonset.kube-system.calico-node.json"),
                     ("daemonset-calico-system.json", "daemonset.calico-system.calico-node.json"),
                     ("installation-default.json", "installations.operator.tigera.io.default.json")):
        shutil.copyfile(os.path.join(FIXTURES, "kube", src), state / dst)
    kubectl = bindir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_KUBECTL}" "$@"\n', encoding="utf-8")
    kubectl.chmod(0o755)
    env = {"FAKE_KUBE_DIR": str(state), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}

    class Kube:
        def calls(self):
            path = state / "calls.jsonl"
            return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

        def obj(self, name):
            return json.loads((state / name).read_text())

        def run(self, args, **kw):
            return run_module("calico_autodetection", args, env=env, **kw)

    k = Kube()
    k.bin, k.state = str(kubectl), state
    return k


def calico_node_env(ds):
    container = next(c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "calico-node")
    return {e["name"]: e.get("value") for e in container["env"]}


def test_daemonset_check_set_and_idempotence(kube):
    ds_file = "daemonset.kube-system.calico-node.json"
    before = kube.obj(ds_file)
    args = {"target": "daemonset", "method": METHOD}

    checked = kube.run(args, check=True, diff=True)
    assert checked["changed"] and checked["previous"] is None
    assert checked["diff"] == {"before": {"IP_AUTODETECTION_METHOD": None},
                               "after": {"IP_AUTODETECTION_METHOD": METHOD}}
    assert checked["command"][-2:] == ["--dry-run=server", f"IP_AUTODETECTION_METHOD={METHOD}"]
    assert kube.obj(ds_file) == before
    assert [c[:2] for c in kube.calls()] == [["get", "daemonset"], ["set", "env"]]

    result = kube.run(args)
    assert result["changed"] and "--dry-run=server" not in result["command"]
    assert kube.calls()[-1] == ["set", "env", "daemonset/calico-node", "--namespace=kube-system",
                                "--containers=calico-node", f"IP_AUTODETECTION_METHOD={METHOD}"]
    env = calico_node_env(kube.obj(ds_file))
    assert env["IP_AUTODETECTION_METHOD"] == METHOD and env["IP"] == "autodetect"
    # the init containers are not touched
    assert kube.obj(ds_file)["spec"]["template"]["spec"]["initContainers"] == before["spec"]["template"]["spec"][
        "initContainers"]

    calls = len(kube.calls())
    again = kube.run(args)
    assert not again["changed"] and again["previous"] == METHOD and again["command"] is None
    assert [c[0] for c in kube.calls()[calls:]] == ["get"]


def test_daemonset_owned_by_the_operator_is_refused(kube):
    result = kube.run({"target": "daemonset", "namespace": "calico-system", "method": METHOD})
    assert result["failed"] and "owned by tigera-operator" in result["msg"] and "target=installation" in result["msg"]
    assert [c[0] for c in kube.calls()] == ["get"]


def test_installation_patch_replaces_the_method_object(kube):
    inst_file = "installations.operator.tigera.io.default.json"
    args = {"target": "installation", "method": METHOD, "kubectl": kube.bin, "kubeconfig": "/etc/kubernetes/admin.conf",
            "context": "prod"}

    checked = kube.run(args, check=True, diff=True)
    assert checked["changed"] and checked["previous"] == "first-found"
    assert checked["diff"]["after"] == {"nodeAddressAutodetectionV4": {"interface": "^eth0$"}}
    assert kube.obj(inst_file)["spec"]["calicoNetwork"]["nodeAddressAutodetectionV4"] == {"firstFound": True}

    result = kube.run(args)
    assert result["changed"] and result["operator_form"] == {"v4": {"interface": "^eth0$"}}
    patch = kube.calls()[-1]
    assert patch[:3] == ["--kubeconfig=/etc/kubernetes/admin.conf", "--context=prod", "patch"]
    assert json.loads(next(a for a in patch if a.startswith("--patch=")).removeprefix("--patch=")) == {
        "spec": {"calicoNetwork": {"nodeAddressAutodetectionV4": {"firstFound": None, "interface": "^eth0$"}}}}
    network = kube.obj(inst_file)["spec"]["calicoNetwork"]
    assert network["nodeAddressAutodetectionV4"] == {"interface": "^eth0$"}
    assert network["ipPools"][0]["cidr"] == "198.18.0.0/16"

    again = kube.run(args)
    assert not again["changed"] and again["previous"] == METHOD and again["command"] is None


def test_kubectl_errors_are_reported(kube):
    missing = kube.run({"target": "daemonset", "namespace": "nowhere", "method": METHOD})
    assert missing["failed"] and 'daemonsets.apps "calico-node" not found' in missing["msg"]
    no_binary = kube.run({"target": "installation", "method": METHOD, "kubectl": "/nonexistent/kubectl"})
    assert no_binary["failed"] and "kubectl not found" in no_binary["msg"]
