"""BIRD control-socket parsing, on replies captured from a real BIRD 1.6.8 (fixtures/bird/).

The captures come from bird/bird6 1.6.8 in a scratch network namespace with only lo: two BIRDs
peering over documentation addresses on lo (Mesh_192_0_2_12, Mesh_2001_db8__12: Established) and
protocols towards documentation addresses that never connect.
"""

import os

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _bird as bird

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "bird")


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


def test_parse_reply_codes_and_continuations():
    lines = bird.parse_reply(fixture("v4_show_status.txt"))
    assert lines == [
        (1000, "BIRD 1.6.8"),
        (1011, "Router ID is 192.0.2.11"),
        (1011, "Current server time is 2026-11-21 07:40:39"),
        (1011, "Last reboot on 2026-11-21 07:40:22"),
        (1011, "Last reconfiguration on 2026-11-21 07:40:22"),
        (13, "Daemon is up and running"),
    ]
    assert bird.parse_reply(fixture("banner.txt")) == [(1, "BIRD 1.6.8 ready.")]
    with pytest.raises(bird.BirdReplyError, match="unexpected line"):
        bird.parse_reply("BIRD 1.6.8 ready.\n")


@pytest.mark.parametrize(("name", "router_id"), [("v4_show_status.txt", "192.0.2.11"),
                                                 ("v6_show_status.txt", "192.0.2.11")])
def test_parse_status(name, router_id):
    status = bird.parse_status(fixture(name))
    assert status["version"] == "1.6.8"
    assert status["router_id"] == router_id
    assert status["status"] == "Daemon is up and running"
    assert status["last_reboot"].startswith("2026-11-21 ")


def test_parse_show_protocols():
    protocols = bird.parse_protocols(fixture("v4_show_protocols.txt"))
    assert [(p["name"], p["proto"], p["state"]) for p in protocols] == [
        ("device1", "Device", "up"), ("kernel1", "Kernel", "up"), ("direct1", "Direct", "up"),
        ("static1", "Static", "up"), ("Mesh_192_0_2_12", "BGP", "up"), ("Mesh_198_51_100_2", "BGP", "start"),
        ("Mesh_198_51_100_3", "BGP", "start"), ("Node_203_0_113_7_port_1179", "BGP", "start"),
        ("Global_192_0_2_254", "BGP", "down"),
    ]
    assert protocols[4] == {"name": "Mesh_192_0_2_12", "proto": "BGP", "table": "master", "state": "up",
                            "since": "07:40:23", "info": "Established"}
    assert protocols[5]["info"] == "Active Socket: Network is unreachable"
    assert protocols[8]["info"] == ""


def test_parse_show_protocols_all_details():
    protocols = {p["name"]: p for p in bird.parse_protocols(fixture("v4_show_protocols_all.txt"))}
    assert protocols["static1"]["routes"] == {"imported": 2, "filtered": 0, "exported": 0, "preferred": 2}
    up = protocols["Mesh_192_0_2_12"]
    assert (up["bgp_state"], up["neighbor_address"], up["neighbor_as"], up["neighbor_id"], up["source_address"]) == (
        "Established", "192.0.2.12", 64512, "192.0.2.12", "192.0.2.11")
    assert up["routes"]["imported"] == 1
    assert up["description"] == "Connection to BGP peer"
    down = protocols["Mesh_198_51_100_2"]
    assert (down["bgp_state"], down["last_error"]) == ("Active", "Socket: Network is unreachable")
    assert protocols["Global_192_0_2_254"]["bgp_state"] == "Down"
    assert "routes" not in protocols["Global_192_0_2_254"]


def test_peers_as_calicoctl_shows_them():
    rows = bird.peers(bird.parse_protocols(fixture("v4_show_protocols_all.txt")))
    assert [(r["address"], r["type"], r["state"], r["info"], r["established"]) for r in rows] == [
        ("192.0.2.12", "node-to-node mesh", "up", "Established", True),
        ("198.51.100.2", "node-to-node mesh", "start", "Active Socket: Network is unreachable", False),
        ("198.51.100.3", "node-to-node mesh", "start", "Passive", False),
        ("203.0.113.7", "node specific", "start", "Active Socket: Network is unreachable", False),
        ("192.0.2.254", "global", "down", "", False),
    ]
    assert rows[3]["port"] == 1179
    # from plain "show protocols" the BGP state comes from the INFO column
    plain = bird.peers(bird.parse_protocols(fixture("v4_show_protocols.txt")))
    assert [r["bgp_state"] for r in plain] == ["Established", "Active", "Passive", "Active", None]
    assert plain[0]["neighbor_address"] is None


