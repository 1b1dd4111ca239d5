"""NetworkManager config discovery, merge and device-spec matching (pure core + temp trees)."""

import os

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_config as nm

CALICO_LINE = ("interface-name:cali*;interface-name:tunl*;interface-name:vxlan.calico;"
               "interface-name:vxlan-v6.calico;interface-name:wireguard.cali;interface-name:wg-v6.cali")


def make_tree(root, files):
    for path, text in files.items():
        full = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(text)
    return str(root)


def merged(tmp_path, files, **kw):
    return nm.merge(nm.discover(make_tree(tmp_path, files)), **kw)


def config(unmanaged=(), sections=()):
    return {"unmanaged_devices": list(unmanaged), "device_sections": list(sections)}


# --- split / join: vectors from NetworkManager's own src/core/tests/test-core.c -------------------


@pytest.mark.parametrize(("value", "specs"), [
    ("em1,em2,interface-name:em2", ["em1", "em2", "interface-name:em2"]),
    ("aa,bb,cc\\,dd,e,,", ["aa", "bb", "cc,dd", "e"]),
    ("aa;bb;cc\\;dd;e,;", ["aa", "bb", "cc;dd", "e"]),
    ("interface-name:em\\;1,em\\,2,\\,,\\\\,,em\\\\x", ["interface-name:em;1", "em,2", ",", "\\", "em\\x"]),
    ("\\s\\s,\\sinterface-name:a,\\s,", ["  ", " interface-name:a", " "]),
    (" aa ;  bb   ; cc\\;dd  ;e , ; \t\\t  , ", ["aa", "bb", "cc;dd", "e", "\t"]),
    ("interface-name:em\\*", ["interface-name:em\\*"]),
    # NetworkManager's quirk, seen in --print-config: unescaped inner whitespace shortens the spec
    ("interface-name:c d,x", ["interface-name:c ", "x"]),
    ("", []),
    (None, []),
])
def test_split_specs_and_join_round_trip(value, specs):
    assert nm.split_specs(value) == specs
    assert nm.split_specs(nm.join_specs(specs)) == specs


# --- device matching: NetworkManager's test_match_spec_device vectors -----------------------------

NM_NO_MATCH_DEFAULT = ["e", "em", "em*", "em\\", "em\\*", "em\\1", "em\\11", "em\\2", "em1", "em11", "em2", "=em*"]
EM_ALL = ["em", "em*", "em\\", "em\\*", "em\\1", "em\\11", "em\\2", "em1", "em11", "em2", "em3"]


@pytest.mark.parametrize(("spec", "matches", "neg_matches"), [
    ("em1", ["em1"], []),
    ("em1,em2", ["em1", "em2"], []),
    ("em1,em2,interface-name:em2", ["em1", "em2"], []),
    ("interface-name:em1", ["em1"], []),
    ("interface-name:em*", EM_ALL, []),
    ("interface-name:em\\*", ["em\\", "em\\*", "em\\1", "em\\11", "em\\2"], []),
    ("interface-name:~em\\*", ["em\\", "em\\*", "em\\1", "em\\11", "em\\2"], []),
    ("interface-name:=em*", ["em*"], []),
    ("interface-name:em*,except:interface-name:em1*",
     ["em", "em*", "em\\", "em\\*", "em\\1", "em\\11", "em\\2", "em2", "em3"], ["em1", "em11"]),
    ("interface-name:em*,except:interface-name:=em*", [n for n in EM_ALL if n != "em*"], ["em*"]),
    ("aa,bb,cc\\,dd,e,,", ["aa", "bb", "cc,dd", "e"], []),
    ("interface-name:em\\;1,em\\,2,\\,,\\\\,,em\\\\x", ["em;1", "em,2", ",", "\\", "em\\x"], []),
])
def test_match_specs_nm_vectors(spec, matches, neg_matches):
    specs = nm.split_specs(spec)
    for name in matches:
        assert nm.match_specs(specs, name) == nm.MATCH, name
        assert nm.match_specs(specs[::-1], name) == nm.MATCH, name
    for name in neg_matches:
        assert nm.match_specs(specs, name) == nm.NEG_MATCH, name
    for name in NM_NO_MATCH_DEFAULT:
        if name not in matches and name not in neg_matches:
            assert nm.match_specs(specs, name) == nm.NO_MATCH, name


