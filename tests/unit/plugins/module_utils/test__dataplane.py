"""The data plane readers (plugins/module_utils/_dataplane.py) and the firewall walk generalised to every
Calico flow (_firewall), on recorded bytes and files.

fixtures/dataplane/recorded.json holds the kernel's own netlink answers (hex) recorded by
fixtures/dataplane/generate.py in a scratch network namespace (kernel 6.18, nft 1.0.6, ethtool 6.1):
ethtool's FEATURES_GET for a VXLAN device with tx-checksum-ip-generic on and off, each with
`ethtool -k` of the same moment; the nf_tables chain, set and rule dumps of ruleset.nft +
ruleset.iptables with `nft -j list ruleset`; /proc/net/stat/nf_conntrack.
"""

from __future__ import annotations

import copy
import http.server
import json
import os
import re
import socket
import struct
import threading

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _dataplane as dp
from ansible_collections.netdoctor.calico.plugins.module_utils import _firewall as fw

HERE = os.path.dirname(__file__)
with open(os.path.join(HERE, "fixtures", "dataplane", "recorded.json"), encoding="utf-8") as _f:
    REC = json.load(_f)


def chunks(hexes):
    return [bytes.fromhex(h) for h in hexes]


# --- netlink framing -----------------------------------------------------------------------------

def test_attributes_round_trip_and_nesting():
    raw = dp.nla_nested(1, dp.nla_str(2, "vxlan.calico"), dp.nla(3, struct.pack("=I", 7)))
    outer = dp.parse_attrs(raw)
    inner = dp.parse_attrs(outer[1][0])
    assert inner[2] == [b"vxlan.calico\0"] and struct.unpack("=I", inner[3][0])[0] == 7
    assert len(raw) % 4 == 0


def test_messages_stop_at_a_truncated_one():
    one = dp.message(16, 1, 5, b"abcd")
    assert [(t, s, p) for t, _f, s, p in dp.parse_messages(one + one[:10])] == [(16, 5, b"abcd")]


def test_an_error_reply_raises_with_its_errno_and_an_ack_does_not():
    error = dp.message(dp.NLMSG_ERROR, 0, 1, struct.pack("=i", -19) + b"\0" * 16)
    ack = dp.message(dp.NLMSG_ERROR, 0, 1, struct.pack("=i", 0) + b"\0" * 16)
    with pytest.raises(OSError) as exc:
        dp.check_reply(dp.parse_messages(error))
    assert exc.value.errno == 19
    assert dp.check_reply(dp.parse_messages(ack)) == []


# --- ethtool over generic netlink ---------------------------------------------------------------------

