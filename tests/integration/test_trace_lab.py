"""The pod-to-pod trace (playbooks/trace.yml: calico_trace on every node, trace_steps on the
controller) on the namespace lab, over real SSH.

A healthy lab passes all eight steps and the probe gets its reply; each fault that breaks pod
traffic is named at the step where the packet is lost. Faults go on the lab's last node; its peer
is node1. Which pod sends decides the step:

    fault                 lab    trace                     first failing step
    proxy-arp-off         bgp    faulted -> node1          1  the veth does not answer 169.254.1.1
                                 node1 -> faulted          5  pod B cannot resolve its gateway to reply
    no-ip-forward         bgp    node1 -> faulted          4  the faulted node does not forward into pod B
                                 faulted -> node1          1  no proxy ARP on a non-forwarding veth
    stale-route           bgp    faulted -> node1          2  next hop an address nobody holds
    bgp-peer-down         bgp    node1 -> faulted          2  the route was withdrawn
    src-asym              ipip   faulted -> node1          3  node1 drops IPIP from an unregistered source
                                 node1 -> faulted          7  the same drop, on the reply
    autodetect-wrong-nic  ipip   node1 -> faulted          2  next hop on the isolated network: no ARP answer
    stale-route           ipip   faulted -> node1          2  seed 001 case 1: via its own tunnel address
    missing-route         ipip   faulted -> node1          2  no route for node1's block

The lab's pods are bare network namespaces; a real pod's namespace is held by its pause
container, which is how calico_trace finds it from the node. So each pod gets a stand-in: a
`sleep` started in the pod's namespace (and stopped at the end) - the probe then runs from the
pod's own namespace, as it would on a real node.
"""

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
PAUSE_SECONDS = "900"  # outlives the module's tests; stopped by pid at the end regardless


def pods_by_node(lab):
    return {n["name"]: n["pods"][0] for n in lab.nodes()}


@contextmanager
def pause_containers(lab):
    """One process per pod namespace, as a pod's pause container holds it."""
    procs = [subprocess.Popen(["ip", "netns", "exec", pod["namespace"], "sleep", PAUSE_SECONDS])
             for pod in pods_by_node(lab).values()]
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


@contextmanager
def lab_with_pods(lab_factory, name, **kwargs):
    lab = lab_factory(name, pods_per_node=1, **kwargs)
    try:
        with pause_containers(lab):
            yield lab
    finally:
        lab.down()    # at once, not at the session's end: the machine has few lab slots


@contextmanager
def faulted(lab, fault, node):
    lab.fault(fault, node=node)
    try:
        yield
    finally:
        lab.heal()