def test_except_only_lists_match_everything_else():
    assert nm.match_specs(["except:*"], "a") == nm.NEG_MATCH
    specs = ["except:interface-name:em*"]
    for name in ("", "eth", "eth1", "e1"):
        assert nm.match_specs(specs, name) == nm.MATCH
    for name in EM_ALL:
        assert nm.match_specs(specs, name) == nm.NEG_MATCH
    # after except: a spec must be qualified
    assert nm.match_specs(["*", "except:eth0"], "eth0") == nm.MATCH


@pytest.mark.parametrize(("spec", "matches", "no_matches"), [
    ("driver:DRV", [("DRV", None), ("DRV", "1.6")], [("DR", None), ("DR*", None)]),
    ("driver:DRV//", [("DRV/", None)], [("DRV/", "1.6"), ("DR", None), ("DR*", None)]),
    ("driver:DRV//*", [("DRV/", None), ("DRV/", "1.6")], [("DR", None), ("DR*", None)]),
    ("driver:DRV//1.5*", [("DRV/", "1.5"), ("DRV/", "1.5.2")], [("DRV/", None), ("DRV/", "1.6"), ("DR", None)]),
])
def test_driver_specs_nm_vectors(spec, matches, no_matches):
    specs = nm.split_specs(spec)
    for driver, version in matches:
        assert nm.match_specs(specs, "x", driver=driver, driver_version=version) == nm.MATCH
    for driver, version in no_matches:
        assert nm.match_specs(specs, "x", driver=driver, driver_version=version) == nm.NO_MATCH


def test_mac_type_and_case_insensitive_tags():
    specs = ["MAC:00:22:68:1C:59:B1", "Type:vxlan"]
    assert nm.match_specs(specs, "eth0", mac="00:22:68:1c:59:b1") == nm.MATCH
    assert nm.match_specs(specs, "eth0", mac="00:22:68:1c:59:b2") == nm.NO_MATCH
    assert nm.match_specs(specs, "vxlan.calico", dev_type="vxlan") == nm.MATCH
    # an unqualified spec is an exact name or a MAC address, never a glob
    assert nm.match_specs(["cali*"], "cali1234") == nm.NO_MATCH
    assert nm.match_specs(["00:22:68:1c:59:b1"], "eth0", mac="00-22-68-1C-59-B1") == nm.MATCH


# --- key-file syntax ---------------------------------------------------------------------------


def test_parse_keyfile_merges_repeated_groups_and_keeps_repeated_keys():
    text = ("# comment\n\n[keyfile]\n  unmanaged-devices =  interface-name:a \r\n[main]\ndhcp=internal\n"
            "[keyfile]\nunmanaged-devices+=x\nname[de]=ignored\nunmanaged-devices+=y\n")
    assert nm.parse_keyfile(text) == {
        "keyfile": [("unmanaged-devices", "interface-name:a "), ("unmanaged-devices+", "x"),
                    ("unmanaged-devices+", "y")],
        "main": [("dhcp", "internal")],
    }


@pytest.mark.parametrize("text", [
    "unmanaged-devices=x\n",          # no group yet
    "[keyfile]\ngarbage\n",
    "[keyfile] trailing\n",
    "[keyfile]\n=value\n",
    "[key[file]\na=b\n",
])
def test_parse_keyfile_rejects_what_glib_rejects(text):
    with pytest.raises(nm.KeyfileError):
        nm.parse_keyfile(text)


# --- discovery ---------------------------------------------------------------------------------