def ethtool_k(text):
    """{name: (on, fixed)} of `ethtool -k` lines."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"\s*([\w-]+): (on|off)( \[fixed\])?", line)
        if match:
            out[match.group(1)] = (match.group(2) == "on", bool(match.group(3)))
    return out


def test_the_family_id_is_read_from_the_controller_answer():
    assert dp.decode_family_id(chunks(REC["ethtool"]["family"])) > dp.GENL_ID_CTRL


@pytest.mark.parametrize("state", ["on", "off"])
def test_features_read_over_netlink_are_what_ethtool_k_prints(state):
    view = dp.features_view(dp.decode_features(chunks(REC["ethtool"][state]["reply"])))
    printed = ethtool_k(REC["ethtool"][state]["ethtool_k"])
    compared = [name for name in view if name in printed]
    assert {"tx-checksum-ip-generic", "tx-checksum-ipv4", "tx-checksum-ipv6", "tx-scatter-gather",
            "tx-tcp-segmentation", "tx-udp_tnl-segmentation"} <= set(compared)
    for name in compared:
        assert (view[name]["on"], view[name]["fixed"]) == printed[name], name
    assert view["tx-checksum-ip-generic"]["on"] is (state == "on")
    assert f"tx-checksum-ip-generic: {state}" in dp.ethtool_text(view)
    assert "tx-checksum-ipv4: off [fixed]" in dp.ethtool_text(view)


def test_requested_differs_from_active():
    decoded = {"hw": {"tx-checksum-ip-generic"}, "wanted": {"tx-checksum-ip-generic"}, "active": set(),
               "nochange": set()}
    bit = dp.features_view(decoded, ["tx-checksum-ip-generic"])["tx-checksum-ip-generic"]
    assert bit == {"on": False, "fixed": False, "requested": True}
    assert dp.ethtool_text({"x": bit}) == ["x: off [requested on]"]


def test_features_get_and_set_requests():
    get = dp.parse_messages(dp.encode_features_get(30, "vxlan.calico"))[0]
    assert get[0] == 30 and get[3][0] == dp.ETHTOOL_MSG_FEATURES_GET
    header = dp.parse_attrs(dp.parse_attrs(get[3], 4)[dp.ETHTOOL_A_FEATURES_HEADER][0])
    assert header[dp.ETHTOOL_A_HEADER_DEV_NAME] == [b"vxlan.calico\0"]

    mtype, flags, _seq, payload = dp.parse_messages(dp.encode_features_set(30, "vxlan.calico", {
        "tx-checksum-ip-generic": False, "rx-gro": True}))[0]
    assert (mtype, payload[0], flags & dp.NLM_F_ACK) == (30, dp.ETHTOOL_MSG_FEATURES_SET, dp.NLM_F_ACK)
    wanted = dp.parse_attrs(payload, 4)[dp.ETHTOOL_A_FEATURES_WANTED][0]
    assert dp.ETHTOOL_A_BITSET_NOMASK not in dp.parse_attrs(wanted)   # only the named bits change
    assert dp._bitset(wanted) == {"rx-gro"}                           # the bit to turn on carries VALUE
    bits = dp.parse_attrs(dp.parse_attrs(wanted)[dp.ETHTOOL_A_BITSET_BITS][0])[dp.ETHTOOL_A_BITSET_BITS_BIT]
    assert sorted(dp._cstr(dp.parse_attrs(b)[dp.ETHTOOL_A_BITSET_BIT_NAME][0]) for b in bits) == [
        "rx-gro", "tx-checksum-ip-generic"]


# --- nf_tables and ip_set --------------------------------------------------------------------------

def recorded_nft():
    chains = dp.decode_chains(chunks(REC["nftables"]["chains"]))
    rules = {}
    for key, hexes in REC["nftables"]["rules"].items():
        family, table, chain = key.split(" ")
        rules[(family, table, chain)] = dp.decode_rules(chunks(hexes))
    return chains, rules


def test_chains_sets_and_rules_decode_as_nft_lists_them():
    chains, rules = recorded_nft()
    listed = {(c["chain"]["family"], c["chain"]["table"], c["chain"]["name"]): c["chain"]
              for c in REC["nftables"]["nft_json"]["nftables"] if "chain" in c}
    assert {(c["family"], c["table"], c["name"]) for c in chains} == set(listed)
    for c in chains:
        nft = listed[(c["family"], c["table"], c["name"])]
        assert (c["hook"], c["policy"], c["type"], c["priority"]) == (
            nft.get("hook"), nft.get("policy"), nft.get("type"), nft.get("prio"))
    sets = dp.decode_sets(chunks(REC["nftables"]["sets"]))
    # firewalld's `ct state { established, related }` is an anonymous set
    assert sets == [{"family": "ip", "table": "calico", "name": "cali40all-vxlan-net"},
                    {"family": "inet", "table": "firewalld", "name": "__set0"}]
    firewall = rules[("inet", "filter", "input")]
    assert [[e["expr"] for e in r["exprs"]][-1] for r in firewall] == ["immediate"]
    assert firewall[0]["exprs"][-1]["verdict"] == "drop"
    assert [e.get("target") for r in rules[("ip", "filter", "INPUT")] for e in r["exprs"] if e.get("target")] == [
        "cali-INPUT", "KUBE-FIREWALL"]


def test_the_host_firewall_is_what_can_drop_outside_felix_and_kube_proxy():
    chains, rules = recorded_nft()
    found = dp.host_firewall(chains, rules)
    # Felix's table, iptables-nft's jumps to cali-*/KUBE-*, an empty output chain: no firewall
    assert [(f["family"], f["table"], f["chain"]) for f in found] == [
        ("inet", "filter", "input"), ("inet", "firewalld", "filter_INPUT")]
    assert found[0]["blocking"] == [rules[("inet", "filter", "input")][0]["handle"]]
    assert dp.host_firewall(chains, {}) == []                # no rules read: only drop policies count
    policy = [dict(chains[0], family="inet", table="fw", name="in", hook="input", policy="drop", type="filter")]
    assert dp.host_firewall(policy, {})[0]["policy"] == "drop"


@pytest.mark.parametrize(("exprs", "blocks"), [
    ([{"expr": "counter"}, {"expr": "immediate", "verdict": "accept"}], False),
    ([{"expr": "counter"}, {"expr": "log"}], False),
    ([{"expr": "immediate", "verdict": "jump", "target": "cali-INPUT"}], False),
    ([{"expr": "immediate", "verdict": "jump", "target": "KUBE-NODEPORTS"}], False),
    ([{"expr": "immediate", "verdict": "jump", "target": "ufw-before-input"}], True),
    ([{"expr": "payload"}, {"expr": "cmp"}, {"expr": "reject"}], True),
    ([{"expr": "lookup"}], True),
    ([{"expr": "immediate", "verdict": "drop"}], True),
])
def test_blocking_rule(exprs, blocks):
    assert dp.blocking_rule({"family": "ip", "table": "filter", "exprs": exprs}) is blocks


def test_ipset_names_and_the_list_request():
    def reply(name):
        attrs = dp.nla(dp.IPSET_ATTR_PROTOCOL, b"\x07") + dp.nla_str(dp.IPSET_ATTR_SETNAME, name)
        return dp.message((dp.NFNL_SUBSYS_IPSET << 8) | dp.IPSET_CMD_LIST, dp.NLM_F_MULTI, 1,
                          struct.pack("=BBH", 2, 0, 0) + attrs)
    done = dp.message(dp.NLMSG_DONE, dp.NLM_F_MULTI, 1, b"\0\0\0\0")
    assert dp.decode_ipset_names([reply("cali40all-vxlan-net") + reply("cali40this-host"), done]) == [
        "cali40all-vxlan-net", "cali40this-host"]
    request = dp.parse_messages(dp.encode_ipset_list())[0]
    attrs = dp.parse_attrs(request[3], 4)
    assert request[1] & dp.NLM_F_DUMP == dp.NLM_F_DUMP
    assert struct.unpack(">I", attrs[dp.IPSET_ATTR_FLAGS][0])[0] == dp.IPSET_FLAG_LIST_SETNAME


# --- files ---------------------------------------------------------------------------------------------

def write(root, path, text):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as f:
        f.write(text)


def test_conntrack_counters_are_summed_over_cpus(tmp_path):
    stat = dp.parse_conntrack_stat(REC["conntrack_stat"])
    assert set(stat) >= {"entries", "drop", "early_drop", "insert_failed", "search_restart"}
    text = ("entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop\n"
            "000000b6  00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000 00000001 00000002 0\n"
            "000000b6  00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000000 00000000 0000000a 1\n")
    assert dp.parse_conntrack_stat(text) == {
        "entries": 0xb6, "clashres": 0, "found": 0, "new": 0, "invalid": 4, "ignore": 0, "delete": 0,
        "chainlength": 0, "insert": 0, "insert_failed": 1, "drop": 12, "early_drop": 1}
    write(tmp_path, "/proc/sys/net/netfilter/nf_conntrack_count", "182\n")
    write(tmp_path, "/proc/sys/net/netfilter/nf_conntrack_max", "200\n")
    write(tmp_path, "/proc/net/stat/nf_conntrack", text)
    ct = dp.read_conntrack(str(tmp_path))
    assert (ct["count"], ct["max"], ct["ratio"], ct["buckets"]) == (182, 200, 0.91, None)
    assert ct["stats"] == {"drop": 12, "early_drop": 1, "insert_failed": 1, "invalid": 4, "clashres": 0}
    assert dp.read_conntrack(str(tmp_path / "nothing")) is None


@pytest.mark.parametrize(("release", "version", "rhel"), [
    ("6.18.44-fc-v1300", (6, 18, 44), False), ("5.15.0-37-generic", (5, 15, 0), False),
    ("4.18.0-372.9.1.el8.x86_64", (4, 18, 0), True), ("4.18.0-80.el8.x86_64", (4, 18, 0), False),
    ("6.8", (6, 8, 0), False), ("unknown", None, False)])
def test_kernel_versions(release, version, rhel):
    assert dp.parse_kernel_version(release) == version
    assert dp.rhel_kernel(release) is rhel


def test_mtu_file_and_driver(tmp_path):
    assert dp.read_mtu_file(str(tmp_path)) == {"path": "/var/lib/calico/mtu", "value": None, "raw": None,
                                               "exists": False}
    write(tmp_path, "/var/lib/calico/mtu", "1450")   # Felix writes "%d", no newline
    assert dp.read_mtu_file(str(tmp_path))["value"] == 1450
    os.makedirs(tmp_path / "sys/class/net/ens192/device")
    os.symlink("../../../../bus/pci/drivers/vmxnet3", tmp_path / "sys/class/net/ens192/device/driver")
    assert dp.read_driver("ens192", str(tmp_path)) == "vmxnet3"
    assert dp.read_driver("veth0", str(tmp_path)) is None and dp.read_driver("../x", str(tmp_path)) is None


def test_felix_env_is_an_allow_list_read_case_insensitively(tmp_path):
    env = (b"PATH=/bin\0FELIX_HEALTHENABLED=true\0FELIX_featureDetectOverride=ChecksumOffloadBroken=true\0"
           b"FELIX_TYPHACAFILE=/secret\0ETCD_KEY_FILE=/k\0FELIX_VXLANPORT=4790\0")
    write(tmp_path, "/42/environ", env.decode())
    assert dp.felix_env(42, str(tmp_path)) == {"HEALTHENABLED": "true", "VXLANPORT": "4790",
                                               "FEATUREDETECTOVERRIDE": "ChecksumOffloadBroken=true"}
    assert dp.felix_env(None, str(tmp_path)) == {} and dp.felix_env(43, str(tmp_path)) == {}


def test_bools_and_overrides():
    assert [dp.parse_bool(v) for v in ("true", "T", "1", "false", "0", "yes", None)] == [
        True, True, True, False, False, None, None]
    assert dp.parse_overrides("ChecksumOffloadBroken=true, IPIPDeviceIsL3=false,bad") == {
        "ChecksumOffloadBroken": "true", "IPIPDeviceIsL3": "false"}


# --- Felix's health ------------------------------------------------------------------------------------

# libcalico-go lib/health health_test.go's table
FELIX_TABLE = """+-----------+---------+----------------+-----------------+----------------+
| COMPONENT | TIMEOUT | LIVENESS       | READINESS       | DETAIL         |
+-----------+---------+----------------+-----------------+----------------+
| source1   | 100ms   | -              | reporting ready |                |
| source2   | -       | reporting live | timed out       | but very busy! |
+-----------+---------+----------------+-----------------+----------------+"""


def test_health_table():
    assert dp.parse_health_table(FELIX_TABLE) == [
        {"component": "source1", "timeout": "100ms", "liveness": "-", "readiness": "reporting ready", "detail": ""},
        {"component": "source2", "timeout": "-", "liveness": "reporting live", "readiness": "timed out",
         "detail": "but very busy!"}]


@pytest.fixture
def felix_endpoint():
    """Felix's health endpoint on loopback: 503 on /readiness, 204 on /liveness."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 503 if self.path == "/readiness" else 204
            body = FELIX_TABLE.encode() if status == 503 else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_health_probes_a_real_endpoint(felix_endpoint):
    out = dp.felix_health({"HEALTHHOST": "127.0.0.1", "HEALTHPORT": str(felix_endpoint), "HEALTHENABLED": "true"},
                          True)
    assert (out["enabled"], out["probed"]) == (True, True)
    assert (out["readiness"]["status"], out["readiness"]["ok"]) == (503, False)
    assert out["readiness"]["components"][1]["readiness"] == "timed out"
    assert (out["liveness"]["status"], out["liveness"]["ok"], out["liveness"]["components"]) == (204, True, [])


