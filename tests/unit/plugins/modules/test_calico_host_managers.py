"""calico_host_managers: the plan for nm-cloud-setup, and check mode changing nothing."""

import json

import pytest
from ansible_collections.netdoctor.calico.plugins.modules import calico_host_managers as m

RULES = [{"priority": 30200, "src": "192.0.2.11/32", "table": 30200, "kind": "subnet"},
         {"priority": 30350, "src": None, "table": 254, "kind": "suppress_main"},
         {"priority": 30400, "src": "192.0.2.11/32", "table": 30400, "kind": "default_route"}]


def test_cloud_plan_deletes_exactly_its_rules_and_tables():
    plan = m.cloud_plan(["/etc/systemd/system/timers.target.wants/nm-cloud-setup.timer"], RULES)
    assert plan["rules"] == ["ip rule del priority 30200 from 192.0.2.11/32 table 30200",
                             "ip rule del priority 30350 table 254",
                             "ip rule del priority 30400 from 192.0.2.11/32 table 30400"]
    assert plan["tables"] == ["ip route flush table 30200", "ip route flush table 30400"]


class Exit(Exception):
    pass


class FakeModule:
    check_mode = True
    _diff = True

    def __init__(self, params):
        self.params = {"networkd_foreign": False, "link_mac_policy": False, "nm_cloud_setup": False, "backup": True,
                       **params}
        self.result = None
        self.warnings = []

    def exit_json(self, **kw):
        self.result = kw
        raise Exit

    def warn(self, msg):
        self.warnings.append(msg)

    def atomic_move(self, *a):
        raise AssertionError("check mode must not write")

    backup_local = atomic_move


def test_check_mode_reports_the_diff_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(m, "NETWORKD_DROPIN", str(tmp_path / "networkd.conf.d" / "calico.conf"))
    monkeypatch.setattr(m, "CALICO_LINK", str(tmp_path / "network" / "00-calico.link"))
    module = FakeModule({"networkd_foreign": True, "link_mac_policy": True})
    with pytest.raises(Exit):
        m.HostManagers(module).run()
    assert module.result["changed"] is True and len(module.result["diff"]) == 2
    assert module.result["diff"][0]["after"] == m.NETWORKD_TEXT
    assert set(module.result["files"].values()) == {"created"}
    assert list(tmp_path.iterdir()) == []
    json.dumps(module.result)


def test_unchanged_files_are_not_changes(tmp_path, monkeypatch):
    path = tmp_path / "calico.conf"
    path.write_text(m.NETWORKD_TEXT)
    monkeypatch.setattr(m, "NETWORKD_DROPIN", str(path))
    module = FakeModule({"networkd_foreign": True})
    with pytest.raises(Exit):
        m.HostManagers(module).run()
    assert module.result["changed"] is False and module.result["files"] == {str(path): "unchanged"}
