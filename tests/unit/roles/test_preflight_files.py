"""The preflight role's controller and node helpers (roles/preflight/files), run as the role runs them."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# The role as Ansible loads it: <collections root>/ansible_collections/netdoctor/calico/roles/preflight
ROLE_PATH = os.path.join(REPO, ".collections", "ansible_collections", "netdoctor", "calico", "roles", "preflight")
RECOMMEND = os.path.join(ROLE_PATH, "files", "recommend_method.py")
KERNEL_MODULES = os.path.join(ROLE_PATH, "files", "kernel_modules.sh")


def link(index, name, *addresses):
    return {"index": index, "name": name, "mtu": 1500, "up": True,
            "addresses": [{"address": a.split("/")[0], "prefixlen": int(a.split("/")[1]), "family": 4,
                           "scope": "global", "flags": [], "label": name} for a in addresses]}


def node_links(i, extra=True):
    links = [link(1, "lo", "127.0.0.1/8"), link(2, "eth0", f"192.0.2.{10 + i}/26")]
    return links + ([link(3, "eth1", f"198.51.100.{10 + i}/26")] if extra else [])


def recommend(data):
    done = subprocess.run([sys.executable, RECOMMEND, ROLE_PATH], input=json.dumps(data), capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def test_recommendation_for_a_fleet_whose_second_nic_wins_first_found():
    rec = recommend({"links": {f"node{i}": node_links(i) for i in (1, 2, 3)},
                     "targets": {f"node{i}": f"192.0.2.{10 + i}" for i in (1, 2, 3)}, "calico_version": "3.30"})
    assert rec["method"] == "cidr=192.0.2.0/26"
    assert rec["operator"] == {"cidrs": ["192.0.2.0/26"]}
    assert [e["address"] for e in rec["evidence"]] == [f"192.0.2.{10 + i}/26" for i in (1, 2, 3)]


def test_no_recommendation_when_an_intended_address_is_on_no_interface():
    rec = recommend({"links": {"node1": node_links(1), "node2": node_links(2)},
                     "targets": {"node1": "192.0.2.11", "node2": "203.0.113.9"}, "calico_version": "3.30"})
    assert rec["method"] is None
    assert "node2" in rec["reason"]


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