def test_health_refused_and_not_probed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # bound, not listening: refused
        assert dp.probe_health("127.0.0.1", port, "readiness")["error"] == "connection refused"
    assert dp.felix_health({}, False) == {"host": "localhost", "port": 9099, "enabled": None, "probed": False}


# --- eBPF ----------------------------------------------------------------------------------------------

def test_bpf_prerequisites(tmp_path):
    write(tmp_path, "/proc/mounts", "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n"
                                    "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
    write(tmp_path, "/sys/kernel/btf/vmlinux", "")
    for name in ("cali_v4_state", "cali_v4_routes", "other"):
        write(tmp_path, f"{dp.BPF_MAP_DIR}/{name}", "")
    bpf = dp.read_bpf(str(tmp_path), {"release": "5.15.0", "version": [5, 15, 0]})
    assert bpf == {"bpffs": True, "bpffs_mounts": ["/sys/fs/bpf"], "cgroup2": ["/sys/fs/cgroup"], "btf": True,
                   "kernel_supported": True, "maps": 2, "map_examples": ["cali_v4_routes", "cali_v4_state"]}
    old = dp.read_bpf(str(tmp_path / "none"), {"release": "4.15.0-20-generic", "version": [4, 15, 0]})
    assert (old["bpffs"], old["btf"], old["kernel_supported"], old["maps"]) == (False, False, False, 0)
    rhel = dp.read_bpf(str(tmp_path / "none"), {"release": "4.18.0-372.el8", "version": [4, 18, 0]})
    assert rhel["kernel_supported"] is True


# --- WireGuard ------------------------------------------------------------------------------------------

PRIV = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PUB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
PEER1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
# `wg show wireguard.cali dump` as wireguard-tools prints it (show.c dump_print): the interface line
# (private key, public key, listen port, fwmark), then per peer public key, preshared key, endpoint,
# allowed ips, latest handshake, rx, tx, persistent keepalive; tab-separated.
WG_DUMP = (f"{PRIV}\t{PUB}\t51820\t0x100000\n"
           f"{PEER1}\t(none)\t192.0.2.12:51820\t198.18.2.0/26,198.18.2.1/32\t1700000000\t123456\t654321\toff\n"
           f"{PEER2}\t(none)\t192.0.2.13:51820\t198.18.3.0/26\t0\t0\t1480\toff\n")


def test_wg_dump_never_keeps_the_private_key():
    dump = dp.parse_wg_dump(WG_DUMP)
    assert PRIV not in json.dumps(dump)
    assert (dump["public_key"], dump["listen_port"], dump["fwmark"]) == (PUB, 51820, "0x100000")
    assert dump["peers"][0] == {"public_key": PEER1, "preshared_key": False, "endpoint": "192.0.2.12:51820",
                                "endpoint_ip": "192.0.2.12", "allowed_ips": ["198.18.2.0/26", "198.18.2.1/32"],
                                "latest_handshake": 1700000000, "rx": 123456, "tx": 654321, "keepalive": None}
    assert (dump["peers"][1]["latest_handshake"], dump["peers"][1]["tx"]) == (0, 1480)
    six = dp.parse_wg_dump(f"(none)\t{PUB}\t51821\toff\n{PEER1}\t(none)\t[2001:db8::12]:51821\t(none)\t0\t0\t0\t25\n")
    assert (six["fwmark"], six["peers"][0]["endpoint_ip"], six["peers"][0]["allowed_ips"],
            six["peers"][0]["keepalive"]) == (None, "2001:db8::12", [], 25)
    assert dp.parse_wg_dump("") is None


def test_wireguard_is_read_only_when_its_device_exists():
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, WG_DUMP, ""
    links = [{"name": "eth0", "mtu": 1500}, {"name": "wireguard.cali", "mtu": 1440, "up": True}]
    out = dp.read_wireguard(links, run=run, wg="/usr/bin/wg", now=1700000100, root="/nonexistent")
    assert calls == [["/usr/bin/wg", "show", "wireguard.cali", "dump"]]
    assert out["devices"]["wireguard.cali"]["dump"]["public_key"] == PUB
    assert dp.read_wireguard(links[:1], run=run, wg="/usr/bin/wg")["devices"] == {} and len(calls) == 1
    assert dp.read_wireguard(links, run=run, wg=None)["devices"]["wireguard.cali"]["error"] == "wg not found"


# --- MTU -------------------------------------------------------------------------------------------------

def test_felix_host_mtu_and_pod_mtu():
    links = [{"name": "lo", "mtu": 65536, "operstate": "UNKNOWN"}, {"name": "eth0", "mtu": 1500, "operstate": "UP"},
             {"name": "ens5", "mtu": 9001, "operstate": "UP"}, {"name": "eth1", "mtu": 1400, "operstate": "DOWN"},
             {"name": "bond0", "mtu": 9000, "operstate": "UP"}, {"name": "vxlan.calico", "mtu": 1450,
                                                                 "operstate": "UNKNOWN"}]
    host, matched = dp.felix_host_mtu(links)
    assert host == 1500 and [m["name"] for m in matched] == ["eth0", "ens5", "eth1"]
    assert dp.felix_host_mtu(links, "^bond")[0] == 9000
    assert dp.felix_host_mtu(links, "^nothing$")[0] == dp.DEFAULT_HOST_MTU
    assert dp.felix_pod_mtu(1500, ["vxlan"]) == 1450
    assert dp.felix_pod_mtu(1500, ["vxlan", "wireguard"]) == 1440
    assert dp.felix_pod_mtu(9000, ["ipip"], {"ipip": 1480}) == 1480
    assert dp.felix_pod_mtu(1500, []) == 1500


# --- the overlay and the firewall walk -------------------------------------------------------------------

def snapshot(**devices):
    links = [{"index": 2, "name": "eth0", "kind": "veth", "mtu": 1500, "operstate": "UP"}]
    fdb, routes = [], []
    if "vxlan" in devices:
        links.append({"index": 5, "name": "vxlan.calico", "kind": "vxlan", "mtu": 1450,
                      "vxlan": {"vni": 4096, "port": devices["vxlan"], "local": "192.0.2.11", "link": 2}})
        fdb = [{"index": 5, "dst": ip, "lladdr": "66:00:00:00:00:0" + ip[-1]} for ip in ("192.0.2.13", "192.0.2.12")]
    if "ipip" in devices:
        links.append({"index": 6, "name": "tunl0", "kind": "ipip", "mtu": 1480})
        routes = [{"dst": "198.18.2.0/26", "gateway": "192.0.2.12", "dev": "tunl0"},
                  {"dst": "198.18.3.0/26", "gateway": "192.0.2.13", "dev": "tunl0"}]
    return {"links": links, "fdb": fdb, "routes": routes}


def test_overlay_devices_and_their_peers():
    snap = snapshot(vxlan=4790, ipip=True)
    assert dp._encaps(snap) == {"vxlan": ("vxlan.calico", 4790, 4), "ipip": ("tunl0", None, 4)}
    assert [str(p) for p in dp.overlay_peers(snap, "vxlan.calico", 4)] == ["192.0.2.12", "192.0.2.13"]
    assert [str(p) for p in dp.overlay_peers(snap, "tunl0", 4)] == ["192.0.2.12", "192.0.2.13"]
    # the lab's IPIP-shaped tunl0 is a VXLAN device: its packets are VXLAN, and so is its flow
    lab = {"links": [{"index": 6, "name": "tunl0", "kind": "vxlan", "vxlan": {"port": 4789}}]}
    assert dp._encaps(lab) == {"vxlan": ("tunl0", 4789, 4)}


def nft_runner(doc):
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, json.dumps(doc), ""
    return run, calls


def test_overlay_firewall_runs_nft_only_with_a_host_firewall_and_names_the_drops():
    chains, rules = recorded_nft()
    summary = {"chains": chains, "host_firewall": dp.host_firewall(chains, rules)}
    run, calls = nft_runner(REC["nftables"]["nft_json"])
    snap = snapshot(vxlan=4789)
    walk = dp.overlay_firewall(snap, summary, {}, {}, run=run, nft="/usr/sbin/nft",
                               local=[dp.ipaddress.ip_address("192.0.2.11")])
    assert walk["checked"] and calls == [["/usr/sbin/nft", "-j", "list", "ruleset"]]
    blocked = walk["flows"]["vxlan"]["blocking"]
    assert sorted(blocked) == ["192.0.2.12", "192.0.2.13"]
    # .12: the host firewall's own drop, then firewalld's zone; .13: firewalld's zone only
    rules12 = {(r["table"], r["chain"], r["rule"]) for r in blocked["192.0.2.12"]}
    assert ("filter", "input", "ip saddr 192.0.2.12 udp dport 4789 counter drop") in rules12
    zone = [r for r in blocked["192.0.2.13"] if r["table"] == "firewalld"]
    assert {(r["chain"], r["rule"], r["firewalld_zone"], r["certain"]) for r in zone} == {
        ("filter_IN_public", "reject with icmpx admin-prohibited", "public", True)}
    assert blocked["192.0.2.13"][0]["packets"] == ["VXLAN from 192.0.2.13 to port 4789"]

    for no_fw in ({"chains": chains, "host_firewall": []}, None):
        run, calls = nft_runner({})
        walk = dp.overlay_firewall(snap, no_fw, {}, {}, run=run, nft="/usr/sbin/nft")
        assert not walk["checked"] and calls == []
    assert dp.overlay_firewall({"links": []}, summary, {}, {}, run=run, nft="nft")["reason"] == "no overlay peers"


def test_flows_packets_and_rules():
    peers, _local = fw.check_params(["192.0.2.12", "2001:db8::12"], 1)
    vxlan = fw.flow("vxlan", 4790)
    assert vxlan["marker"] == "netdoctor.calico: VXLAN with Calico peers"
    pkts = fw.flow_packets(vxlan, peers)
    assert [(p["hook"], p["what"], p["dport"], p["fields"]["ct state"][1]) for p in pkts] == [
        ("input", "VXLAN from 192.0.2.12 to port 4790", ("n", 4790, 4790), "new"),
        ("output", "VXLAN to 192.0.2.12 port 4790", ("n", 4790, 4790), "new")]
    ipip = fw.flow_packets(fw.flow("ipip"), peers[:1])
    assert {p["what"] for p in ipip} == {"IPIP from 192.0.2.12", "IPIP from 192.0.2.12 (established)",
                                         "IPIP to 192.0.2.12", "IPIP to 192.0.2.12 (established)"}
    chain = {"family": "inet", "hook": "input", "chain": "input"}
    assert [fw.render_rule(r) for r in fw.flow_rules(chain, fw.flow("ipip"), peers)] == [
        'ip saddr 192.0.2.12 meta l4proto 4 accept comment "netdoctor.calico: IPIP with Calico peers"']
    assert [fw.render_rule(r) for r in fw.flow_rules(dict(chain, hook="output"), fw.flow("wireguard-v6"), peers)] == [
        'ip6 daddr 2001:db8::12 udp dport 51821 accept comment "netdoctor.calico: WireGuard IPv6 with Calico peers"']
    with pytest.raises(ValueError, match="unknown flow"):
        fw.flow("geneve")


def rs_of(text_rules, family="inet", table="filter", policy="accept"):
    """A parsed ruleset with one input base chain holding rules given as nft JSON expression lists."""
    return {"chains": {(family, table, "input"): {
        "family": family, "table": table, "chain": "input", "hook": "input", "type": "filter", "prio": 0,
        "policy": policy,
        "rules": [{"handle": i + 2, "expr": e, "comment": c} for i, (e, c) in enumerate(text_rules)]}},
        "sets": {}}


def match(proto, field, right):
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": field}}, "right": right}}


def test_each_flow_is_judged_by_its_own_protocol():
    peers, _checks = fw.check_params(["192.0.2.12"], 1)
    rs = rs_of([([match("udp", "dport", 4789), {"drop": None}], None),
                ([{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "ipip"}}, {"drop": None}],
                 None)])
    # "ipip" is protocol 94: it does not drop Calico's IPIP (protocol 4); the udp drop does not either
    assert fw.plan(rs, peers, spec=fw.flow("ipip"))["blocking"] == []
    assert [r["handle"] for r in fw.plan(rs, peers, spec=fw.flow("vxlan"))["blocking"]] == [2]
    assert fw.plan(rs, peers, spec=fw.flow("wireguard"))["blocking"] == []
    # a policy drop stops every flow; an accept of established traffic lets only answers through
    closed = rs_of([([{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "established"}},
                      {"accept": None}], None)], policy="drop")
    assert [r["packets"] for r in fw.plan(closed, peers, spec=fw.flow("wireguard"))["blocking"]] == [
        ["WireGuard from 192.0.2.12 port 51820 to port 51820"]]
    assert fw.plan(closed, peers, spec=fw.flow("vxlan"))["blocking"][0]["packets"] == [
        "VXLAN from 192.0.2.12 to port 4789"]


