"""Planning and verification of the NM001 drop-in (plugins/module_utils/_nm_dropin.py)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_config as nm
from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_dropin as dropin

ETC = "/etc/NetworkManager/conf.d/"
PATH = dropin.DEFAULT_PATH
SPECS = list(dropin.CALICO_SPECS)


def tree(root, files):
    for path, text in files.items():
        full = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
    return nm.discover(str(root))


# --- input -----------------------------------------------------------------------------------


def test_extra_specs_normalise_names_and_keep_tagged_specs():
    assert dropin.extra_specs(["flannel*", " interface-name:=eth9 ", "mac:52:54:00:12:34:56", "type:wireguard",
                               "driver:vxlan", "flannel*", "cali*", "interface-name:tunl*"]) == [
        "interface-name:flannel*", "interface-name:=eth9", "mac:52:54:00:12:34:56", "type:wireguard", "driver:vxlan"]
    assert dropin.extra_specs([]) == []


@pytest.mark.parametrize(("item", "message"), [
    ("", "empty"),
    ("  ", "empty"),
    ("*", "every interface"),
    ("interface-name:**", "every interface"),
    ("except:interface-name:eth0", "except:"),
    ("00:11:22:33:44:55", "write mac:00:11:22:33:44:55"),
    ("eth0/1", "cannot contain"),
    ("my nic", "cannot contain"),
    ("averyveryverylongname0", "at most 15"),
    ("mac:zz:11", "not a hardware address"),
    ("type:", "nothing after its tag"),
    ("cali\nx", "line break"),
])
def test_bad_extra_specs_are_rejected(item, message):
    with pytest.raises(ValueError, match=message):
        dropin.extra_specs(["flannel*", item])


def test_every_bad_item_is_named_at_once():
    with pytest.raises(ValueError) as exc:
        dropin.extra_specs(["*", "ok*", "00:11:22:33:44:55"])
    assert "'*'" in str(exc.value) and "00:11:22:33:44:55" in str(exc.value) and "ok*" not in str(exc.value)


@pytest.mark.parametrize(("path", "ok"), [
    (PATH, True),
    ("/run/NetworkManager/conf.d/calico.conf", True),
    ("/usr/lib/NetworkManager/conf.d/90-calico.conf", True),
    ("calico.conf", False),
    ("conf.d/calico.conf", False),
    ("/etc/NetworkManager/NetworkManager.conf", False),
    ("/etc/NetworkManager/conf.d/calico", False),
    ("/etc/NetworkManager/conf.d/.conf", False),
    ("/etc/NetworkManager/conf.d/sub/calico.conf", False),
    ("/etc/NetworkManager/conf.d/../conf.d/calico.conf", False),
    ("/tmp/calico.conf", False),
])
def test_check_path(path, ok):
    assert (dropin.check_path(path) is None) == ok


# --- the file --------------------------------------------------------------------------------


def test_dropin_text_reads_back_as_the_specs():
    extra = ["interface-name:flannel*", "mac:52:54:00:12:34:56", "interface-name:odd;name"]
    text = dropin.dropin_text(extra)
    assert text.startswith("# Managed by netdoctor.calico.calico_nm_unmanaged")
    groups = nm.parse_keyfile(text)
    assert list(groups) == ["keyfile"]
    (key, value), = groups["keyfile"]
    assert key == "unmanaged-devices+"
    assert nm.split_specs(value) == SPECS + extra


# --- overrides -------------------------------------------------------------------------------


def test_overrides_later_equals_minus_and_intern(tmp_path):
    found = tree(tmp_path, {
        ETC + "00-early.conf": "[keyfile]\nunmanaged-devices=interface-name:eth9\n",      # read before: fine
        ETC + "rke2-canal.conf": "[keyfile]\nunmanaged-devices=interface-name:flannel*\n",
        ETC + "zz-minus.conf": "[keyfile]\nunmanaged-devices-=interface-name:tunl*\n",
        ETC + "zz-other-minus.conf": "[keyfile]\nunmanaged-devices-=interface-name:eth9\n",  # not ours
        "/var/lib/NetworkManager/NetworkManager-intern.conf":
            "[keyfile]\n.set.unmanaged-devices=interface-name:x\n.was.unmanaged-devices=interface-name:flannel*\n",
    })
    config = nm.merge(nm.with_dropin(found, PATH, dropin.dropin_text()))
    result = dropin.overrides(found, PATH, SPECS, config)
    assert [(o["file"], o["op"]) for o in result] == [
        (ETC + "rke2-canal.conf", "="), (ETC + "zz-minus.conf", "-="),
        ("/var/lib/NetworkManager/NetworkManager-intern.conf", "=")]
    verdict = dropin.verdict(config)
    assert not verdict["ok"] and verdict["effective_unmanaged_devices"] == ["interface-name:x"]
    msg = dropin.failure_message(PATH, verdict, result)
    assert ETC + "rke2-canal.conf is read later and replaces the list" in msg
    assert ETC + "zz-minus.conf is read later and removes entries" in msg


def test_a_same_named_file_in_etc_hides_a_run_dropin(tmp_path):
    found = tree(tmp_path, {ETC + "calico.conf": "[keyfile]\nunmanaged-devices=interface-name:eth9\n"})
    run_path = "/run/NetworkManager/conf.d/calico.conf"
    result = dropin.overrides(found, run_path, SPECS)
    assert result == [{"file": ETC + "calico.conf", "op": "hides", "value": []}]
    assert "has the same name and is read instead" in dropin.failure_message(
        run_path, dropin.verdict(nm.merge(nm.with_dropin(found, run_path, dropin.dropin_text()))), result)


def test_the_dropin_composes_with_earlier_lists(tmp_path):
    found = tree(tmp_path, {
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:eth9\n",
        ETC + "99-later-append.conf": "[keyfile]\nunmanaged-devices+=interface-name:docker0\n",
    })
    assert dropin.overrides(found, PATH, SPECS) == []
    verdict = dropin.verdict(nm.merge(nm.with_dropin(found, PATH, dropin.dropin_text(["mac:52:54:00:12:34:56"]))),
                             ["mac:52:54:00:12:34:56"])
    assert verdict["ok"]
    assert verdict["effective_unmanaged_devices"] == ["interface-name:eth9", "interface-name:docker0", *SPECS,
                                                      "mac:52:54:00:12:34:56"]


def test_verdict_on_an_except_spec_and_a_missing_extra():
    config = {"unmanaged_devices": [*SPECS, "except:interface-name:tunl0"], "device_sections": []}
    verdict = dropin.verdict(config, ["type:wireguard"])
    assert not verdict["ok"]
    # except: takes out only what it matches
    assert verdict["managed_calico_devices"] == ["tunl*"] and verdict["managed_examples"] == {"tunl*": "tunl0"}
    assert verdict["missing_specs"] == ["type:wireguard"]
    msg = dropin.failure_message(PATH, verdict, [])
    assert "still manages tunl* (e.g. tunl0) and does not list type:wireguard" in msg and "except: specs" in msg


# --- NetworkManager --print-config ------------------------------------------------------------

PRINT_CONFIG = """\
# NetworkManager configuration: /etc/NetworkManager/NetworkManager.conf (etc: calico.conf, more.conf)

