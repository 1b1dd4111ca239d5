"""_bird against a real BIRD 1.6 and against sockets that misbehave.

The real BIRDs run in a scratch network namespace created here with only ``lo`` (plus two
documentation addresses on it), so nothing they do leaves that namespace: one BIRD (the node) with
static routes, a peer towards a second BIRD on the other lo address (Established) and peers towards
documentation addresses that have no route (never connect). They are stopped by the pids they
record, and the namespace is deleted, in finalizers.
"""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _bird as bird

NODE_CONF = """\
router id 192.0.2.11;
listen bgp address 192.0.2.11;
protocol device { scan time 2; }
protocol kernel { learn; persist; scan time 2; import all; export none; graceful restart; }
protocol static { route 198.18.1.0/26 blackhole; route 198.18.1.64/26 unreachable; }
template bgp bgp_template {
  description "Connection to BGP peer";
  local as 64512; multihop; gateway recursive; import all; export all;
  connect delay time 1; connect retry time 3; error wait time 5,60;
}
protocol bgp Mesh_192_0_2_12 from bgp_template { neighbor 192.0.2.12 as 64512; source address 192.0.2.11; }
protocol bgp Mesh_198_51_100_2 from bgp_template { neighbor 198.51.100.2 as 64512; }
protocol bgp Node_203_0_113_7_port_1179 from bgp_template { neighbor 203.0.113.7 port 1179 as 64513; }
"""

