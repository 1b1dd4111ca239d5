"""write_atomic (plugins/plugin_utils/_files.py), the one way the action plugins write their reports."""

import os

import pytest
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _files


def test_the_file_is_replaced_in_one_rename(tmp_path):
    path = tmp_path / "repair.json"
    path.write_text("old\n", encoding="utf-8")
    before = path.stat().st_ino
    _files.write_atomic(str(path), "new ✓\n", prefix=".test.")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    # A reader that opened the old file keeps reading the old, whole file: a new inode took its name.
    assert path.stat().st_ino != before
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path) == ["repair.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "repair.md"
    path.write_text("old\n", encoding="utf-8")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        _files.write_atomic(str(path), "new\n", prefix=".repair.")
    assert path.read_text(encoding="utf-8") == "old\n"
    assert os.listdir(tmp_path) == ["repair.md"]
