"""The two rooms (DESIGN §3): what runs on a node imports only what a node has.

plugins/module_utils/ and plugins/modules/ are shipped to the nodes in each module's AnsiballZ
payload: they may import the standard library, ansible.module_utils and the collection's own
module_utils; pyroute2 (required on nodes) and PyYAML (an extra check where present) only inside
``try: ... except ImportError``, so a node without them gets a message, not a traceback.
Controller code (plugin_utils, action and filter plugins, ansible.plugins, ansible.errors,
jmespath, ...) never goes to a node."""

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_FILES = sorted([*(ROOT / "plugins" / "module_utils").glob("*.py"), *(ROOT / "plugins" / "modules").glob("*.py")])
NODE_OPTIONAL = ("pyroute2", "yaml")
OWN = "ansible_collections.netdoctor.calico.plugins.module_utils"


def _guarded(tree):
    """The import nodes inside a ``try`` whose handlers catch ImportError."""
    out = set()
    for node in ast.walk(tree):
        catches = isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers)
        if catches:
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt)
                       if isinstance(n, (ast.Import, ast.ImportFrom)))
    return out


def imports(path):
    """(module name, guarded by except ImportError) for every import of the file, at any depth
    (AnsiballZ packs function-level imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    guarded = _guarded(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, id(node) in guarded) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level + (node.module or "")) if node.level else node.module, id(node) in guarded


def allowed_on_a_node(name, guarded=False):
    top = name.split(".", 1)[0]
    return (top in sys.stdlib_module_names or top == "__future__" or (guarded and top in NODE_OPTIONAL)
            or name == "ansible.module_utils" or name.startswith("ansible.module_utils.")
            or name == OWN or name.startswith(OWN + "."))


def test_the_node_files_are_found():
    names = {p.name for p in NODE_FILES}
    assert {"_contract.py", "_netlink.py", "calico_routes.py", "calico_node_facts.py"} <= names


@pytest.mark.parametrize("path", NODE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_node_code_imports_only_what_a_node_has(path):
    bad = sorted({name for name, guarded in imports(path) if not allowed_on_a_node(name, guarded)})
    assert bad == [], f"{path.relative_to(ROOT)} imports controller-only or foreign code: {bad}"


@pytest.mark.parametrize("name", [
    "ansible_collections.netdoctor.calico.plugins.plugin_utils._fleet", "ansible.plugins.action", "ansible.errors",
    "jmespath", "ansible_collections.netdoctor.calico.plugins.filter.trace", ".._fleet"])
def test_the_check_would_catch_a_controller_import(name):
    assert not allowed_on_a_node(name) and not allowed_on_a_node(name, guarded=True)


def test_optional_libraries_must_be_guarded(tmp_path):
    bare = tmp_path / "bare.py"
    bare.write_text("import pyroute2\n")
    guarded = tmp_path / "guarded.py"
    guarded.write_text("try:\n    import yaml\nexcept ImportError:\n    yaml = None\n")
    assert [allowed_on_a_node(n, g) for n, g in imports(bare)] == [False]
    assert [allowed_on_a_node(n, g) for n, g in imports(guarded)] == [True]


# Python 3.9+ spellings vermin cannot see on a value whose type it does not know.
NEWER_METHODS = {"removeprefix": "3.9", "removesuffix": "3.9", "bit_count": "3.10", "is_relative_to": "3.9"}


@pytest.mark.parametrize("path", NODE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_node_code_calls_no_method_newer_than_python_3_8(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = sorted({f"{node.attr} (Python {NEWER_METHODS[node.attr]})" for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and node.attr in NEWER_METHODS})
    found += sorted({"zip(strict=) (Python 3.10)" for node in ast.walk(tree)
                     if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "zip"
                     and any(k.arg == "strict" for k in node.keywords)})
    assert found == [], f"{path.relative_to(ROOT)} needs a newer Python than the nodes have: {found}"
