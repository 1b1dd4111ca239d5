"""playbooks/harden.yml (roles/preflight) against the namespace lab, over real SSH.

One 2-node bgp lab with --extra-nic (eth1, created after eth0, so first-found takes it - seed 004)
serves the read-only runs (check mode, bad input, the autodetection verdict), each of which proves
the nodes are byte-for-byte as before, and then the first real run and the idempotent second run.
A second lab carries faults: strict rp_filter on a multi-homed node, a running NetworkManager without
Calico's drop-in, a hostname missing from /etc/hosts, and a NetworkManager drop-in that overrides
Calico's list (the role must refuse before changing anything).
"""

import json
import os
import re

import pytest

pytestmark = pytest.mark.lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST_FIXTURE = os.path.join(REPO, "tests", "unit", "fixtures", "manifests", "calico.yaml.txt")
CALICO_SPECS = ("interface-name:cali*", "interface-name:tunl*", "interface-name:vxlan.calico",
                "interface-name:vxlan-v6.calico", "interface-name:wireguard.cali", "interface-name:wg-v6.cali")
DROPIN = "/etc/NetworkManager/conf.d/calico.conf"
SYSCTL_FILE = "/etc/sysctl.d/90-calico.conf"
# Everything the role may change on a node: file checksums and modes, then the sysctls it manages.
SNAPSHOT = r"""
find /etc/NetworkManager /etc/sysctl.d /etc/modules-load.d /etc/modprobe.d /etc/hosts -type f \
    -exec stat -c '%a %n' {} + -exec sha256sum {} + | sort
sysctl -a 2>/dev/null | grep -E '^net\.ipv4\.(ip_forward|conf\.[^.]+\.rp_filter) ' | sort
"""
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# The lab's nodes run a bgp data plane (no encapsulation) and their CNI config says mtu 1500.
BASE_VARS = {"preflight_encapsulation": "none"}


def snapshot(lab):
    return {node["name"]: lab.sh(node["name"], SNAPSHOT) for node in lab.nodes()}


def harden(lab, *args, extra=None, check=False):
    """Run the playbook; -> (returncode, output, {host: {"changed": n, "failed": n, ...}})."""
    res = lab.ansible_playbook("netdoctor.calico.harden", "-e", json.dumps({**BASE_VARS, **(extra or {})}),
                               *(["--check"] if check else []), *args, check=False)
    out = res.stdout + res.stderr
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
             for m in RECAP.findall(res.stdout)}
    assert recap, f"no PLAY RECAP:\n{out}"
    return res.returncode, out, recap


def summaries(output):
    """The role's one summary line per node."""
    return dict(re.findall(r'"msg": "(node\d+): (AD001: .*)"', output))


def effective_unmanaged(lab, node):
    """[keyfile] unmanaged-devices as NetworkManager's own parser merges the node's drop-ins."""
    section, value = None, ""
    for raw in lab.exec(node, "NetworkManager", "--print-config").stdout.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[keyfile]" and line.startswith("unmanaged-devices="):
            value = line.split("=", 1)[1]
    return [spec for spec in re.split(r"[;,]", value) if spec]


@pytest.fixture(scope="module")
def lab(lab_factory, lab_report):
    lab = lab_factory("hdn", mode="bgp", nodes=2, pods_per_node=1, extra_nic=True)
    lab_report(f"harden lab up: {lab.up_seconds:.2f} s")
    yield lab
    lab.down()


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "calico.yaml"
    with open(MANIFEST_FIXTURE, "rb") as fixture:
        path.write_bytes(fixture.read())
    return path


def underlay_cidr(lab):
    """The recommendation we expect for the lab: the underlay subnet, which holds every intended IP."""
    nets = {node["underlay"][0] for node in lab.nodes()}
    assert len(nets) == 1 or len({n.split("/")[1] for n in nets}) == 1
    ip, length = sorted(nets)[0].split("/")
    host = int.from_bytes(bytes(int(o) for o in ip.split(".")), "big")
    net = host & ~((1 << (32 - int(length))) - 1)
    return ".".join(str(b) for b in net.to_bytes(4, "big")) + "/" + length