PEER_CONF = """\
router id 192.0.2.12;
listen bgp address 192.0.2.12;
protocol device { scan time 2; }
protocol static { route 198.18.2.0/26 blackhole; }
protocol bgp Mesh_192_0_2_11 {
  local as 64512; neighbor 192.0.2.11 as 64512; source address 192.0.2.12; multihop;
  import all; export all; connect delay time 1; connect retry time 3;
}
"""


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def scratch_netns():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("bird"):
        pytest.skip("needs root, iproute2 and bird")
    name = f"ndcal-bird-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["link", "set", "lo", "up"], ["addr", "add", "192.0.2.11/32", "dev", "lo"],
                    ["addr", "add", "192.0.2.12/32", "dev", "lo"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        links = subprocess.run(["ip", "-n", name, "-o", "link"], check=True, capture_output=True, text=True).stdout
        assert [line.split(": ")[1] for line in links.splitlines()] == ["lo"]
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture
def start_bird(scratch_netns, tmp_path):
    started = []

    def start(name, conf):
        conf_path = tmp_path / f"{name}.conf"
        conf_path.write_text(conf)
        ctl, pidfile = tmp_path / f"{name}.ctl", tmp_path / f"{name}.pid"
        proc = subprocess.Popen(["ip", "netns", "exec", scratch_netns, "bird", "-f", "-c", str(conf_path),
                                 "-s", str(ctl), "-P", str(pidfile)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append((proc, pidfile))
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() and ctl.exists() or proc.poll() is not None,
                 15, f"bird {name} to start")
        assert proc.poll() is None, proc.stderr.read().decode()
        # ip netns exec execs bird in place: the pid BIRD records is the process we started
        assert int(pidfile.read_text()) == proc.pid
        return str(ctl)

    yield start
    for proc, pidfile in started:
        if proc.poll() is None:
            os.kill(int(pidfile.read_text()) if pidfile.exists() else proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)


def test_real_bird_answers_like_calicoctl_node_status(start_bird):
    ctl = start_bird("node", NODE_CONF)
    start_bird("peer", PEER_CONF)

    def established():
        facts = bird.bird_facts(ctl)
        # right after Established the protocol is briefly in state "feed" while it exports routes
        return facts if any(p["established"] and p["state"] == "up" for p in facts["peers"]) else None

    facts = wait_for(established, 30, "Mesh_192_0_2_12 to be up and Established")
    assert facts["available"] is True
    assert facts["error"] is None
    assert facts["socket"] == ctl
    version = subprocess.run(["bird", "--version"], capture_output=True, text=True, check=True)
    assert (version.stdout + version.stderr).split() == ["BIRD", "version", facts["version"]]
    assert facts["router_id"] == "192.0.2.11"
    assert facts["status"] == "Daemon is up and running"
    static = next(p for p in facts["protocols"] if p["proto"] == "Static")
    assert static["routes"]["imported"] == 2
    peers = {p["name"]: p for p in facts["peers"]}
    assert sorted(peers) == ["Mesh_192_0_2_12", "Mesh_198_51_100_2", "Node_203_0_113_7_port_1179"]
    up = peers["Mesh_192_0_2_12"]
    assert (up["address"], up["type"], up["state"], up["info"]) == (
        "192.0.2.12", "node-to-node mesh", "up", "Established")
    assert (up["neighbor_address"], up["source_address"]) == ("192.0.2.12", "192.0.2.11")
    never = peers["Mesh_198_51_100_2"]
    assert (never["address"], never["established"], never["state"]) == ("198.51.100.2", False, "start")
    assert never["bgp_state"] in ("Idle", "Connect", "Active")
    node = peers["Node_203_0_113_7_port_1179"]
    assert (node["address"], node["port"], node["type"], node["neighbor_as"]) == ("203.0.113.7", 1179,
                                                                                  "node specific", 64513)
    # the plain "show protocols" that calicoctl sends gives the same rows
    replies = bird.query(ctl, commands=("show protocols",))
    plain = bird.peers(bird.parse_protocols(replies["show protocols"]))
    assert [(p["name"], p["address"], p["type"]) for p in plain] == [
        (p["name"], p["address"], p["type"]) for p in facts["peers"]]
    # an unknown protocol name is an 8xxx/9xxx error reply, not an exception
    replies = bird.query(ctl, commands=("show protocols all NoSuchPeer",))
    with pytest.raises(bird.BirdReplyError, match="NoSuchPeer"):
        bird.parse_protocols(replies["show protocols all NoSuchPeer"])


def test_missing_socket_is_reported(tmp_path):
    facts = bird.bird_facts(str(tmp_path / "bird.ctl"))
    assert facts["available"] is False
    assert facts["error"] == "FileNotFoundError: No such file or directory"
    assert facts["peers"] == [] and facts["protocols"] == []


def test_refused_connection_is_reported(tmp_path):
    path = str(tmp_path / "bird.ctl")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(path)  # bound, never listening: connect() is refused
        facts = bird.bird_facts(path)
    assert facts["available"] is False
    assert facts["error"] == "ConnectionRefusedError: Connection refused"


def serve(path, script):
    """A one-connection fake BIRD: ``script(conn)`` talks to the client."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def run():
        conn, _peer = server.accept()
        with conn:
            script(conn)
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_silent_server_times_out(tmp_path):
    path = str(tmp_path / "bird.ctl")
    release = threading.Event()
    thread = serve(path, lambda conn: release.wait(10))
    started = time.monotonic()
    facts = bird.bird_facts(path, timeout=0.3)
    release.set()
    thread.join(5)
    assert time.monotonic() - started < 5
    assert facts["available"] is False
    assert facts["error"] == "TimeoutError: no complete reply from BIRD within 0.3 s"


def test_replies_split_into_small_chunks_are_reassembled(tmp_path):
    path = str(tmp_path / "bird.ctl")
    here = os.path.join(os.path.dirname(__file__), "..", "unit", "plugins", "module_utils", "fixtures", "bird")

    def read(name):
        with open(os.path.join(here, name), "rb") as f:
            return f.read()

    def script(conn):
        def send(data):
            for i in range(0, len(data), 7):
                conn.sendall(data[i:i + 7])

        send(read("banner.txt"))
        received = b""
        for answer in ("v4_show_status.txt", "v4_show_protocols_all.txt"):
            while b"\n" not in received:
                received += conn.recv(100)
            _command, _nl, received = received.partition(b"\n")
            send(read(answer))

    thread = serve(path, script)
    facts = bird.bird_facts(path)
    thread.join(5)
    assert facts["error"] is None
    assert facts["router_id"] == "192.0.2.11"
    assert len(facts["peers"]) == 5


def test_server_closing_early_is_reported(tmp_path):
    path = str(tmp_path / "bird.ctl")
    thread = serve(path, lambda conn: conn.sendall(b"0001 BIRD 1.6.8 ready.\n1000-BIRD 1.6.8\n"))
    facts = bird.bird_facts(path)
    thread.join(5)
    assert facts["available"] is False
    assert facts["error"] in ("ConnectionError: BIRD closed the connection",
                              "BrokenPipeError: Broken pipe", "ConnectionResetError: Connection reset by peer")