def trace(lab, src, dst):
    """Run the playbook; (exit code, the trace report or None, per-host module results, output)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    res = subprocess.run([PLAYBOOK, "-i", lab.inventory(), "netdoctor.calico.trace", "-e", f"src={src}",
                          "-e", f"dst={dst}"], capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
                         check=False)
    report, halves = None, {}
    for play in json.loads(res.stdout)["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if task["task"]["name"] == "Read each node's half of the trace":
                    halves[host] = result
                facts = result.get("ansible_facts") or {}
                report = facts.get("calico_trace_report", report)
    return res.returncode, report, halves, res.stdout + res.stderr


def assert_first_failure(lab, src_node, dst_node, step, *evidence):
    pods = pods_by_node(lab)
    rc, report, _halves, out = trace(lab, pods[src_node]["ip"], pods[dst_node]["ip"])
    assert report is not None, out
    first = report["first_failure"]
    assert rc == 2 and first is not None, "\n".join(report["lines"])
    assert first["n"] == step, "\n".join(report["lines"])
    text = json.dumps(first["evidence"])
    for piece in evidence:
        assert piece in text, f"{piece!r} not in step {step}'s evidence: {text}"
    assert report["finding"]["id"] == "PATH001" and report["finding"]["severity"] == "critical"
    assert report["probe"]["send"]["ran"] and report["probe"]["send"]["ok"] is False
    return report


def assert_all_pass(lab, src_node, dst_node):
    pods = pods_by_node(lab)
    rc, report, halves, out = trace(lab, pods[src_node]["ip"], pods[dst_node]["ip"])
    assert report is not None, out
    assert rc == 0 and [s["ok"] for s in report["steps"]] == [True] * 8, "\n".join(report["lines"])
    assert report["first_failure"] is None and report["finding"] is None
    for key in ("send", "reply"):
        assert report["probe"][key]["ran"] and report["probe"][key]["ok"], report["probe"]
    assert report["lines"][-1] == "all 8 steps pass"
    return report, halves


# Class-scoped: each lab is downed when its class is done, so the module holds one lab slot at a time.
@pytest.fixture(scope="class")
def bgp_lab(lab_factory):
    with lab_with_pods(lab_factory, "trb", mode="bgp", nodes=3) as lab:
        yield lab


@pytest.fixture(scope="class")
def ipip_lab(lab_factory):
    with lab_with_pods(lab_factory, "tri", mode="ipip", nodes=2, extra_nic=True) as lab:
        yield lab


class TestBgp:
    """Native BGP, three nodes: node2 owns neither pod and only answers with two lookups."""

    def test_bgp_healthy_all_eight_steps_pass(self, bgp_lab, lab_report):
        start = time.monotonic()
        report, halves = assert_all_pass(bgp_lab, "node1", "node3")
        lab_report(f"trace playbook on a healthy 3-node lab: {time.monotonic() - start:.1f} s")
        assert (report["src_node"], report["dst_node"], report["mode"]) == ("node1", "node3", "bgp")
        # The bystander stops after its two route lookups; the owners probed from their pods.
        assert halves["node2"]["trace"] == {"schema_version": 1, "host": "node2", "owns": []}
        pod = halves["node1"]["trace"]["pods"][report["src"]]
        assert pod["netns"].startswith("/proc/") and pod["probe"]["ok"]
        assert pod["pod"]["gateway_neighbour"]["lladdr"] == "ee:ee:ee:ee:ee:ee"

    def test_bad_arguments_fail_before_any_node_is_asked(self, bgp_lab):
        rc, report, halves, out = trace(bgp_lab, "pod-a", "198.18.1.1")
        assert rc != 0 and report is None and halves == {}
        assert "src: 'pod-a' is not an IP address" in out
        pods = pods_by_node(bgp_lab)
        rc, report, _halves, out = trace(bgp_lab, pods["node1"]["ip"], "198.18.250.1")
        assert rc != 0 and report is None
        assert "no node owns dst 198.18.250.1: none of the 3 node(s) that answered" in out

    def test_bgp_proxy_arp_off(self, bgp_lab):
        with faulted(bgp_lab, "proxy-arp-off", "node3"):
            report = assert_first_failure(bgp_lab, "node3", "node1", 1, '"proxy_arp": 0', "169.254.1.1 dev eth0")
            assert report["first_failure"]["node"] == "node3"
            assert report["first_failure"]["remedy"].startswith("`sysctl -w net.ipv4.conf.cali")
            assert_first_failure(bgp_lab, "node1", "node3", 5, '"proxy_arp": 0')

    def test_bgp_no_ip_forward(self, bgp_lab):
        with faulted(bgp_lab, "no-ip-forward", "node3"):
            report = assert_first_failure(bgp_lab, "node1", "node3", 4, "net.ipv4.ip_forward=0 on node3")
            assert report["first_failure"]["node"] == "node3"
            assert_first_failure(bgp_lab, "node3", "node1", 1,
                                 "the kernel proxies ARP only on an interface that forwards")

    def test_bgp_stale_route(self, bgp_lab):
        node1 = bgp_lab.node("node1")
        with faulted(bgp_lab, "stale-route", "node3"):
            report = assert_first_failure(bgp_lab, "node3", "node1", 2,
                                          f"is not node1 (its Calico IP {node1['calico_ip']})")
            assert report["first_failure"]["evidence"]["routes"][0].startswith(f"{node1['blocks'][0]} via ")

    def test_bgp_peer_down(self, bgp_lab):
        block = bgp_lab.node("node3")["blocks"][0]
        with faulted(bgp_lab, "bgp-peer-down", "node3"):
            report = assert_first_failure(bgp_lab, "node1", "node3", 2, f"node1 has no route for {block}")
            assert "BIRD learns it over BGP" in report["first_failure"]["remedy"]

    def test_bgp_strict_rp_filter_on_symmetric_paths_is_no_failure(self, bgp_lab):
        with faulted(bgp_lab, "rp-filter-strict", "node3"):
            report, _halves = assert_all_pass(bgp_lab, "node1", "node3")
            assert report["steps"][2]["evidence"]["rp_filter"]["eth0"]["effective"] == 1


class TestIpip:
    """IPIP-shaped (tunl0 without a local address) with a second, isolated network."""

    def test_ipip_healthy_all_eight_steps_pass(self, ipip_lab):
        report, _halves = assert_all_pass(ipip_lab, "node1", "node2")
        assert report["mode"] == "ipip"
        assert report["steps"][2]["evidence"]["outer_source"] == ipip_lab.node("node1")["calico_ip"]

    def test_ipip_src_asym(self, ipip_lab):
        node2 = ipip_lab.node("node2")
        with faulted(ipip_lab, "src-asym", "node2"):
            address = next(f["address"] for f in ipip_lab.show()["faults"] if f["fault"] == "src-asym")
            report = assert_first_failure(ipip_lab, "node2", "node1", 3, f'"outer_source": "{address}"',
                                          f'"peer_knows_sender_as": "{node2["calico_ip"]}"')
            assert report["first_failure"]["node"] == "node1" and "SRC001" in report["first_failure"]["remedy"]
            assert_first_failure(ipip_lab, "node1", "node2", 7, f'"outer_source": "{address}"')

    def test_ipip_autodetect_wrong_nic(self, ipip_lab):
        with faulted(ipip_lab, "autodetect-wrong-nic", "node2"):
            wrong = ipip_lab.node("node2")["calico_ip"]
            assert wrong.startswith("198.51.100.")
            report = assert_first_failure(ipip_lab, "node1", "node2", 2,
                                          f"{wrong} does not answer ARP on eth1", "node2's registered IP")
            assert "AD001" in report["first_failure"]["remedy"]
            assert report["first_failure"]["evidence"]["peer_registered_ip"].startswith(f"node2 registered {wrong}")

    def test_ipip_stale_route_seed001_case1(self, ipip_lab):
        node1, node2 = ipip_lab.node("node1"), ipip_lab.node("node2")
        with faulted(ipip_lab, "stale-route", "node2"):
            report = assert_first_failure(ipip_lab, "node2", "node1", 2,
                                          f"next hop {node2['tunnel_address']} is not node1")
            assert report["first_failure"]["evidence"]["routes"][0] == (
                f"{node1['blocks'][0]} via {node2['tunnel_address']} dev tunl0 onlink")

    def test_ipip_missing_route(self, ipip_lab):
        block = ipip_lab.node("node1")["blocks"][0]
        with faulted(ipip_lab, "missing-route", "node2"):
            assert_first_failure(ipip_lab, "node2", "node1", 2,
                                 f"node2 has no route for {block}; the lookup falls through")
