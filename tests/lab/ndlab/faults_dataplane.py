"""The data-plane faults (issue 14) and the parts of the lab's calico-node and Felix they need:
Felix's health endpoint (the calico-node stand-in serves it), Felix's per-workload chains, the
VXLAN device's checksum offload as Felix leaves it, and the MTU file Felix writes.

`reconcile` calls `apply` on every node after its own work, and folds `workload_chains` into
Felix's table and `host_firewall_rules` into the host firewall it loads; `faults` registers
`FAULTS`. Everything here is desired state: the same call with the fault gone heals it. Imports
only modules `reconcile` imports (no cycle)."""

import os
import sys

from .addressing import POD_MTU, VXLAN_PORT
from .errors import LabError
from .model import faults_on
from .node import keeper, start_in_node, stop_in_node
from .runner import alive, in_netns, poll, run, write_text
from .state import node_dir

FAULTS = {
    "vxlan-firewall": {"vxlan"},
    "vxlan-offload": {"vxlan"},
    "conntrack-full": {"bgp", "vxlan", "ipip"},
    "felix-unready": {"bgp", "vxlan", "ipip"},
    "mtu-file-wrong": {"bgp", "vxlan", "ipip"},
}
PEER_FAULTS = ("vxlan-firewall",)

HEALTH_PORT = 9099
# With argv[0] "calico-node", Python finds its standard library from its compiled-in prefix: the
# system's interpreter has the right one (a pyenv or venv one may not).
STANDIN_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable)
WRONG_MTU = 8950          # as if Felix had sized the pods' MTU from a 9000-byte interface
CT_MAX = 400              # the limit the node is shown (the kernel's own is global, read-only here)
CT_HELD = 364             # real connections held on the node's loopback: 91 %
CT_MAX_PATH = "/proc/sys/net/netfilter/nf_conntrack_max"
CT_TABLE = "ndlab-conntrack"

# calico-node's stand-in: Felix's health endpoint (libcalico-go lib/health: 200 with the
# reporters' table when good, 503 when not), answering from a state file the lab writes.
STANDIN = r'''
import http.server, socket, sys, time
STATE = sys.argv[1]
HEADER = ("+---------------------------+---------+----------------+---------------------+--------+\n"
          "| COMPONENT                 | TIMEOUT | LIVENESS       | READINESS           | DETAIL |\n"
          "+---------------------------+---------+----------------+---------------------+--------+\n")
def row(name, live, ready):
    return "| %-25s | %-7s | %-14s | %-19s | %-6s |\n" % (name, "20s", live, ready, "")
def table(ready):
    return (HEADER + row("CalculationGraph", "reporting live", "reporting ready")
            + row("InternalDataplaneMainLoop", "reporting live", "reporting ready" if ready else "reporting non-ready")
            + row("async_calc_graph", "reporting live", "reporting ready")
            + "+---------------------------+---------+----------------+---------------------+--------+")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with open(STATE) as f:
                state = f.read().strip()
        except OSError:
            state = "ready"
        ready = state == "ready"
        if self.path.startswith("/readiness"):
            status, body = (200 if ready else 503), table(ready)
        elif self.path.startswith("/liveness"):
            status, body = 200, table(ready)
        else:
            status, body = 404, "404 page not found\n"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.HTTPServer.allow_reuse_address = True
server = None
for _ in range(50):
    try:
        server = http.server.HTTPServer(("127.0.0.1", @PORT@), Handler)
        break
    except OSError:
        time.sleep(0.2)
if server is None:
    print("calico-node stand-in: port @PORT@ is taken, no health endpoint", flush=True)
    while True:
        time.sleep(3600)
server.serve_forever()
'''.replace("@PORT@", str(HEALTH_PORT))