def test_check_mode_changes_nothing(lab, manifest):
    before, manifest_before = snapshot(lab), manifest.read_bytes()
    rc, out, recap = harden(lab, check=True, extra={"preflight_autodetection_method": "interface=^eth0$",
                                                    "preflight_autodetection_manifest": str(manifest)})
    assert rc == 0, out
    # it did predict changes (the drop-in and the sysctl file are missing on a fresh lab) ...
    assert all(r["changed"] > 0 for r in recap.values()), recap
    assert all("NM001: /etc/NetworkManager/conf.d/calico.conf written (check mode)" in line
               for line in summaries(out).values()), out
    # ... and made none of them
    assert snapshot(lab) == before
    assert manifest.read_bytes() == manifest_before


@pytest.mark.parametrize(("extra", "expected"), [
    ({"preflight_autodetection_method": "eth0-please"},
     "is invalid: Invalid IP autodetection method: eth0-please"),
    ({"preflight_autodetection_method": "cidr=192.0.2.0/33"},
     'is invalid: Invalid CIDR "192.0.2.0/33" for IP autodetection method: cidr=192.0.2.0/33'),
    ({"preflight_autodetection_method": "interface=^nope$"},
     "node1 picks nothing (no valid host interfaces found) instead of"),
    ({"preflight_autodetection_method": "interface=^eth0$", "preflight_encapsulation": "vxlan",
      "preflight_tunnel_mtu": 1480},
     "node1: too large for the tunnel - preflight_tunnel_mtu = 1480, the CNI config mtu = 1500: eth0 has MTU 1500 "
     "and vxlan adds 50 bytes, so at most 1450 fits"),
], ids=["unknown-method", "bad-cidr", "interface-picks-nothing", "mtu-too-large"])
def test_bad_input_fails_before_anything_changes(lab, manifest, extra, expected):
    before, manifest_before = snapshot(lab), manifest.read_bytes()
    rc, out, recap = harden(lab, extra={**extra, "preflight_autodetection_manifest": str(manifest)})
    assert rc != 0
    assert expected in out, out
    assert all(r["changed"] == 0 for r in recap.values()), recap
    assert "Write the NetworkManager drop-in" not in out
    assert snapshot(lab) == before
    assert manifest.read_bytes() == manifest_before


def test_first_found_takes_the_extra_nic_and_the_fleet_recommends_a_method(lab):
    before = snapshot(lab)
    rc, out, _recap = harden(lab)     # preflight_autodetection_method: first-found (the default)
    assert rc != 0
    assert "IP_AUTODETECTION_METHOD=first-found does not give 2 of 2 node(s) their intended address" in out, out
    for node in lab.nodes():
        extra = node["extra"][0].split("/")[0]
        assert re.search(rf"{node['name']} picks {re.escape(extra)}/\d+ \(eth1\) instead of "
                         rf"{re.escape(node['intended_ip'])}", out), out
    wanted = underlay_cidr(lab)
    assert f"Recommended for the whole fleet: preflight_autodetection_method=cidr={wanted}" in out, out
    assert snapshot(lab) == before