def test_discover_order_and_shadowing(tmp_path):
    root = make_tree(tmp_path, {
        "/usr/lib/NetworkManager/conf.d/b.conf": "",
        "/usr/lib/NetworkManager/conf.d/calico.conf": "",
        "/usr/lib/NetworkManager/conf.d/z.conf": "",
        "/run/NetworkManager/conf.d/a.conf": "",
        "/run/NetworkManager/conf.d/z.conf": "",
        "/etc/NetworkManager/NetworkManager.conf": "",
        "/etc/NetworkManager/conf.d/calico.conf": "",
        "/etc/NetworkManager/conf.d/99-x.conf": "",
        "/etc/NetworkManager/conf.d/notes.txt": "",
        "/etc/NetworkManager/conf.d/old.conf.bak": "",
    })
    found = nm.discover(root)
    assert [(f["path"], f["kind"]) for f in found["files"]] == [
        ("/usr/lib/NetworkManager/conf.d/b.conf", "system"),
        ("/run/NetworkManager/conf.d/a.conf", "run"),
        ("/run/NetworkManager/conf.d/z.conf", "run"),
        ("/etc/NetworkManager/NetworkManager.conf", "main"),
        ("/etc/NetworkManager/conf.d/99-x.conf", "etc"),
        ("/etc/NetworkManager/conf.d/calico.conf", "etc"),
    ]
    assert found["shadowed"] == ["/usr/lib/NetworkManager/conf.d/calico.conf", "/usr/lib/NetworkManager/conf.d/z.conf"]
    assert found["intern"] is None


def test_discover_prefers_old_main_file_and_honours_command_line_paths(tmp_path):
    root = make_tree(tmp_path, {
        "/etc/NetworkManager/NetworkManager.conf": "",
        "/etc/NetworkManager/nm-system-settings.conf": "",
        "/srv/nm/main.conf": "",
        "/srv/nm/conf.d/a.conf": "",
        "/srv/nm/lib/a.conf": "",
        "/srv/nm/lib/b.conf": "",
    })
    assert [f["path"] for f in nm.discover(root)["files"]] == ["/etc/NetworkManager/nm-system-settings.conf"]
    found = nm.discover(root, main_file="/srv/nm/main.conf", config_dir="/srv/nm/conf.d",
                        system_config_dir="/srv/nm/lib")
    assert [f["path"] for f in found["files"]] == ["/srv/nm/lib/b.conf", "/srv/nm/main.conf", "/srv/nm/conf.d/a.conf"]
    missing = nm.discover(root, main_file="/srv/nm/absent.conf")
    assert missing["files"][0]["path"] == "/srv/nm/absent.conf"
    assert missing["files"][0]["error"].startswith("FileNotFoundError")


def test_run_dir_is_skipped_when_it_is_the_config_dir(tmp_path):
    root = make_tree(tmp_path, {"/run/NetworkManager/conf.d/a.conf": ""})
    found = nm.discover(root, config_dir="/run/NetworkManager/conf.d")
    assert [(f["path"], f["kind"]) for f in found["files"]] == [("/run/NetworkManager/conf.d/a.conf", "etc")]


# --- merge -------------------------------------------------------------------------------------


def test_seed_000_fix_in_the_main_file_leaves_vxlan_and_wireguard_managed(tmp_path):
    cfg = merged(tmp_path, {"/etc/NetworkManager/NetworkManager.conf":
                            "[main]\nplugins=ifupdown,keyfile\n\n[keyfile]\n"
                            "unmanaged-devices=interface-name:cali*;interface-name:tunl*\n"})
    assert cfg["unmanaged_devices"] == ["interface-name:cali*", "interface-name:tunl*"]
    assert cfg["history"] == [{"file": "/etc/NetworkManager/NetworkManager.conf", "op": "=",
                               "value": ["interface-name:cali*", "interface-name:tunl*"]}]
    status = nm.calico_devices(cfg)
    assert status["calico_devices"] == {"cali*": True, "tunl*": True, "vxlan.calico": False,
                                        "vxlan-v6.calico": False, "wireguard.cali": False, "wg-v6.cali": False}
    assert status["managed_calico_devices"] == ["vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali"]
    assert status["undetermined"] == []


def test_append_replace_remove_and_history(tmp_path):
    cfg = merged(tmp_path, {
        "/usr/lib/NetworkManager/conf.d/00-lib.conf": "[keyfile]\nunmanaged-devices+=interface-name:lib0\n",
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:eth9\n",
        "/etc/NetworkManager/conf.d/calico.conf":
            "[keyfile]\nunmanaged-devices+=" + CALICO_LINE + ";interface-name:eth9\n",
        "/etc/NetworkManager/conf.d/rke2-canal.conf": "[keyfile]\nunmanaged-devices-=interface-name:tunl*\n",
    })
    assert cfg["unmanaged_devices"] == [
        "interface-name:eth9", "interface-name:cali*", "interface-name:vxlan.calico", "interface-name:vxlan-v6.calico",
        "interface-name:wireguard.cali", "interface-name:wg-v6.cali"]
    assert [(h["file"].rsplit("/", 1)[1], h["op"]) for h in cfg["history"]] == [
        ("00-lib.conf", "+="), ("NetworkManager.conf", "="), ("calico.conf", "+="), ("rke2-canal.conf", "-=")]
    assert nm.calico_devices(cfg)["managed_calico_devices"] == ["tunl*"]