[main]
# plugins=
configure-and-quit=no

[keyfile]
unmanaged-devices=interface-name:cali*,interface-name:tunl*,interface-name:vxlan.calico

[logging]
# backend=journal

[device]
# wifi.backend=wpa_supplicant

[device-vx]
match-device=interface-name:vxlan-v6.calico,interface-name:wireguard.cali
managed=0

[device-wg]
match-device=interface-name:wg-v6.cali
managed=false

# no-auto-default file "/var/lib/NetworkManager/no-auto-default.state"
"""


def test_config_from_print_config():
    config = dropin.config_from_print_config(PRINT_CONFIG)
    assert config["unmanaged_devices"] == SPECS[:3]
    assert [s["group"] for s in config["device_sections"]] == ["device-vx", "device-wg"]
    # keyfile list plus [device-*] managed=0 sections cover every Calico device
    assert dropin.verdict(config)["ok"]
    assert not dropin.verdict(dropin.config_from_print_config(PRINT_CONFIG.replace("managed=false", "managed=1")))["ok"]


def test_reload_command_prefers_nmcli_and_never_restarts():
    assert dropin.reload_command("/usr/bin/nmcli", "/usr/bin/busctl") == ["/usr/bin/nmcli", "general", "reload", "conf"]
    assert dropin.reload_command(None, "/usr/bin/busctl") == [
        "/usr/bin/busctl", "call", "org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager",
        "org.freedesktop.NetworkManager", "Reload", "u", "1"]
    assert dropin.reload_command(None, None, "/usr/bin/dbus-send")[-2:] == [
        "org.freedesktop.NetworkManager.Reload", "uint32:1"]
    assert dropin.reload_command() is None