# conntrack-full: connections held open on the node's loopback, so the count is real.
HOLDER = r'''
import socket, sys, time
n = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(n + 8)
pairs = []
for _ in range(n):
    client = socket.create_connection(server.getsockname())
    pairs.append((client, server.accept()[0]))
print("holding", n, flush=True)
while True:
    time.sleep(3600)
'''

# conntrack-full: flush the node's conntrack table (ctnetlink IPCTNL_MSG_CT_DELETE without a tuple),
# so the count starts from what the fault holds and a heal leaves no closing entries behind.
CT_FLUSH = r'''
import socket, struct
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)      # NETLINK_NETFILTER
sock.bind((0, 0))
body = struct.pack("=BBH", 0, 0, 0)                                  # nfgenmsg, AF_UNSPEC: every family
sock.send(struct.pack("=IHHII", 16 + len(body), (1 << 8) | 2, 1 | 4, 1, 0) + body)   # ctnetlink DELETE, ACK
error = struct.unpack_from("=i", sock.recv(4096), 16)[0]
raise SystemExit(0 if error in (0, -2) else -error)                  # -ENOENT: nothing to flush
'''

# vxlan-offload: the tx checksum offload as Felix sets it (ETHTOOL_GTXCSUM / ETHTOOL_STXCSUM ioctls,
# felix/ethtool EthtoolTXOff), so the lab does not share the collection's netlink code it tests.
TXCSUM = r'''
import array, fcntl, socket, struct, sys
SIOCETHTOOL, GTXCSUM, STXCSUM = 0x8946, 0x16, 0x17
name, want = sys.argv[1].encode(), int(sys.argv[2])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def call(cmd, data=0):
    value = array.array("I", [cmd, data])                    # struct ethtool_value
    ifreq = struct.pack("16sP", name, value.buffer_info()[0]) + bytes(16)   # struct ifreq, ifr_data
    fcntl.ioctl(sock, SIOCETHTOOL, ifreq)
    return value[1]
if call(GTXCSUM) != want:
    call(STXCSUM, want)
print(call(GTXCSUM))
'''


def node_file(lab, node, name):
    return os.path.join(node_dir(lab, node), name)


# ---------------------------------------------------------------------------------------------
# the calico-node stand-in

def standin_argv(lab, node):
    """The stand-in's argv (argv[0] `calico-node`, `-felix` as Felix's process has) after writing its
    script and its health state."""
    script = node_file(lab, node, "calico-node-standin.py")
    write_text(script, STANDIN)
    ensure_health_state(lab, node)
    return ["bash", "-c", f'exec -a calico-node "{STANDIN_PYTHON}" "{script}" "{node_file(lab, node, "felix-health")}" '
                          '-felix']


def ensure_health_state(lab, node):
    state = "unready" if faults_on(lab, node, "felix-unready") else "ready"
    write_text(node_file(lab, node, "felix-health"), state + "\n")


# ---------------------------------------------------------------------------------------------
# what reconcile folds into the nftables it loads

def workload_chains(lab, node):
    """Felix's per-workload chains in its nftables table (`filter-cali-tw-<iface>`, `-fw-`: to and
    from the workload), as Felix in nftables mode has them for every local workload."""
    chains = "".join(f"  chain filter-cali-{d}-{pod['interface']} {{\n  }}\n"
                     for pod in node["pods"] for d in ("tw", "fw"))
    return f"table ip calico {{\n{chains}}}\n" if chains else ""


def host_firewall_rules(lab, node, regs):
    """vxlan-firewall: the node's host firewall (Debian's `table inet filter`) drops VXLAN from the
    peer - BGP-shaped faults aside, the overlay is what a real firewall often forgets."""
    rules = [f"ip saddr {regs[f['peer']]} udp dport {VXLAN_PORT} drop" for f in faults_on(lab, node, "vxlan-firewall")]
    if not rules:
        return ""
    body = "".join(f"    {r}\n" for r in rules)
    return ("table inet filter {\n  chain input {\n    type filter hook input priority filter; policy accept;\n"
            f"{body}  }}\n  chain output {{\n    type filter hook output priority filter; policy accept;\n  }}\n}}\n")