def test_later_equals_replaces_the_calico_line(tmp_path):
    cfg = merged(tmp_path, {
        "/etc/NetworkManager/conf.d/calico.conf": "[keyfile]\nunmanaged-devices=" + CALICO_LINE + "\n",
        "/etc/NetworkManager/conf.d/zz-unmanaged.conf": "[keyfile]\nunmanaged-devices=interface-name:eth1\n",
    })
    assert cfg["unmanaged_devices"] == ["interface-name:eth1"]
    assert nm.calico_devices(cfg)["managed_calico_devices"] == list(nm.CALICO_DEVICES)


def test_repeated_keys_use_their_last_value_at_every_position(tmp_path):
    # checked against NetworkManager --print-config: p is lost, q is removed again
    cfg = merged(tmp_path, {"/etc/NetworkManager/conf.d/a.conf":
                            "[keyfile]\nunmanaged-devices+=interface-name:p\nunmanaged-devices=interface-name:q\n"
                            "[main]\ndhcp=internal\n[keyfile]\nunmanaged-devices+=interface-name:r\n"
                            "unmanaged-devices-=interface-name:q\n"})
    assert cfg["unmanaged_devices"] == ["interface-name:r"]


def test_config_enable(tmp_path):
    files = {
        "/etc/NetworkManager/conf.d/a.conf": "[keyfile]\nunmanaged-devices=interface-name:a\n",
        "/etc/NetworkManager/conf.d/b.conf": "[.config]\nenable=false\n[keyfile]\nunmanaged-devices=interface-name:b\n",
        "/etc/NetworkManager/conf.d/c.conf": "[.config]\nenable=nm-version-min:1.40\n[keyfile]\nunmanaged-devices+=c\n",
        "/etc/NetworkManager/conf.d/d.conf": "[.config]\nenable=nm-version-max:1.40\n[keyfile]\nunmanaged-devices+=d\n",
        "/etc/NetworkManager/conf.d/e.conf":
            "[.config]\nenable=except:nm-version:1.42\n[keyfile]\nunmanaged-devices+=e\n",
        "/etc/NetworkManager/conf.d/f.conf": "[.config]\nenable=env:TAG1\n[keyfile]\nunmanaged-devices+=f\n",
    }
    cfg = merged(tmp_path, files, nm_version="1.42.4", env_tag="TAG1")
    assert cfg["unmanaged_devices"] == ["interface-name:a", "c", "f"]
    assert [p.rsplit("/", 1)[1] for p in cfg["disabled"]] == ["b.conf", "d.conf", "e.conf"]
    unknown = nm.merge(nm.discover(str(tmp_path)), env_tag="TAG1")
    assert unknown["unmanaged_devices"] == ["interface-name:a", "c", "d", "e", "f"]
    assert [p.rsplit("/", 1)[1] for p in unknown["assumed_enabled"]] == ["c.conf", "d.conf", "e.conf"]


def test_intern_set_applies_only_while_was_matches(tmp_path):
    files = {
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:a\n",
        "/var/lib/NetworkManager/NetworkManager-intern.conf":
            "[keyfile]\n.set.unmanaged-devices=interface-name:zz\n.was.unmanaged-devices=interface-name:a\n",
    }
    cfg = merged(tmp_path, files)
    assert cfg["unmanaged_devices"] == ["interface-name:zz"]
    assert cfg["history"][-1] == {"file": "/var/lib/NetworkManager/NetworkManager-intern.conf", "op": "=",
                                  "value": ["interface-name:zz"]}
    make_tree(tmp_path, {"/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:b\n"})
    assert nm.merge(nm.discover(str(tmp_path)))["unmanaged_devices"] == ["interface-name:b"]
    make_tree(tmp_path, {"/var/lib/NetworkManager/NetworkManager-intern.conf":
                         "[keyfile]\n.was.unmanaged-devices=interface-name:b\n"})
    assert nm.merge(nm.discover(str(tmp_path)))["unmanaged_devices"] == []