def test_harden_changes_then_is_idempotent(lab, manifest, lab_report):
    before = snapshot(lab)
    method = "cidr=" + underlay_cidr(lab)
    extra = {"preflight_autodetection_method": method, "preflight_autodetection_manifest": str(manifest)}
    rc, out, recap = harden(lab, extra=extra)
    assert rc == 0, out
    assert set(recap) == {"node1", "node2"}
    assert all(r["changed"] > 0 and r["failed"] == 0 for r in recap.values()), recap
    lines = summaries(out)
    assert set(lines) == {"node1", "node2"}, out
    for line in lines.values():
        assert f"AD001: {method} -> " in line and "(eth0) ok" in line, line
        assert "NM001: /etc/NetworkManager/conf.d/calico.conf written, Calico devices unmanaged per " \
               "NetworkManager --print-config" in line, line
    after = snapshot(lab)
    assert after != before
    # the verified method is now in the install manifest, and only there
    assert f'value: "{method}"' in manifest.read_text() or f"value: {method}" in manifest.read_text()

    for node in lab.nodes():
        name = node["name"]
        # NetworkManager's own parser: every Calico device is unmanaged
        assert set(CALICO_SPECS) <= set(effective_unmanaged(lab, name)), name
        assert lab.sysctl(name, "net.ipv4.ip_forward") == "1"
        assert "net.ipv4.ip_forward=1" in lab.sh(name, f"cat {SYSCTL_FILE}").splitlines()
        # the lab's rp_filter is 0 (off) everywhere: nothing is ever raised
        assert lab.sysctl(name, "net.ipv4.conf.eth1.rp_filter") == "0"

    rc, out, recap = harden(lab, extra=extra)
    assert rc == 0, out
    assert {host: r["changed"] for host, r in recap.items()} == {"node1": 0, "node2": 0}, out
    assert snapshot(lab) == after
    lab_report("harden: first run changed " + ", ".join(f"{h}" for h in recap) + "; second run changed=0")


def test_faulty_nodes_are_fixed_then_an_override_is_refused_first(lab_factory, lab):
    lab.down()                # one lab at a time: lab slots are scarce on a shared machine
    faulty = lab_factory("hdf", mode="bgp", nodes=2, pods_per_node=1, extra_nic=True)
    faulty.fault("rp-filter-strict", node="node2")
    faulty.fault("nm-unmanaged-missing", node="node1")          # NetworkManager runs, no Calico drop-in
    node1 = faulty.node("node1")
    faulty.sh("node1", f"sed -i '/[[:space:]]{node1['hostname']}$/d' /etc/hosts")
    extra = {"preflight_autodetection_method": "interface=^eth0$", "preflight_fix_hosts": True,
             "preflight_load_modules": True}
    before = snapshot(faulty)
    rc, out, recap = harden(faulty, extra=extra)
    assert rc == 0, out
    lines = summaries(out)
    # NetworkManager runs on node1: asked to reload its configuration (never restarted)
    assert "NetworkManager reloaded" in lines["node1"], lines["node1"]
    assert "NetworkManager reloaded" not in lines["node2"], lines["node2"]
    assert set(CALICO_SPECS) <= set(effective_unmanaged(faulty, "node1"))
    # node2 is multi-homed and strict: its NICs become loose; conf.all and Calico's devices stay as they were
    for nic in ("eth0", "eth1"):
        assert faulty.sysctl("node2", f"net.ipv4.conf.{nic}.rp_filter") == "2"
    assert faulty.sysctl("node2", "net.ipv4.conf.all.rp_filter") == "1"
    cali = faulty.node("node2")["pods"][0]["interface"]
    assert faulty.sysctl("node2", f"net.ipv4.conf.{cali}.rp_filter") == "1"
    assert "rp_filter[eth0] rp_filter[eth1]" in lines["node2"], lines["node2"]
    # node1 resolves its hostname again; node2's /etc/hosts is untouched
    assert f"{node1['intended_ip']} {node1['hostname']}" in faulty.sh("node1", "cat /etc/hosts").splitlines()
    assert re.search(r"modules: \d+/\d+ in the kernel", lines["node1"]), lines["node1"]
    assert snapshot(faulty) != before

    rc, out, recap = harden(faulty, extra=extra)
    assert rc == 0, out
    assert {host: r["changed"] for host, r in recap.items()} == {"node1": 0, "node2": 0}, out

    # A drop-in read after Calico's replaces the list (RKE2's canal): refused before anything changes.
    faulty.fault("nm-unmanaged-overridden", node="node2")
    before = snapshot(faulty)
    rc, out, recap = harden(faulty, extra=extra)
    assert rc != 0
    assert "rke2-canal.conf" in out, out
    assert all(r["changed"] == 0 for r in recap.values()), recap
    assert snapshot(faulty) == before