def test_flows_keep_their_own_rules_and_are_idempotent_together():
    peers, _checks = fw.check_params(["192.0.2.12", "192.0.2.13"], 1)
    rs = rs_of([], policy="drop")
    current = rs
    for name in ("bgp", "vxlan", "ipip"):
        planned = fw.plan(current, peers, spec=fw.flow(name))
        assert planned["changes"], name
        current = fw.simulate(current, planned["changes"])
    handles = iter(range(100, 200))                        # as nft gives them handles
    for chain in current["chains"].values():
        for rule in chain["rules"]:
            rule["handle"] = rule["handle"] or next(handles)
    for name in ("bgp", "vxlan", "ipip"):                  # each flow's rules stay where they are
        again = fw.plan(current, peers, spec=fw.flow(name))
        assert (again["changes"], again["blocking"]) == ([], []), name
    # an IPIP rule as nft lists it back ("ipencap") is the module's own rule
    listed = copy.deepcopy(current)
    for chain in listed["chains"].values():
        for rule in chain["rules"]:
            for e in rule["expr"]:
                if (e.get("match") or {}).get("right") == 4:
                    e["match"]["right"] = "ipencap"
    assert fw.plan(listed, peers, spec=fw.flow("ipip"))["changes"] == []
    gone = fw.plan(current, [], state="absent", spec=fw.flow("vxlan"))
    after = fw.simulate(current, gone["changes"])
    assert {r["comment"] for c in after["chains"].values() for r in c["rules"]} == {
        fw.MARKER, "netdoctor.calico: IPIP with Calico peers"}