def test_errors_and_misplaced_key_are_reported(tmp_path):
    cfg = merged(tmp_path, {
        "/etc/NetworkManager/conf.d/a.conf": "[main]\nunmanaged-devices=interface-name:cali*\n",
        "/etc/NetworkManager/conf.d/b.conf": "not a key file\n",
    })
    assert cfg["unmanaged_devices"] == []
    assert cfg["errors"] == [{"file": "/etc/NetworkManager/conf.d/b.conf",
                              "error": "line 1: 'not a key file' is not a key-value pair, group or comment"}]
    assert cfg["warnings"] == ["/etc/NetworkManager/conf.d/a.conf: unmanaged-devices in [main] has no effect "
                               "(it belongs in [keyfile])"]


# --- [device*] sections -----------------------------------------------------------------------


def test_device_sections_lookup_order_and_effect(tmp_path):
    cfg = merged(tmp_path, {
        "/usr/lib/NetworkManager/conf.d/l.conf": "[device-l]\nmatch-device=*\nstop-match=yes\n",
        "/etc/NetworkManager/conf.d/a.conf": "[device-b]\nmatch-device=interface-name:x*\nmanaged=0\n"
                                             "[device-a]\nmatch-device=interface-name:y\nmanaged=1\n"
                                             "[device]\nmanaged=1\n",
        "/etc/NetworkManager/conf.d/b.conf": "[device-c]\nmatch-device=interface-name:cali*\nmanaged=false\n"
                                             "[device-b]\nmatch-device+=interface-name:z\n",
    })
    # the order NetworkManager --print-config shows (highest priority first, literal [device] last)
    assert [(s["group"], s["match_device"], s["managed"], s["stop_match"]) for s in cfg["device_sections"]] == [
        ("device-c", ["interface-name:cali*"], "false", False),
        ("device-b", ["interface-name:x*", "interface-name:z"], "0", False),
        ("device-a", ["interface-name:y"], "1", False),
        ("device-l", ["*"], None, True),
        ("device", None, "1", False),
    ]
    assert nm.device_unmanaged(cfg, "cali0123456789a")
    assert nm.device_unmanaged(cfg, "x1") and nm.device_unmanaged(cfg, "z")
    # device-l matches everything and stops the search: managed
    assert not nm.device_unmanaged(cfg, "eth0")
    status = nm.calico_devices(cfg)
    assert status["calico_devices"]["cali*"] is True
    assert status["managed_calico_devices"] == ["tunl*", "vxlan.calico", "vxlan-v6.calico", "wireguard.cali",
                                                "wg-v6.cali"]


def test_keyfile_unmanaged_devices_wins_over_device_managed_yes():
    sections = [{"group": "device", "match_device": None, "managed": "yes", "stop_match": False}]
    cfg = config(["interface-name:cali*"], sections)
    assert nm.device_unmanaged(cfg, "cali1")
    assert not nm.device_unmanaged(cfg, "tunl0")


# --- patterns ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("unmanaged", "examples"), [
    (["*"], {}),
    (["interface-name:*"], {}),
    (["except:interface-name:eth0"], {}),
    (["interface-name:c*i*", "interface-name:t?nl*", "interface-name:~*.cal*", "interface-name:w*"], {}),
    (nm.split_specs(CALICO_LINE), {}),
    (["interface-name:cali?*", "interface-name:tunl*"], {"cali*": "cali"}),
    (["*", "except:interface-name:cali1*"], {"cali*": "cali1"}),
    (["interface-name:=cali*", "interface-name:=tunl*"], {"cali*": "cali", "tunl*": "tunl"}),
    (["cali*", "tunl0"], {"cali*": "cali", "tunl*": "tunl"}),
    # only names longer than IFNAMSIZ-1 are excluded, so no real device is
    (["interface-name:cali*", "interface-name:tunl*", "except:interface-name:cali????????????"], {}),
])
def test_patterns_exact_for_name_specs(unmanaged, examples):
    cfg = config(unmanaged)
    status = nm.calico_devices(cfg, patterns=["cali*", "tunl*"])
    assert status["managed_examples"] == examples
    assert status["undetermined"] == []
    for pattern, name in examples.items():
        assert nm.glob_match(pattern, name)
        assert not nm.device_unmanaged(cfg, name)


