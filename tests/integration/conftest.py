"""Fixtures for tests that run against the namespace lab (tests/lab/labctl).

    def test_something(lab_factory):
        lab = lab_factory("tfoo", mode="ipip", nodes=3, extra_nic=True)
        lab.fault("src-asym", node="node3")
        result = lab.ansible("-m", "netdoctor.calico.calico_node_facts")
        ...
        lab.heal()

Every lab the factory made is downed at the end of the test module, even when tests fail; a
test or fixture that wants a lab gone earlier calls `lab.down()` (idempotent).
"""

import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABCTL = os.path.join(REPO, "tests", "lab", "labctl")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
LAB_TESTS_LOCK = "/run/netdoctor-lab-tests.lock"
LAB_TESTS_LOCK_WAIT = 1200
LAB_TOOLS = ("ip", "bridge", "nsenter", "unshare", "bird", "birdc", "sshd", "ssh-keygen", "nft",
             "ping", "dbus-daemon", "NetworkManager", "sysctl")


def lab_unavailable():
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [t for t in LAB_TOOLS if not shutil.which(t)]
    return f"missing tools for the lab: {', '.join(missing)}" if missing else None


def _run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def process_gone(pid):
    """True when pid no longer runs (a zombie waiting for pid 1 to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@dataclass
class PingResult:
    passed: int
    failed: int
    matrix: dict
    failures: set = field(default_factory=set)   # {(src pod, dst pod)}
    output: str = ""


class Lab:
    """A handle on one lab; every method shells out to labctl."""

    def __init__(self, name, *, mode="bgp", nodes=3, pods_per_node=2, extra_nic=False, nm=False):
        self.name, self.mode, self.size = name, mode, nodes
        self.pods_per_node, self.extra_nic, self.nm = pods_per_node, extra_nic, nm
        self.up_seconds = None

    def labctl(self, *args, check=True, timeout=300):
        res = subprocess.run([LABCTL, *args], capture_output=True, text=True, timeout=timeout,
                             check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"labctl {' '.join(args)} exited {res.returncode}:\n"
                                 f"{res.stderr}{res.stdout[-2000:]}")
        return res

    def up(self):
        args = ["up", "--name", self.name, "--nodes", str(self.size), "--mode", self.mode,
                "--pods-per-node", str(self.pods_per_node)]
        args += ["--extra-nic"] if self.extra_nic else []
        args += ["--nm"] if self.nm else []
        start = time.monotonic()
        self.labctl(*args)
        self.up_seconds = time.monotonic() - start
        return self.up_seconds

    def down(self):
        """Remove the lab and check that nothing of it is left."""
        shown = self.labctl("show", "--name", self.name, check=False)
        pids = ([p for n in json.loads(shown.stdout)["nodes"] for p in n["processes"].values()]
                if shown.returncode == 0 else [])
        self.labctl("down", "--name", self.name)
        left = self.leftovers(pids)
        assert not left, f"lab {self.name} left behind: {left}"

    def leftovers(self, pids=()):
        """What of this lab still exists: namespaces, links, mounts, live processes, files."""
        prefix = f"nd-{self.name}-"
        out = [ns for ns in _run(["ip", "netns", "list"]).split() if ns.startswith(prefix)]
        out += [line.split(":")[1].strip().split("@")[0]
                for line in _run(["ip", "-o", "link", "show"]).splitlines()
                if line.split(":")[1].strip().startswith(prefix)]
        state_dir = f"/run/netdoctor-lab/{self.name}"
        with open("/proc/self/mountinfo") as fh:
            out += [line.split()[4] for line in fh if state_dir in line]
        out += [f"pid {p}" for p in pids if not process_gone(p)]
        out += [state_dir] if os.path.exists(state_dir) else []
        return out

    def show(self):
        return json.loads(self.labctl("show", "--name", self.name).stdout)

    def nodes(self):
        return json.loads(self.labctl("nodes", "--name", self.name).stdout)

    def node(self, name):
        return next(n for n in self.nodes() if n["name"] == name)

    def pods(self, *node_names):
        """Pod names, of the given nodes or of all."""
        return [p["name"] for n in self.nodes() if not node_names or n["name"] in node_names
                for p in n["pods"]]

    def exec(self, target, *cmd, check=True):
        """Run cmd in a node (its net, mount and UTS namespaces) or a pod (its netns)."""
        return self.labctl("exec", "--name", self.name, target, "--", *cmd, check=check)

    def sh(self, target, script):
        return self.exec(target, "sh", "-c", script).stdout

    def sysctl(self, node, key):
        return self.exec(node, "sysctl", "-n", key).stdout.strip()

    def ping(self):
        res = self.labctl("ping", "--name", self.name, check=False)
        lines = res.stdout.strip().splitlines()
        data = json.loads(lines[0])
        passed, failed = (int(w) for w in lines[-1].replace(",", "").split()[::2])
        assert (res.returncode == 0) == (failed == 0), res.stdout
        return PingResult(passed, failed, data["matrix"], {tuple(f) for f in data["failures"]},
                          res.stdout)

    def inventory(self):
        return self.labctl("inventory", "--name", self.name).stdout.strip()

    def fault(self, fault, node=None, check=True):
        args = ["fault", "--name", self.name, fault] + (["--node", node] if node else [])
        res = self.labctl(*args, check=check)
        return json.loads(res.stdout) if res.returncode == 0 else res

    def heal(self):
        return json.loads(self.labctl("heal", "--name", self.name).stdout)

    def _ansible(self, tool, *args, check=True, timeout=300):
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
        res = subprocess.run([os.path.join(VENV_BIN, tool), "-i", self.inventory(), *args],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout,
                             check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"{tool} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def ansible(self, *args, pattern="calico_nodes", check=True):
        """`ansible -i <inventory> calico_nodes ARGS` from the repository root."""
        return self._ansible("ansible", pattern, *args, check=check)

    def ansible_playbook(self, playbook, *args, check=True):
        return self._ansible("ansible-playbook", playbook, *args, check=check)

    def pairs_between(self, nodes_a, nodes_b):
        """Ordered pod pairs with one end on nodes_a, the other on nodes_b (distinct pods)."""
        a, b = self.pods(*nodes_a), self.pods(*nodes_b)
        return {(x, y) for x in a for y in b if x != y} | {(y, x) for x in a for y in b if x != y}


@pytest.fixture(scope="session")
def lab_session():
    """Hold the lab-tests lock for the session: two pytest runs on one machine (several
    developers share one) would otherwise down each other's labs of the same name."""
    reason = lab_unavailable()
    if reason:
        # A lab test that cannot run has not passed: fail loudly (make test installs the tools).
        pytest.fail(reason)
    fd = os.open(LAB_TESTS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LAB_TESTS_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test session held {LAB_TESTS_LOCK} for "
                                f"{LAB_TESTS_LOCK_WAIT} s")
                time.sleep(1)
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def lab_factory(lab_session):
    """lab_factory(name, mode=..., nodes=..., pods_per_node=..., extra_nic=..., nm=...) -> Lab

    Module scope: a test file's labs are downed when the file is done, so the next file finds the
    machine's few lab slots free."""
    made = []

    def make(name, **kwargs):
        lab = Lab(name, **kwargs)
        lab.down()        # a leftover of an interrupted run
        made.append(lab)
        lab.up()
        return lab

    yield make
    errors = []
    for lab in made:
        try:
            lab.down()
        except AssertionError as exc:
            errors.append(str(exc))
    assert not errors, errors


@pytest.fixture(scope="session")
def lab_report(request):
    """lab_report(line): print a line even under `pytest -q` (e.g. lab bring-up times)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(line):
        with capture.global_and_fixture_disabled():
            print(f"\n{line}", flush=True)

    return write
