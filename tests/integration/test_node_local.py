"""The provisioning hook `netdoctor.calico.node_local` (docs/hooks.md) run by a node on itself.

Inside a lab node (its own network, mount and UTS namespaces, /etc an overlay of its own; the rest of
the filesystem is the host's, so this checkout's venv and collections are there): `ansible-playbook
netdoctor.calico.node_local` with ANSIBLE_CONFIG pointing at this checkout, twice (the second run
changes nothing), and the ansible-pull form of docs/hooks.md against a wrapper repository in a
temporary git directory. Nothing may change in the host's /etc.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
pytestmark = pytest.mark.lab
# What the preflight role may write; the host's copies must not change.
HOST_FILES = ("/etc/NetworkManager/conf.d/calico.conf", "/etc/sysctl.d/90-calico.conf", "/etc/hosts",
              "/etc/modules-load.d/calico.conf")
WRAPPER = """---
- name: Prepare this node for Calico
  ansible.builtin.import_playbook: netdoctor.calico.node_local
  vars:
    preflight_autodetection_method: interface=^eth0$
    preflight_encapsulation: none
"""


def host_state():
    return {path: Path(path).read_bytes() if Path(path).exists() else None for path in HOST_FILES}


def recap(output):
    """localhost's PLAY RECAP counters."""
    match = re.search(r"^localhost\s*:\s*(.*)$", output, flags=re.MULTILINE)
    assert match, output
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


def run_on_node(lab, node, *argv, env=(), ok=True):
    """A command in the node, with the environment a boot hook has (root, HOME=/root)."""
    res = lab.exec(node, "env", "HOME=/root", "LANG=C.UTF-8", *env, *argv, check=False)
    assert (res.returncode == 0) == ok, (f"{argv[0]} exited {res.returncode}:\n{res.stdout[-6000:]}\n"
                                         f"{res.stderr[-3000:]}")
    return res.stdout


def test_node_local_hook_on_a_lab_node(lab_factory, tmp_path):
    lab = lab_factory("nlh", mode="bgp", nodes=2)
    before = host_state()
    hook = [str(VENV_BIN / "ansible-playbook"), "netdoctor.calico.node_local"]
    env = (f"ANSIBLE_CONFIG={REPO / 'ansible.cfg'}",)

    # The role's default encapsulation is ipip; this lab routes natively with a 1500-byte pod MTU,
    # which no IPIP tunnel on a 1500-byte NIC can carry: a check fails, and nothing has changed.
    refused = recap(run_on_node(lab, "node1", *hook, env=env, ok=False))
    assert refused["failed"] == 1 and refused["changed"] == 0
    assert host_state() == before

    playbook = [*hook, "-e", "preflight_encapsulation=none"]
    first = run_on_node(lab, "node1", *playbook, env=env)
    counts = recap(first)
    assert counts["failed"] == 0 and counts["unreachable"] == 0, first
    assert "netdoctor.calico.preflight" in first  # the role ran, on the node itself
    # Without calico_intended_ip the hook takes the default route's address: the node's underlay address.
    facts = run_on_node(lab, "node1", str(VENV_BIN / "ansible"), "localhost", "-m", "ansible.builtin.setup",
                        "-a", "gather_subset=!all,!min,network filter=ansible_default_ipv4", "-o", env=env)
    assert re.search(rf'"address": "{re.escape(lab.node("node1")["intended_ip"])}"', facts), facts

    again = recap(run_on_node(lab, "node1", *playbook, env=env))
    assert again["changed"] == 0 and again["failed"] == 0
    assert host_state() == before

    # The ansible-pull form: a wrapper repository whose node_local.yml imports the collection's.
    origin = tmp_path / "calico-hooks"
    origin.mkdir()
    (origin / "node_local.yml").write_text(WRAPPER, encoding="utf-8")
    git = ["git", "-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "node_local.yml"], ["commit", "-q", "-m", "hook"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    pulled = run_on_node(lab, "node2", str(VENV_BIN / "ansible-pull"), "--url", f"file://{origin}",
                         "--directory", str(tmp_path / "checkout"), "node_local.yml",
                         env=(f"ANSIBLE_COLLECTIONS_PATH={REPO / '.collections'}",))
    counts = recap(pulled)
    assert counts["failed"] == 0 and "netdoctor.calico.preflight" in pulled, pulled
    assert host_state() == before
    assert os.path.exists(tmp_path / "checkout" / "node_local.yml")
