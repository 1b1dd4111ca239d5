"""Cross-check _nm_config against NetworkManager's own parser (``NetworkManager --print-config``).

Each layout is written to a temp tree; NetworkManager then runs in a private mount namespace where
the tree is bind-mounted over /etc/NetworkManager, /usr/lib/NetworkManager/conf.d,
/run/NetworkManager (on a private tmpfs /run) and /var/lib/NetworkManager, so it reads exactly the
tree at its default paths and writes nothing on the host. One layout uses the command-line paths
(--config, --config-dir, --system-config-dir, --intern-config) instead.
"""

import os
import shutil
import subprocess

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_config as nm

NM = "/usr/sbin/NetworkManager"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(NM, os.X_OK) or shutil.which("unshare") is None,
    reason="needs root, NetworkManager and unshare",
)

CALICO = nm.render_dropin()

LAYOUTS = {
    "plain": {
        "/etc/NetworkManager/conf.d/calico.conf":
            "[keyfile]\nunmanaged-devices=interface-name:cali*;interface-name:tunl*;interface-name:vxlan.calico\n",
    },
    "append-across-files": {
        "/usr/lib/NetworkManager/conf.d/00-lib.conf": "[keyfile]\nunmanaged-devices+=mac:00:11:22:33:44:55\n",
        "/etc/NetworkManager/NetworkManager.conf":
            "[main]\nplugins=keyfile\n[keyfile]\nunmanaged-devices=interface-name:eth9\n",
        "/etc/NetworkManager/conf.d/calico.conf": CALICO,
        "/etc/NetworkManager/conf.d/more.conf":
            "[keyfile]\nunmanaged-devices+=interface-name:eth9,interface-name:br-*\n",
    },
    "later-equals-replaces": {
        "/etc/NetworkManager/conf.d/calico.conf": CALICO,
        "/etc/NetworkManager/conf.d/rke2-canal.conf": "[keyfile]\nunmanaged-devices=interface-name:flannel*\n",
    },
    "minus": {
        "/etc/NetworkManager/conf.d/a.conf": CALICO,
        "/etc/NetworkManager/conf.d/b.conf":
            "[keyfile]\nunmanaged-devices-=interface-name:tunl*;interface-name:nothere\n",
        "/etc/NetworkManager/conf.d/c.conf": "[keyfile]\nunmanaged-devices-=interface-name:x\n",
    },
    "minus-on-unset": {
        "/etc/NetworkManager/conf.d/a.conf": "[keyfile]\nunmanaged-devices-=interface-name:a\n",
    },
    "same-basename": {
        "/usr/lib/NetworkManager/conf.d/calico.conf": "[keyfile]\nunmanaged-devices=interface-name:lib\n",
        "/run/NetworkManager/conf.d/calico.conf": "[keyfile]\nunmanaged-devices+=interface-name:run\n",
        "/etc/NetworkManager/conf.d/calico.conf": CALICO,
        "/usr/lib/NetworkManager/conf.d/y.conf": "[keyfile]\nunmanaged-devices+=interface-name:liby\n",
        "/usr/lib/NetworkManager/conf.d/z.conf": "[keyfile]\nunmanaged-devices=interface-name:libz\n",
        "/run/NetworkManager/conf.d/z.conf": "[keyfile]\nunmanaged-devices+=interface-name:runz\n",
    },
    "escapes-whitespace-repeats": {
        "/etc/NetworkManager/conf.d/a.conf":
            "[keyfile]\nunmanaged-devices =  interface-name:a\\;b ; interface-name:c\\sd ,,interface-name:e\\\\f  \n",
        "/etc/NetworkManager/conf.d/b.conf":
            "[keyfile]\nunmanaged-devices+=interface-name:p\nunmanaged-devices+=interface-name:a\\;b,interface-name:g\n"
            "[main]\ndhcp=internal\n[keyfile]\nunmanaged-devices-=interface-name:c\\sd\n",
    },
    "config-enable": {
        "/etc/NetworkManager/conf.d/a.conf": "[keyfile]\nunmanaged-devices=interface-name:a\n",
        "/etc/NetworkManager/conf.d/b.conf": "[.config]\nenable=false\n[keyfile]\nunmanaged-devices=interface-name:b\n",
        "/etc/NetworkManager/conf.d/c.conf": "[.config]\nenable=nm-version-min:1.40\n[keyfile]\nunmanaged-devices+=c\n",
        "/etc/NetworkManager/conf.d/d.conf": "[.config]\nenable=nm-version-max:1.40\n[keyfile]\nunmanaged-devices+=d\n",
        "/etc/NetworkManager/conf.d/e.conf": "[.config]\nenable=env:NOT_SET\n[keyfile]\nunmanaged-devices+=e\n",
    },
    "intern-set": {
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:a  \n",
        "/var/lib/NetworkManager/NetworkManager-intern.conf":
            "[keyfile]\n.set.unmanaged-devices=interface-name:zz\n.was.unmanaged-devices=interface-name:a  \n",
    },
    "intern-stale": {
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:b\n",
        "/var/lib/NetworkManager/NetworkManager-intern.conf":
            "[keyfile]\n.set.unmanaged-devices=interface-name:zz\n.was.unmanaged-devices=interface-name:a\n",
    },
    "old-main-file": {
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:new\n",
        "/etc/NetworkManager/nm-system-settings.conf": "[keyfile]\nunmanaged-devices=interface-name:old\n",
    },
    "device-sections": {
        "/usr/lib/NetworkManager/conf.d/l.conf": "[device-l]\nmatch-device=*\nstop-match=yes\n",
        "/etc/NetworkManager/conf.d/a.conf": "[device-b]\nmatch-device=interface-name:x*\nmanaged=0\n"
                                             "[device-a]\nmatch-device=interface-name:y\nmanaged=1\n[device]\nmanaged=1\n",
        "/etc/NetworkManager/conf.d/b.conf": "[device-c]\nmatch-device=interface-name:cali*\nmanaged=false\n"
                                             "[device-b]\nmatch-device+=interface-name:z\n",
    },
}

