"""Roles hold no logic: a decision is a filter plugin over a tested function. The role and playbook
files keep one-line look-ups - no Jinja program (``{% for``, ``{% set``) anywhere under roles/ or
playbooks/ -, every netdoctor.calico filter they use exists and is documented, and every role entry
point a task imports has argument specs (so Ansible validates its inputs before anything runs)."""

import re
from pathlib import Path

import pytest
import yaml
from ansible_collections.netdoctor.calico.plugins.filter import (
    audit,
    autodetection,
    hosts,
    inputs,
    preflight,
    repair,
    trace,
)

ROOT = Path(__file__).resolve().parents[2]
ROLE_FILES = sorted(p for top in ("roles", "playbooks") for p in (ROOT / top).rglob("*")
                    if p.is_file() and p.suffix in (".yml", ".yaml", ".j2", ".json", ".sh", ".py", ".cfg", ""))
JINJA_PROGRAM = re.compile(r"\{%-?\s*(for|set)\b")
FILTER_USE = re.compile(r"netdoctor\.calico\.([a-z_][a-z0-9_]*)")
FILTERS = {name: func for module in (audit, autodetection, hosts, inputs, preflight, repair, trace)
           for name, func in module.FilterModule().filters().items()}


def rel(path):
    return str(path.relative_to(ROOT))


def test_there_are_role_files():
    assert any(rel(p).startswith("roles/audit/") for p in ROLE_FILES)
    assert any(rel(p).startswith("playbooks/") for p in ROLE_FILES)


@pytest.mark.parametrize("path", ROLE_FILES, ids=rel)
def test_no_jinja_program(path):
    text = path.read_text(encoding="utf-8")
    found = [f"{rel(path)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group()}" for m in JINJA_PROGRAM.finditer(text)]
    assert not found, "a decision belongs in a filter plugin over a tested function: " + "; ".join(found)


def test_every_collection_filter_used_exists_and_is_documented():
    used = {name for path in ROLE_FILES for name in FILTER_USE.findall(path.read_text(encoding="utf-8"))}
    modules = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")}
    roles = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}
    playbooks = {p.stem for p in (ROOT / "playbooks").glob("*.yml")}
    filters = used - modules - roles - playbooks
    assert filters, "no netdoctor.calico filter used by the roles?"
    assert sorted(filters - set(FILTERS)) == []
    for name in sorted(filters):
        doc = yaml.safe_load((ROOT / "plugins" / "filter" / f"{name}.yml").read_text(encoding="utf-8"))
        assert doc["DOCUMENTATION"]["name"] == name
        assert doc["EXAMPLES"] and doc["RETURN"]["_value"]["description"], name


def test_every_filter_has_a_documentation_file():
    assert sorted(name for name in FILTERS if not (ROOT / "plugins" / "filter" / f"{name}.yml").exists()) == []


def _role_imports(node):
    """(role, tasks_from) of every include_role/import_role in a parsed task file or playbook."""
    if isinstance(node, dict):
        for key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
            if isinstance(node.get(key), dict):
                yield node[key]["name"].rsplit(".", 1)[-1], node[key].get("tasks_from", "main")
        for value in node.values():
            yield from _role_imports(value)
    elif isinstance(node, list):
        for item in node:
            yield from _role_imports(item)


def test_every_entry_point_used_has_argument_specs():
    used = {imp for path in ROLE_FILES if path.suffix == ".yml"
            for imp in _role_imports(yaml.safe_load(path.read_text(encoding="utf-8")))}
    assert ("repair", "plan") in used and ("preflight", "sysctl") in used
    for role, entry in sorted(used):
        # Ansible looks the entry point up by tasks_from as written: "plan.yml" would match no spec, and skip it.
        assert not entry.endswith((".yml", ".yaml")), f"tasks_from: {entry} of role {role} is validated by no spec"
        specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
        spec = specs["argument_specs"].get(entry)
        assert spec, f"role {role} has no argument specs for entry point {entry}"
        assert spec.get("short_description") and spec.get("description"), (role, entry)
    for role in ("audit", "preflight", "repair"):
        specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
        assert "main" in specs["argument_specs"], role
        for entry, spec in specs["argument_specs"].items():
            assert spec.get("short_description") and spec.get("description"), (role, entry)


def test_option_markup_names_only_options_of_the_entry_point():
    """antsibull-docs reads O(x) as option x of this entry point: anything else is wrong markup."""
    bad = []
    for specs_path in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        specs = yaml.safe_load(specs_path.read_text(encoding="utf-8"))["argument_specs"]
        for entry, spec in specs.items():
            options = set(spec.get("options") or {})
            for ref in re.findall(r"O\(([^)#]+)\)", yaml.safe_dump(spec, width=10_000)):
                name = re.split(r"[=\[.]", ref, maxsplit=1)[0]
                if name not in options:
                    bad.append(f"{rel(specs_path)} {entry}: O({ref})")
    assert bad == []