def test_pattern_verdict_on_unknown_attributes_is_undetermined():
    cfg = config(["interface-name:*", "except:mac:00:11:22:33:44:55"])
    status = nm.calico_devices(cfg)
    assert status["managed_calico_devices"] == list(nm.CALICO_DEVICES)
    assert status["undetermined"] == list(nm.CALICO_DEVICES)
    assert nm.device_unmanaged(cfg, "cali1", mac="ee:ee:ee:ee:ee:ee")
    assert not nm.device_unmanaged(cfg, "cali1")
    # a positive spec on an unknown attribute never protects a pattern
    assert nm.calico_devices(config(["type:veth"]), patterns=["cali*"])["undetermined"] == ["cali*"]


def test_glob_is_g_pattern_match_simple():
    assert nm.glob_match("cali*", "cali")
    assert nm.glob_match("c?li*", "cxli123")
    assert not nm.glob_match("cali?", "cali")
    assert not nm.glob_match("eth[0-9]", "eth0")
    assert nm.glob_match("eth[0-9]", "eth[0-9]")


# --- enforcement helpers ---------------------------------------------------------------------


def test_render_dropin_is_the_documented_line_and_merges_as_append(tmp_path):
    text = nm.render_dropin()
    assert text == "[keyfile]\nunmanaged-devices+=" + CALICO_LINE + "\n"
    assert nm.render_dropin(["cali*"], extra=["mac:00:11:22:33:44:55", "interface-name:a;b"]) == (
        "[keyfile]\nunmanaged-devices+=interface-name:cali*;mac:00:11:22:33:44:55;interface-name:a\\;b\n")
    with pytest.raises(ValueError, match="invalid device spec"):
        nm.render_dropin(["bad\nname"])
    cfg = merged(tmp_path, {
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:eth9\n",
        "/etc/NetworkManager/conf.d/calico.conf": text,
    })
    assert cfg["unmanaged_devices"] == ["interface-name:eth9"] + nm.split_specs(CALICO_LINE)
    assert nm.calico_devices(cfg)["managed_calico_devices"] == []


def test_later_overrides_and_with_dropin(tmp_path):
    found = nm.discover(make_tree(tmp_path, {
        "/usr/lib/NetworkManager/conf.d/calico.conf": "[keyfile]\nunmanaged-devices=interface-name:lib\n",
        "/etc/NetworkManager/NetworkManager.conf": "[keyfile]\nunmanaged-devices=interface-name:eth0\n",
        "/etc/NetworkManager/conf.d/10-early.conf": "[keyfile]\nunmanaged-devices=interface-name:early\n",
        "/etc/NetworkManager/conf.d/rke2-canal.conf": "[keyfile]\nunmanaged-devices=interface-name:flannel*\n",
        "/etc/NetworkManager/conf.d/x-minus.conf": "[keyfile]\nunmanaged-devices-=interface-name:tunl*\n",
        "/etc/NetworkManager/conf.d/y-minus.conf": "[keyfile]\nunmanaged-devices-=interface-name:eth0\n",
        "/etc/NetworkManager/conf.d/z-off.conf": "[.config]\nenable=no\n[keyfile]\nunmanaged-devices=\n",
    }))
    path = "/etc/NetworkManager/conf.d/calico.conf"
    specs = nm.split_specs(CALICO_LINE)
    assert nm.later_overrides(found, path, specs) == [
        {"file": "/etc/NetworkManager/conf.d/rke2-canal.conf", "op": "=", "value": ["interface-name:flannel*"]},
        {"file": "/etc/NetworkManager/conf.d/x-minus.conf", "op": "-=", "value": ["interface-name:tunl*"]},
    ]
    # a drop-in sorting after them is overridden by nothing
    assert nm.later_overrides(found, "/etc/NetworkManager/conf.d/zz-calico.conf", specs) == []
    after = nm.with_dropin(found, path, nm.render_dropin())
    assert "/usr/lib/NetworkManager/conf.d/calico.conf" in after["shadowed"]
    assert nm.merge(after)["unmanaged_devices"] == ["interface-name:flannel*"]
    late = nm.merge(nm.with_dropin(found, "/etc/NetworkManager/conf.d/zz-calico.conf", nm.render_dropin()))
    assert nm.calico_devices(late)["managed_calico_devices"] == []
    with pytest.raises(ValueError, match="not a file NetworkManager reads"):
        nm.with_dropin(found, "/etc/NetworkManager/calico.conf", "")


