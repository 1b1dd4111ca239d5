"""The preflight role's node helper (roles/preflight/files/kernel_modules.sh), run as the role runs it.
The fleet's method recommendation is the recommend_method filter (tests/unit/plugins/filter)."""

import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# The role as Ansible loads it: <collections root>/ansible_collections/netdoctor/calico/roles/preflight
ROLE_PATH = os.path.join(REPO, ".collections", "ansible_collections", "netdoctor", "calico", "roles", "preflight")
KERNEL_MODULES = os.path.join(ROLE_PATH, "files", "kernel_modules.sh")


def kernel_modules(*args):
    done = subprocess.run(["sh", KERNEL_MODULES, *args], capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.skipif(not os.path.isdir("/sys/module"), reason="needs /sys/module")
def test_kernel_modules_scan_matches_the_running_kernel():
    present = sorted(os.listdir("/sys/module"))[0]
    rc, out, err = kernel_modules(f"{present}=CONFIG_WHATEVER", "nd_no_such_module=CONFIG_ND_NO_SUCH_MODULE")
    assert rc == 0, err
    scan = json.loads(out)
    assert scan["release"] == os.uname().release
    assert scan["modules_supported"] == os.path.exists("/proc/modules")
    assert scan["modules"][present] == {"status": "present", "evidence": f"/sys/module/{present}"}
    # a name no kernel has: missing when any index or kernel config can tell, else honestly unknown
    can_tell = [s for s in scan["sources"] if s not in ("/sys/module", "/proc/modules")]
    assert scan["modules"]["nd_no_such_module"]["status"] == ("missing" if can_tell else "unknown")


def test_kernel_modules_refuses_odd_arguments():
    rc, _out, err = kernel_modules("ip_set=CONFIG_IP_SET;reboot")
    assert rc == 2
    assert "invalid argument" in err