def test_firewalld_is_judged_never_changed_and_gets_commands():
    peers, _checks = fw.check_params(["192.0.2.12", "2001:db8::12"], 1)
    rs = fw.parse(REC["nftables"]["nft_json"])
    local = fw.check_params(["192.0.2.12"], 1, ["192.0.2.11"])[1]   # kube-proxy's KUBE-FIREWALL: -d 127.0.0.0/8
    planned = fw.plan(rs, peers[:1], local=local, spec=fw.flow("vxlan"))
    assert {(c["table"], c["chain"]) for c in planned["changes"]} == {("filter", "input")}
    assert any(r.get("firewalld_zone") == "public" for r in planned["blocking"])
    assert fw.firewalld_zone("filter_IN_public_allow") == "public" and fw.firewalld_zone("filter_INPUT") is None
    assert fw.firewalld_zone("filter_IN_policy_allow-host-ipv6") == "allow-host-ipv6"
    assert fw.firewalld_commands(fw.flow("vxlan"), peers, "public") == [
        "firewall-cmd --permanent --zone=public --add-rich-rule='rule family=\"ipv4\" source address=\"192.0.2.12\" "
        "port port=\"4789\" protocol=\"udp\" accept'", "firewall-cmd --reload"]
    assert fw.firewalld_commands(fw.flow("ipip"), peers, None)[0].endswith(
        "source address=\"192.0.2.12\" protocol value=\"4\" accept'")


