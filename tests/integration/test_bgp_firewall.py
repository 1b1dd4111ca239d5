"""calico_firewall's bgp flow through real Ansible inside throwaway network namespaces, proven with real TCP.

Each test gets two fresh network namespaces joined by a veth pair (A 198.51.100.201/24, B
198.51.100.202/24). Every network namespace has its own nftables ruleset, so the module (run with
`ip netns exec A ansible localhost -m ...`) only ever sees and changes A's; the host's firewall is
never touched. Small python listeners on port 179 in both namespaces stand in for BIRD.
"""

import itertools
import os
import select
import shutil
import subprocess
import sys

import pytest
from ansible_collections.netdoctor.calico.tests.integration.module_run import run_module

A_IP, B_IP = "198.51.100.201", "198.51.100.202"
MARKER = "netdoctor.calico: BGP with Calico peers"
# A's firewall: BGP to B dropped on output, and the input policy drops new connections to port 179.
BLOCKING = """table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname "lo" accept
        tcp dport 22 accept
    }
    chain output {
        type filter hook output priority filter; policy accept;
        ip daddr 198.51.100.202 tcp dport 179 drop
    }
}
"""
LISTENER = """import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 179))
server.listen(16)
print("listening", flush=True)
while True:
    server.accept()[0].close()
"""
CONNECT = """import socket, sys
try:
    socket.create_connection((sys.argv[1], 179), timeout=2).close()
except OSError as exc:
    sys.exit(f"{type(exc).__name__}: {exc}")
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
                                reason="needs root, nft and ip")
_numbers = itertools.count()


def sh(*cmd, data=None):
    return subprocess.run(cmd, input=data, capture_output=True, text=True, check=True, timeout=30).stdout


def ruleset(ns):
    return sh("ip", "netns", "exec", ns, "nft", "list", "ruleset")


def connects(ns, address):
    """A real TCP connection from ns to address:179 within 2 s."""
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CONNECT, address],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.returncode == 0


def fw(ns, args, *, check=False, diff=False, fails=False):
    """One run of the module in ns, failing or not as said."""
    args = {"flows": ["bgp"], **{k: v for k, v in args.items() if k != "port"},
            **({"ports": {"bgp": args["port"]}} if "port" in args else {})}
    result = run_module("calico_firewall", args, check=check, diff=diff, prefix=("ip", "netns", "exec", ns))
    assert bool(result.get("failed")) == fails, result.get("msg")
    return result


def _stop(proc):
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def pair(request):
    """(A, B): two namespaces joined by a veth pair, A's firewall blocking BGP, a listener on :179 in each."""
    number = next(_numbers)
    names = (f"ndfwa{os.getpid()}x{number}", f"ndfwb{os.getpid()}x{number}")
    for ns in names:
        sh("ip", "netns", "add", ns)
        request.addfinalizer(lambda ns=ns: subprocess.run(["ip", "netns", "del", ns], check=False))
    a, b = names
    sh("ip", "-n", a, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", b)
    for ns, dev, address in ((a, "v0", A_IP), (b, "v1", B_IP)):
        sh("ip", "-n", ns, "addr", "add", address + "/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "netns", "exec", a, "nft", "-f", "-", data=BLOCKING)
    for ns, address in ((a, A_IP), (b, B_IP)):
        # ip netns exec execs the command: the pid is the listener's own
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, address],
                                stdout=subprocess.PIPE, text=True)
        request.addfinalizer(lambda proc=proc: _stop(proc))
        ready, _w, _x = select.select([proc.stdout], [], [], 15)
        assert ready and proc.stdout.readline().strip() == "listening", f"no listener in {ns}"
    return a, b


def test_blocked_bgp_is_let_through_and_put_back(pair):
    a, b = pair
    original = ruleset(a)
    assert not connects(a, B_IP), "A's output chain should drop BGP to B"
    assert not connects(b, A_IP), "A's input policy should drop BGP from B"
    args = {"peers": [B_IP], "local_addresses": [A_IP]}

    check = fw(a, args, check=True, diff=True)
    assert check["changed"] and not check["verified"] and check["persistent"] is False
    assert {(r["chain"], r["rule"], r["certain"]) for r in check["blocking"]} == {
        ("output", "ip daddr 198.51.100.202 tcp dport 179 drop", True), ("input", "policy drop", True)}
    assert check["actions"] == [
        f'insert rule inet filter input ip saddr {B_IP} tcp sport 179 accept comment "{MARKER}"',
        f'insert rule inet filter input ip saddr {B_IP} tcp dport 179 accept comment "{MARKER}"',
        f'insert rule inet filter output ip daddr {B_IP} tcp sport 179 accept comment "{MARKER}"',
        f'insert rule inet filter output ip daddr {B_IP} tcp dport 179 accept comment "{MARKER}"']
    assert ruleset(a) == original
    assert not connects(a, B_IP)

    real = fw(a, args, diff=True)
    assert real["changed"] and real["verified"] and real["actions"] == check["actions"]
    assert real["diff"] == check["diff"]  # check mode predicted the chains exactly
    assert [r["handle"] for r in real["before"]] == [r["handle"] for r in check["before"]]
    assert connects(a, B_IP) and connects(b, A_IP)

    again = fw(a, args)
    assert not again["changed"] and again["verified"]
    assert again["actions"] == [] and again["blocking"] == []

    gone = fw(a, {"state": "absent"})
    assert gone["changed"] and gone["verified"] and len(gone["actions"]) == 4
    assert all(action.startswith("delete rule inet filter ") for action in gone["actions"])
    assert ruleset(a) == original
    assert not connects(a, B_IP)
    assert not fw(a, {"state": "absent"})["changed"]


def test_new_peer_set_replaces_the_rules(pair):
    a, b = pair
    fw(a, {"peers": [B_IP]})
    result = fw(a, {"peers": ["198.51.100.203", B_IP]})
    assert result["changed"] and result["verified"]
    assert sum(action.startswith("delete rule ") for action in result["actions"]) == 4
    text = ruleset(a)
    assert text.count(MARKER) == 4 and text.count("{ 198.51.100.202, 198.51.100.203 }") == 4
    assert connects(a, B_IP) and connects(b, A_IP)
    assert not fw(a, {"peers": [B_IP, "198.51.100.203"]})["changed"]


@pytest.mark.parametrize(("args", "message"), [
    ({"peers": ["node2"]}, "peers: 'node2' is not an IP address"),
    ({"peers": [B_IP], "port": 0}, "ports: a port is 1-65535"),
    ({"peers": []}, "peers: give the Calico IP of at least one other node"),
    ({"peers": [B_IP], "nft": "/nonexistent/nft"}, "nft: /nonexistent/nft not found"),
])
def test_bad_input_fails_before_anything_changes(pair, args, message):
    a, _b = pair
    original = ruleset(a)
    result = fw(a, args, fails=True)
    assert message in result["msg"]
    assert not result["changed"] and result["actions"] == []
    assert ruleset(a) == original
