"""Runs a real ansible-playbook on the controller over local hosts whose calico_node facts a tiny
test module loads from JSON files: how the fleet_audit tests drive the action plugin end to end."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[4]
# The collections tree the collection is in: ansible-test's copy, else the checkout's .collections link.
COLLECTIONS = ROOT.parents[2] if ROOT.parents[1].name == "ansible_collections" else ROOT / ".collections"
FACTS_MODULE = '''#!/usr/bin/python
import json
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True}}, supports_check_mode=True)
    with open(module.params["path"], encoding="utf-8") as handle:
        module.exit_json(changed=False, ansible_facts={"calico_node": json.load(handle)})


if __name__ == "__main__":
    main()
'''


def run_playbook(out, playbook, facts, hosts, extra_vars=""):
    """Write the facts, the test module, the playbook and an inventory of ``hosts`` (inventory
    lines) into ``out``; run the play with ``out`` and ``facts_dir`` set. Returns
    ``(process, results)`` where results is the JSON the play wrote to ``out/results.json``."""
    facts_dir = out / "facts"
    facts_dir.mkdir()
    for host, fact in facts.items():
        (facts_dir / f"{host}.json").write_text(json.dumps(fact), encoding="utf-8")
    (out / "library").mkdir()
    (out / "library" / "test_calico_facts.py").write_text(FACTS_MODULE, encoding="utf-8")
    (out / "playbook.yml").write_text(textwrap.dedent(playbook), encoding="utf-8")
    inventory = ["[fleet]", *hosts, "[fleet:vars]", "ansible_connection=local",
                 f"ansible_python_interpreter={sys.executable}"]
    (out / "inventory.ini").write_text("\n".join(inventory) + "\n", encoding="utf-8")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_LOCAL_TEMP": str(out / "tmp")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory.ini", "playbook.yml",
         "-e", f"out={out} facts_dir={facts_dir} {extra_vars}"],
        cwd=out, env=env, capture_output=True, text=True, check=False, timeout=300)
    results = out / "results.json"
    assert results.exists(), proc.stdout + proc.stderr
    return proc, json.loads(results.read_text(encoding="utf-8"))