def with_host_firewall(text, lab, node, regs):
    """The host firewall reconcile loads (None: no table), with this module's rules added."""
    extra = host_firewall_rules(lab, node, regs)
    return ((text or "") + extra) or None


# ---------------------------------------------------------------------------------------------
# desired state on one node

def apply(lab, node):
    """Bring the node to what its data-plane faults (or their absence) say."""
    ensure_health_state(lab, node)
    ensure_mtu_file(lab, node)
    if lab["mode"] == "vxlan":
        ensure_tx_checksum(lab, node)
    ensure_conntrack(lab, node)


def ensure_mtu_file(lab, node):
    """Felix's /var/lib/calico/mtu (the stand-in's: the lab writes what Felix would)."""
    value = WRONG_MTU if faults_on(lab, node, "mtu-file-wrong") else POD_MTU[lab["mode"]]
    write_text(os.path.join(node_dir(lab, node), "calico-lib", "mtu"), f"{value}\n")


def ensure_tx_checksum(lab, node):
    """Felix with featureDetectOverride ChecksumOffloadBroken=true keeps vxlan.calico's tx checksum
    offload off; the vxlan-offload fault turns it on, as Felix leaves it on kernels after 5.7."""
    want = "1" if faults_on(lab, node, "vxlan-offload") else "0"
    res = run(in_netns(node["namespace"], [sys.executable, "-c", TXCSUM, "vxlan.calico", want]))
    if res.stdout.strip() != want:
        raise LabError(f"{node['name']}: vxlan.calico tx checksum is {res.stdout.strip()}, not {want}")


def _ct_mounted(node):
    with open(f"/proc/{keeper(node)}/mountinfo") as fh:
        return any(line.split()[4] == CT_MAX_PATH for line in fh)


def ensure_conntrack(lab, node):
    """conntrack-full: a real count (connections held on loopback, tracked once a `ct` rule exists)
    against a limit shown through the node's own mount namespace - this kernel's nf_conntrack_max
    is global and read-only in a network namespace."""
    want = bool(faults_on(lab, node, "conntrack-full"))
    # The mount must be made from inside the node's network namespace: /proc/sys/net resolves per namespace.
    ns, enter = node["namespace"], ["nsenter", "-t", str(keeper(node)), "-m", "-n", "--"]
    if not want:
        stop_in_node(node, "ct-holder")
        if _ct_mounted(node):
            run(enter + ["umount", CT_MAX_PATH])
        if node.pop("ct_table", None):
            run(in_netns(ns, ["nft", "-f", "-"]), input=f"table inet {CT_TABLE}\ndelete table inet {CT_TABLE}\n")
            run(in_netns(ns, [sys.executable, "-c", CT_FLUSH]))
        return
    node["ct_table"] = True
    run(in_netns(ns, ["nft", "-f", "-"]),
        input=f"table inet {CT_TABLE} {{\n  chain track {{\n    type filter hook output priority -150; "
              "policy accept;\n    ct state new counter\n  }\n}\n")
    path = node_file(lab, node, "nf_conntrack_max")
    write_text(path, f"{CT_MAX}\n")
    if not _ct_mounted(node):
        run(enter + ["mount", "--bind", path, CT_MAX_PATH])
    if not alive(node["procs"].get("ct-holder")):
        run(in_netns(ns, [sys.executable, "-c", CT_FLUSH]))
        script = node_file(lab, node, "ct-holder.py")
        write_text(script, HOLDER)
        start_in_node(lab, node, "ct-holder", [os.path.realpath(sys.executable), script, str(CT_HELD)])
        count = in_netns(ns, ["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])
        if not poll(lambda: int(run(count).stdout) >= CT_HELD, 10, 0.1):
            raise LabError(f"{node['name']}: the conntrack count did not reach {CT_HELD}")