MOUNTS = """set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/NetworkManager
mount --bind "$1/run/NetworkManager" /run/NetworkManager
mount --bind "$1/etc/NetworkManager" /etc/NetworkManager
mount --bind "$1/usr/lib/NetworkManager/conf.d" /usr/lib/NetworkManager/conf.d
mount --bind "$1/var/lib/NetworkManager" /var/lib/NetworkManager
shift
exec "$@"
"""


def write_tree(root, files):
    for d in ("etc/NetworkManager/conf.d", "usr/lib/NetworkManager/conf.d", "run/NetworkManager/conf.d",
              "var/lib/NetworkManager"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for path, text in files.items():
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)


def run_print_config(root, *args):
    """NetworkManager --print-config, run in a private mount namespace over ``root``."""
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNTS, "sh", root, NM, "--print-config",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def print_config(root, *args):
    done = run_print_config(root, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def nm_version():
    return subprocess.run([NM, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def described_files(header):
    """Files named in '# NetworkManager configuration: MAIN (lib: a, b) (run: c) (etc: d)'."""
    text = header.split(": ", 1)[1]
    main, _sep, rest = text.partition(" (")
    names = {}
    for part in ("(" + rest).split(") ") if rest else []:
        kind, _sep, listed = part.strip("()").partition(": ")
        names[kind] = listed.split(", ")
    return main, names


def assert_same(out, mine):
    groups = nm.parse_keyfile(out)
    theirs = nm.split_specs(dict(groups.get("keyfile", [])).get("unmanaged-devices"))
    assert mine["unmanaged_devices"] == theirs
    main, names = described_files(out.splitlines()[0])
    kinds = {"lib": "/usr/lib/NetworkManager/conf.d/", "run": "/run/NetworkManager/conf.d/",
             "etc": "/etc/NetworkManager/conf.d/"}
    expected = [p for p in mine["files"] if not p.startswith(tuple(kinds.values()))]
    assert expected in ([main], [])
    for kind, prefix in kinds.items():
        assert [p[len(prefix):] for p in mine["files"] if p.startswith(prefix)] == names.get(kind, [])
    # print-config lists the literal [device] first, then [device-*] in lookup order
    printed = [g for g in groups if g.startswith("device") and g != "device" and groups[g]]
    printed += ["device"] if groups.get("device") else []
    assert [s["group"] for s in mine["device_sections"]] == printed
    for section in mine["device_sections"]:
        values = dict(groups[section["group"]])
        assert section["managed"] == values.get("managed")
        assert section["match_device"] == (nm.split_specs(values["match-device"]) if "match-device" in values else None)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_effective_unmanaged_devices_match_networkmanager(tmp_path, layout):
    root = str(tmp_path)
    write_tree(root, LAYOUTS[layout])
    mine = nm.merge(nm.discover(root), nm_version=nm_version(), env_tag=os.environ.get("NM_CONFIG_ENABLE_TAG", ""))
    assert not mine["errors"]
    assert_same(print_config(root), mine)


def test_command_line_paths_match_networkmanager(tmp_path):
    root = str(tmp_path)
    write_tree(root, LAYOUTS["same-basename"])
    write_tree(root, {
        "/srv/nm/main.conf": "[keyfile]\nunmanaged-devices+=interface-name:main\n",
        "/srv/nm/conf.d/calico.conf": CALICO,
        "/srv/nm/lib/calico.conf": "[keyfile]\nunmanaged-devices=interface-name:shadowed\n",
        "/srv/nm/lib/a.conf": "[keyfile]\nunmanaged-devices=interface-name:lib-a\n",
        "/srv/nm/intern.conf": "[keyfile]\n.set.unmanaged-devices=interface-name:intern\n"
                               ".was.unmanaged-devices=interface-name:other\n",
    })
    paths = {"main_file": "/srv/nm/main.conf", "config_dir": "/srv/nm/conf.d", "system_config_dir": "/srv/nm/lib",
             "intern_file": "/srv/nm/intern.conf"}
    mine = nm.merge(nm.discover(root, **paths))
    # NetworkManager sees the tree's /srv through the host path
    args = ["--config=%s" % (root + paths["main_file"]), "--config-dir=%s" % (root + paths["config_dir"]),
            "--system-config-dir=%s" % (root + paths["system_config_dir"]),
            "--intern-config=%s" % (root + paths["intern_file"])]
    out = print_config(root, *args)
    theirs = nm.split_specs(dict(nm.parse_keyfile(out).get("keyfile", [])).get("unmanaged-devices"))
    assert mine["unmanaged_devices"] == theirs
    # the run dir still comes from its default path
    assert "interface-name:runz" in theirs


def test_the_dropin_fixes_what_networkmanager_reads(tmp_path):
    """with_dropin() predicts the effective list NetworkManager reads once the drop-in is written."""
    root = str(tmp_path)
    write_tree(root, {
        "/etc/NetworkManager/NetworkManager.conf":
            "[keyfile]\nunmanaged-devices=interface-name:cali*;interface-name:tunl*\n",
        "/etc/NetworkManager/conf.d/10-other.conf": "[keyfile]\nunmanaged-devices+=interface-name:docker0\n",
    })
    before = nm.discover(root)
    path = "/etc/NetworkManager/conf.d/calico.conf"
    assert nm.later_overrides(before, path, nm.split_specs(CALICO.split("+=", 1)[1])) == []
    predicted = nm.merge(nm.with_dropin(before, path, CALICO))
    write_tree(root, {path: CALICO})
    assert_same(print_config(root), predicted)
    assert nm.calico_devices(predicted)["managed_calico_devices"] == []


@pytest.mark.parametrize("text", [
    "[]\nx=1\n", "[a[b]\nx=1\n", "[ok]  \nx=1\n", "[ok]\n  key with space = v\n", "[ok]\nk[de]=v\n",
    "[ok]\nk[de=v\n", "[ok]\n[=x\n", "  # c\n[ok]\nk=v\n", "[foo=bar]\nk=v\n", "[ok]\nk]=v\n", "k=v\n[ok]\n",
    "[ok]\nno equals sign\n",
])
def test_keyfile_syntax_is_accepted_and_rejected_like_networkmanager(tmp_path, text):
    root = str(tmp_path)
    write_tree(root, {"/etc/NetworkManager/conf.d/a.conf": text})
    networkmanager_ok = run_print_config(root).returncode == 0
    mine = nm.merge(nm.discover(root))
    assert (not mine["errors"]) == networkmanager_ok