# --- assembly ---------------------------------------------------------------------------------------------

def test_dataplane_facts_assembles_without_a_kernel(monkeypatch, tmp_path):
    chains, rules = recorded_nft()
    monkeypatch.setattr(dp, "read_nftables", lambda: {"chains": chains, "sets": [], "host_firewall": []})
    monkeypatch.setattr(dp, "read_ipset_names", lambda: [])

    def refused(name):
        raise OSError(1, "Operation not permitted")
    monkeypatch.setattr(dp, "read_features", refused)
    write(tmp_path, "/proc/sys/kernel/osrelease", "6.18.44\n")
    write(tmp_path, "/var/lib/calico/mtu", "1450")
    snap = snapshot(vxlan=4789)
    out = dp.dataplane_facts(snap, {"workloads": [{"interface": "cali1a2b3c4d5e6", "ip": "198.18.1.1"}]}, {},
                             root=str(tmp_path), proc=str(tmp_path / "proc"), local_addresses=["192.0.2.11/26"])
    assert set(out) == {"kernel", "felix_env", "conntrack", "vxlan", "felix_health", "felix_programming", "bpf",
                        "wireguard", "mtu_file", "overlay_firewall", "errors"}
    assert out["kernel"] == {"release": "6.18.44", "version": [6, 18, 44]}
    assert out["vxlan"]["vxlan.calico"]["error"].startswith("PermissionError") or \
        "Operation not permitted" in out["vxlan"]["vxlan.calico"]["error"]
    assert out["vxlan"]["vxlan.calico"]["parent"] == "eth0"
    assert out["felix_health"]["probed"] is False
    programming = out["felix_programming"]
    assert programming["backend"] == "nftables" and programming["workloads_missing_count"] == 0
    assert out["overlay_firewall"]["reason"] == "no host firewall in front of the overlay"
    assert out["mtu_file"]["value"] == 1450


