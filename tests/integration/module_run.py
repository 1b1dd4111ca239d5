"""One run of one of the collection's modules through real Ansible (`ansible localhost -c local -m ...`),
with the repository's ansible.cfg; the task's result as Ansible's json callback reports it."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")


def run_module(module, args, *, check=False, diff=False, prefix=(), env=None):
    """`prefix` runs Ansible under another command (e.g. `ip netns exec NS`); the exit code must agree with `failed`."""
    cmd = [*prefix, ANSIBLE, "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={sys.executable}", "-m", "netdoctor.calico." + module,
           *(["-a", json.dumps(args)] if args else []), *(["--check"] if check else []), *(["--diff"] if diff else [])]
    full_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
                    ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1", **(env or {}))
    done = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=REPO, timeout=180, check=False)
    try:
        result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no result from ansible (rc {done.returncode}):\n{done.stdout}\n{done.stderr}") from None
    assert (done.returncode == 0) == (not result.get("failed")), done.stderr
    return result