# --- live state and the fact ----------------------------------------------------------------


def test_parse_nmcli_devices_terse_escapes():
    text = ("eth0:ethernet:connected\ncali1a2b3c4d5e6:veth:unmanaged\nweird\\:name:dummy:unmanaged\n"
            "lo:loopback:unmanaged\n")
    assert nm.parse_nmcli_devices(text) == [
        {"device": "eth0", "type": "ethernet", "state": "connected"},
        {"device": "cali1a2b3c4d5e6", "type": "veth", "state": "unmanaged"},
        {"device": "weird:name", "type": "dummy", "state": "unmanaged"},
        {"device": "lo", "type": "loopback", "state": "unmanaged"},
    ]


def test_network_manager_facts_shape(tmp_path):
    found = nm.discover(make_tree(tmp_path, {"/etc/NetworkManager/conf.d/calico.conf": nm.render_dropin()}))
    facts = nm.network_manager_facts(found, installed=True, running=False)
    assert facts == {
        "installed": True, "running": False,
        "files": ["/etc/NetworkManager/conf.d/calico.conf"], "shadowed": [], "disabled": [], "errors": [],
        "warnings": [], "unmanaged_devices": nm.split_specs(CALICO_LINE),
        "history": [{"file": "/etc/NetworkManager/conf.d/calico.conf", "op": "+=",
                     "value": nm.split_specs(CALICO_LINE)}],
        "devices": None,
        "calico_devices": dict.fromkeys(nm.CALICO_DEVICES, True),
        "managed_calico_devices": [], "managed_examples": {}, "undetermined": [],
    }


# --- is NetworkManager running: what it answers, never a process name ---------------------------

def _nmcli(rc, out):
    calls = []

    def run(argv):
        calls.append(argv)
        return rc, out, ""
    return run, calls


def test_running_is_what_nmcli_gets_from_networkmanager():
    run, calls = _nmcli(0, "running\n")
    assert nm.running(run, "/usr/bin/nmcli") is True
    assert calls == [["/usr/bin/nmcli", "-t", "-f", "RUNNING", "general"]]
    # nmcli's answer when the daemon is not on D-Bus (rc 8), whatever processes are called.
    assert nm.running(_nmcli(8, "Error: NetworkManager is not running.\n")[0], "/usr/bin/nmcli") is False
    assert nm.running(_nmcli(0, "starting\n")[0], "/usr/bin/nmcli") is False


def test_without_nmcli_the_system_bus_says_whether_its_name_is_owned():
    run, calls = _nmcli(0, "b true\n")
    assert nm.running(run, None, "/usr/bin/busctl") is True
    assert calls == [["/usr/bin/busctl", "--system", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                      "org.freedesktop.DBus", "NameHasOwner", "s", "org.freedesktop.NetworkManager"]]
    assert nm.running(_nmcli(0, "b false\n")[0], None, "/usr/bin/busctl") is False
    reply = ("method return time=1 sender=org.freedesktop.DBus -> destination=:1.9 serial=3 reply_serial=2\n"
             "   boolean true\n")
    assert nm.running(_nmcli(0, reply)[0], None, None, "/usr/bin/dbus-send") is True
    assert nm.running(_nmcli(0, reply.replace("true", "false"))[0], None, None, "/usr/bin/dbus-send") is False


def test_without_nmcli_the_pid_file_must_name_a_live_networkmanager(tmp_path):
    pid_file, proc = tmp_path / "NetworkManager.pid", tmp_path / "proc"
    never = _nmcli(0, "running")[0]
    assert nm.running(never, None, proc=str(proc), pid_file=str(pid_file)) is False  # no pid file
    pid_file.write_text("4242\n")
    assert nm.running(never, None, proc=str(proc), pid_file=str(pid_file)) is False  # stale: no such process
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "comm").write_text("sshd\n")
    assert nm.running(never, None, proc=str(proc), pid_file=str(pid_file)) is False  # pid reused by another
    (proc / "4242" / "comm").write_text("NetworkManager\n")
    assert nm.running(never, None, proc=str(proc), pid_file=str(pid_file)) is True