def test_ipv6_peers():
    rows = bird.peers(bird.parse_protocols(fixture("v6_show_protocols_all.txt")))
    assert [(r["name"], r["address"], r["type"], r["bgp_state"]) for r in rows] == [
        ("Mesh_2001_db8__12", "2001:db8::12", "node-to-node mesh", "Established"),
        ("Node_2001_db8_ffff__1", "2001:db8:ffff::1", "node specific", "Active"),
    ]
    assert rows[0]["neighbor_address"] == "2001:db8::12"


@pytest.mark.parametrize(("name", "peer"), [
    ("Mesh_192_168_56_101", {"type": "node-to-node mesh", "address": "192.168.56.101", "port": None}),
    ("Mesh_fd80_24e2_f998_72d7__2", {"type": "node-to-node mesh", "address": "fd80:24e2:f998:72d7::2", "port": None}),
    ("Global_10_0_0_1_port_1179", {"type": "global", "address": "10.0.0.1", "port": 1179}),
    ("Node_2001_db8__1_port_180", {"type": "node specific", "address": "2001:db8::1", "port": 180}),
    ("Node_rr1", {"type": "node specific", "address": None, "port": None}),
    ("kernel1", None),
    ("Meshy_1_2_3_4", None),
])
def test_peer_from_name(name, peer):
    assert bird.peer_from_name(name) == peer


def test_since_with_date_and_time_and_foreign_bgp_protocol():
    text = ("2002-name     proto    table    state  since       info\n"
            "1002-upstream BGP      master   up     2026-11-20 23:59:59  Established\n"
            "1006-  BGP state:          Established\n"
            "     Neighbor address: 203.0.113.1\n"
            "0000 \n")
    protocols = bird.parse_protocols(text)
    assert protocols[0]["since"] == "2026-11-20 23:59:59"
    assert protocols[0]["info"] == "Established"
    [row] = bird.peers(protocols)
    assert (row["type"], row["address"], row["established"]) == (None, "203.0.113.1", True)


@pytest.mark.parametrize(("text", "message"), [
    (fixture("error_syntax.txt"), "9001 syntax error"),
    (fixture("error_not_a_protocol.txt"), "9002 Nope is not a protocol"),
    ("2002-name proto table state since\n0000 \n", "unknown BIRD protocol table heading"),
    ("1002-x\n0000 \n", "fewer than 5 columns"),
])
def test_protocol_errors(text, message):
    with pytest.raises(bird.BirdReplyError, match=message):
        bird.parse_protocols(text)


def test_facts_from_replies():
    replies = {"banner": fixture("banner.txt"), "show status": fixture("v4_show_status.txt"),
               "show protocols all": fixture("v4_show_protocols_all.txt")}
    facts = bird.facts_from_replies("/var/run/calico/bird.ctl", replies)
    assert {k: facts[k] for k in ("socket", "available", "error", "version", "router_id", "status")} == {
        "socket": "/var/run/calico/bird.ctl", "available": True, "error": None, "version": "1.6.8",
        "router_id": "192.0.2.11", "status": "Daemon is up and running"}
    assert len(facts["protocols"]) == 9
    assert [p["name"] for p in facts["peers"]] == [p["name"] for p in facts["protocols"][4:]]


def test_facts_keep_what_parsed_and_report_the_rest():
    replies = {"banner": fixture("banner.txt"), "show status": fixture("error_syntax.txt"),
               "show protocols": fixture("v6_show_protocols.txt")}
    facts = bird.facts_from_replies("/var/run/calico/bird6.ctl", replies)
    assert facts["available"] is True
    assert facts["error"] == "show status: 9001 syntax error"
    assert facts["version"] == "1.6.8"  # from the banner
    assert facts["router_id"] is None
    assert [p["address"] for p in facts["peers"]] == ["2001:db8::12", "2001:db8:ffff::1"]