def test_felix_programming_follows_the_mode_not_the_device_kind():
    chains, _rules = recorded_nft()
    summary = {"chains": chains, "sets": dp.decode_sets(chunks(REC["nftables"]["sets"]))}
    workloads = [{"interface": "cali1a2b3c4d5e6", "ip": "198.18.1.2"},
                 {"interface": "cali9f8e7d6c5b4", "ip": "198.18.1.3"}]
    vxlan = dp.felix_programming(summary, [], workloads, {"mode": "vxlan", "vxlan": {"device": "vxlan.calico"}})
    assert (vxlan["backend"], vxlan["sets_wanted"], vxlan["sets_missing"]) == ("nftables", ["cali40all-vxlan-net"], [])
    assert vxlan["workloads_missing_chains"] == [{"interface": "cali9f8e7d6c5b4", "ip": "198.18.1.3", "missing": [
        "cali-tw-cali9f8e7d6c5b4", "cali-fw-cali9f8e7d6c5b4"]}]
    # IPIP mode (whatever tunl0's kind: the lab's is VXLAN-shaped): the hosts set, here an ipset
    ipip = dp.felix_programming(summary, ["cali40all-hosts-net"], workloads[:1], {"mode": "ipip", "vxlan": None})
    assert (ipip["sets_wanted"], ipip["sets_missing"], ipip["workloads_missing_count"]) == (
        ["cali40all-hosts-net"], [], 0)
    assert dp.felix_programming(summary, None, [], {"mode": "ipip"})["sets_missing"] == ["cali40all-hosts-net"]
    # a tunl0 the kernel made when ipip loaded, in BGP mode, wants nothing
    assert dp.felix_programming(summary, [], [], {"mode": "bgp"})["sets_wanted"] == []
    assert dp.felix_programming(None, [], workloads, {})["checked"] is False
