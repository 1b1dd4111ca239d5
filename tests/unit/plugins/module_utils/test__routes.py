"""calico_routes' pure core: map validation, which drift actions a run takes, SRC001 source-route
planning and the ip-route-style diff, on seed 001's fleet and small hand-made tables."""

import copy

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _contract, _routes
from ansible_collections.netdoctor.calico.plugins.module_utils._calico_view import route_text
from ansible_collections.netdoctor.calico.tests.unit.fixtures.fleet import (
    BIRD,
    BOOT,
    healthy,
    route,
    seed_case1,
    seed_fleet,
)

KERNEL, STATIC, FELIX = 2, 4, 80
CALICO = _routes.parse_protocols(_routes.DEFAULT_PROTOCOLS)


def all_routes(fact):
    return [r for key in ("local_blocks", "workloads", "tunnel", "remote_blocks", "other")
            for r in fact["routes"][key]]


def links(*names):
    return [{"index": i + 1, "name": n} for i, n in enumerate(names)]


# --- protocols and ownership --------------------------------------------------------------------

def test_protocols_by_name_or_number():
    assert {BIRD, FELIX, BOOT} == CALICO
    assert _routes.parse_protocols(["bird", "80", 4, " Static "]) == {BIRD, FELIX, STATIC}
    for bad in (["birds"], ["256"], ["-1"], []):
        with pytest.raises(ValueError, match="protocols"):
            _routes.parse_protocols(bad)


@pytest.mark.parametrize(("protocol", "dev", "mine"), [
    (BIRD, "tunl0", True), (BIRD, "eth0", True), (FELIX, "eth0", True), (BOOT, "tunl0", True),
    (BOOT, "vxlan.calico", True), (BOOT, "eth0", False), (BOOT, "cali1234567890a", False), (STATIC, "tunl0", False),
])
def test_boot_routes_are_calicos_only_on_its_tunnel_devices(protocol, dev, mine):
    assert _routes.owned({"protocol": protocol, "dev": dev}, CALICO) is mine


# --- the expected map -----------------------------------------------------------------------------

def seed_map():
    return _contract.expected_map(seed_fleet())


def test_a_map_from_expected_map_is_valid_and_gets_its_prefixlens():
    expected = seed_map()
    assert _routes.check_map(expected, "node3") == expected
    del expected["prefixlens"]
    assert _routes.check_map(expected, "node3")["prefixlens"] == [26]
    for mode in ("ipip", "vxlan", "bgp"):
        _routes.check_map(_contract.expected_map(healthy(mode)), "node1")


def edited(change):
    expected = seed_map()
    change(expected)
    return expected


@pytest.mark.parametrize(("expected", "host", "message"), [
    ([], "node1", "expected_map must be a dict"),
    ({"mode": "ipip", "nodes": {}}, "node1", "expected_map has no blocks"),
    (edited(lambda m: m.update(mode="calico")), "node1", "unknown mode 'calico'"),
    (seed_map(), "node9", "host 'node9' is not a node of expected_map (nodes: node1, node2, node3, node4, node5)"),
    (edited(lambda m: m["nodes"]["node2"].update(ip="192.168.0.1111")), "node1", "node 'node2' ip: '192.168.0.1111'"),
    (edited(lambda m: m["nodes"]["node2"].update(ip="2001:DB8::1")), "node1", "write '2001:DB8::1' as '2001:db8::1'"),
    (edited(lambda m: m["blocks"].update({"10.122.17.65/26": m["blocks"].pop("10.122.17.64/26")})), "node1",
     "'10.122.17.65/26' is not a network in CIDR form"),
    (edited(lambda m: m["blocks"].update({"10.122.17.64/026": m["blocks"].pop("10.122.17.64/26")})), "node1",
     "write '10.122.17.64/026' as '10.122.17.64/26'"),
    (edited(lambda m: m["nodes"]["node2"].update(blocks=["10.122.124.128"])), "node1", "write '10.122.124.128' as"),
    (edited(lambda m: m["blocks"].update({"0.0.0.0/0": {"owner": None, "next_hop": None, "device": "tunl0",
                                                        "onlink": True}})), "node1", "cannot be a default route"),
    (edited(lambda m: m["blocks"]["10.122.17.64/26"].update(owner="node9")), "node1", "owner 'node9' is not a node"),
    (edited(lambda m: m["blocks"]["10.122.17.64/26"].update(next_hop="2001:db8::1")), "node1",
     "next hop 2001:db8::1 is not an IPv4 address"),
    (edited(lambda m: m["blocks"]["10.122.17.64/26"].update(next_hop="192.168.0.110")), "node1",
     "next_hop '192.168.0.110' is not owner node1's ip '192.168.3.110'"),
    (edited(lambda m: m["blocks"]["10.122.17.64/26"].update(device="eth0", onlink=False)), "node1",
     "a ipip block route is dev tunl0 onlink, not dev eth0"),
    (edited(lambda m: m["blocks"]["10.122.17.64/26"].update(device="tunl0 x")), "node1", "is not an interface name"),
    (edited(lambda m: m.update(prefixlens=[24])), "node1", "must list every block length [26]"),
    (edited(lambda m: m.update(pools=["10.123.0.0/15"])), "node1", "pool: '10.123.0.0/15' is not a network"),
    (edited(lambda m: m.update(complete="yes")), "node1", "complete must be true or false"),
])
def test_a_bad_map_is_named_precisely(expected, host, message):
    with pytest.raises(ValueError) as err:
        _routes.check_map(expected, host)
    assert message in str(err.value)


def test_modes_without_block_routes_skip_the_shape_checks():
    expected = seed_map()
    expected["mode"] = "wireguard"
    assert _routes.check_map(expected, "node1")["mode"] == "wireguard"


# --- the plan -------------------------------------------------------------------------------------

def drift_of(facts, host, edit=None):
    routes = all_routes(facts[host])
    if edit:
        edit(routes)
    return _contract.route_drift(routes, _contract.expected_map(facts), host), routes


def test_seed_case1_is_replaced_in_place_as_bird_would_write_it():
    drift, routes = drift_of(seed_case1(), "node3")
    actions, skipped, replaced = _routes.plan(drift, routes, links("eth0", "eth1", "tunl0"), protocols=CALICO)
    assert actions == {"replace": [{"dst": "10.122.17.64/26", "type": "unicast", "gateway": "192.168.3.110",
                                    "dev": "tunl0", "onlink": True, "protocol": BIRD}], "add": [], "delete": []}
    assert skipped == []
    assert replaced["10.122.17.64/26"]["gateway"] == "10.122.127.128"


def test_switches_turn_actions_into_skipped_ones():
    def edit(routes):
        routes[:] = [r for r in routes if r["dst"] != "10.122.124.128/26"]
        routes.append(route("10.122.200.0/26", "192.168.3.120", "tunl0", BIRD, onlink=True))
    facts = seed_case1()
    drift, routes = drift_of(facts, "node3", edit)
    actions, skipped, _replaced = _routes.plan(drift, routes, links("eth0", "tunl0"), protocols=CALICO,
                                               fix_next_hops=False, add_missing=False, remove_orphans=False)
    assert actions == {"add": [], "replace": [], "delete": []}
    assert sorted((s["action"], s["route"]["dst"], s["reason"]) for s in skipped) == [
        ("add", "10.122.124.128/26", "add_missing is false"),
        ("delete", "10.122.200.0/26", "remove_orphans is false"),
        ("replace", "10.122.17.64/26", "fix_next_hops is false")]
    actions, skipped, _replaced = _routes.plan(drift, routes, links("eth0", "tunl0"), protocols=CALICO)
    assert [len(actions[k]) for k in ("replace", "add", "delete")] == [1, 1, 1] and skipped == []


def test_a_foreign_route_is_left_alone_unless_touch_foreign():
    def edit(routes):
        target = next(r for r in routes if r["dst"] == "10.122.17.64/26")
        target.update(gateway="192.168.0.1", dev="eth0", onlink=False, protocol=STATIC)
    drift, routes = drift_of(seed_fleet(), "node2", edit)
    actions, skipped, _replaced = _routes.plan(drift, routes, links("eth0", "tunl0"), protocols=CALICO)
    assert actions["replace"] == []
    assert skipped[0]["reason"] == "the route there is not Calico's (proto static on eth0); touch_foreign is false"
    actions, skipped, replaced = _routes.plan(drift, routes, links("eth0", "tunl0"), protocols=CALICO,
                                              touch_foreign=True)
    assert [a["dst"] for a in actions["replace"]] == ["10.122.17.64/26"] and skipped == []
    assert replaced["10.122.17.64/26"]["protocol"] == STATIC


def test_protocols_bound_what_is_written_and_what_is_changed():
    drift, routes = drift_of(seed_case1(), "node3")
    # As Felix only: the replacement is written as BIRD, which is not allowed.
    actions, skipped, _replaced = _routes.plan(drift, routes, links("tunl0"), protocols=frozenset({FELIX}))
    assert actions["replace"] == []
    assert "writing a proto bird route on tunl0 is outside protocols" in skipped[0]["reason"]
    # As BIRD only: the route there is a hand-made boot route, which is not BIRD's.
    actions, skipped, _replaced = _routes.plan(drift, routes, links("tunl0"), protocols=frozenset({BIRD}))
    assert actions["replace"] == [] and "not Calico's (proto boot on tunl0)" in skipped[0]["reason"]


def test_a_missing_device_and_the_default_route_are_never_written():
    drift, routes = drift_of(seed_case1(), "node3")
    _actions, skipped, _replaced = _routes.plan(drift, routes, links("eth0"), protocols=CALICO)
    assert skipped[0]["reason"] == "device tunl0 does not exist on this node"
    forged = {"actions": {"add": [{"dst": "default", "type": "unicast", "gateway": "192.0.2.1", "dev": "eth0",
                                   "onlink": False, "protocol": BIRD}], "replace": [], "delete": []}}
    actions, skipped, _replaced = _routes.plan(forged, [], links("eth0"), protocols=CALICO, touch_foreign=True)
    assert actions["add"] == [] and skipped[0]["reason"] == "the default route is never changed"


def test_replacements_and_deletes_carry_the_metric_of_the_route_they_change():
    def edit(routes):
        next(r for r in routes if r["dst"] == "10.122.17.64/26")["metric"] = 10
        routes.append(route("10.122.200.0/26", "192.168.3.120", "tunl0", BIRD, onlink=True, metric=20))
        routes.append(route("10.122.200.0/26", "192.168.3.120", "tunl0", BIRD, onlink=True, metric=30))
    drift, routes = drift_of(seed_case1(), "node3", edit)
    actions, _skipped, _replaced = _routes.plan(drift, routes, links("tunl0"), protocols=CALICO)
    assert actions["replace"][0]["metric"] == 10
    assert sorted((a["gateway"], a["metric"]) for a in actions["delete"]) == [("192.168.3.120", 20),
                                                                              ("192.168.3.120", 30)]


def test_the_delete_bound():
    routes = [route(f"10.0.{i}.0/26", "192.0.2.1", "tunl0", BIRD, onlink=True) for i in range(600)]
    routes += [route(f"10.1.{i}.0/26", "192.0.2.1", "eth0", BOOT) for i in range(100)]  # not Calico's
    assert _routes.max_deletes(routes, CALICO) == 60
    assert _routes.max_deletes(routes[:100], CALICO) == 50
    assert _routes.max_deletes(routes, CALICO, given=3) == 3
    actions = {"delete": [{}] * 4}
    assert "deletes 4 routes, more than max_deletes=3" in _routes.delete_limit_error(actions, 3, False)
    assert _routes.delete_limit_error(actions, 3, True) is None
    assert _routes.delete_limit_error(actions, 4, False) is None


def test_verify_names_the_changes_that_did_not_stick():
    drift, routes = drift_of(seed_case1(), "node3")
    actions, _skipped, _replaced = _routes.plan(drift, routes, links("tunl0"), protocols=CALICO)
    assert [f["action"] for f in _routes.verify(actions, routes)] == ["replace"]  # still the old route
    fixed = [r for r in routes if r["dst"] != "10.122.17.64/26"]
    fixed.append(route("10.122.17.64/26", "192.168.3.110", "tunl0", BIRD, onlink=True))
    assert _routes.verify(actions, fixed) == []
    orphan = route("10.122.200.0/26", "192.168.3.120", "tunl0", BIRD, onlink=True)
    failed = _routes.verify({"add": [], "replace": [], "delete": [{**orphan}]}, [*fixed, orphan])
    assert [(f["action"], f["now"]) for f in failed] == [
        ("delete", "10.122.200.0/26 via 192.168.3.120 dev tunl0 proto bird onlink")]


# --- SRC001 ---------------------------------------------------------------------------------------

def seed_node4(extra_routes=(), extra_links=()):
    """Seed 001 case 2 on node4: Calico IP 192.168.3.113 on eth1, node2 (192.168.0.111) on eth0's
    subnet; BIRD's routes and the connected subnets, no default route."""
    facts = seed_fleet()
    fact = facts["node4"]
    lks = [*fact["links"], *extra_links]
    snapshot = {"links": [{k: v for k, v in lk.items() if k != "addresses"} for lk in lks],
                "addresses": [{**a, "index": lk["index"]} for lk in lks for a in lk["addresses"]],
                "routes": [*all_routes(fact), *extra_routes]}
    expected = _contract.expected_map(facts)
    return snapshot, expected


def lookup(dev, src, gateway=None, table=254):
    return {"dev": dev, "prefsrc": src, "gateway": gateway, "table": table}


SEED_LOOKUPS = {"192.168.3.110": lookup("eth1", "192.168.3.113"), "192.168.0.111": lookup("eth0", "192.168.0.113"),
                "192.168.3.112": lookup("eth1", "192.168.3.113"), "192.168.3.114": lookup("eth1", "192.168.3.113")}


def test_peers_are_the_other_nodes_calico_ips():
    _snapshot, expected = seed_node4()
    assert _routes.peers(expected, "node4") == {"192.168.3.110": "node1", "192.168.0.111": "node2",
                                                "192.168.3.112": "node3", "192.168.3.114": "node5"}
    expected["nodes"]["node5"]["ip"] = "2001:db8::5"
    expected["nodes"]["node3"]["ip"] = None
    assert set(_routes.peers(expected, "node4")) == {"192.168.3.110", "192.168.0.111"}


def test_seed_case2_without_a_way_by_eth1_changes_only_the_source():
    snapshot, expected = seed_node4()
    plan = _routes.plan_source_routes(snapshot, "192.168.3.113", _routes.peers(expected, "node4"), SEED_LOOKUPS)
    assert (plan["interface"], plan["ok_peers"], plan["unresolved"]) == ("eth1", 3, [])
    [net] = plan["networks"]
    assert (net["network"], net["action"], net["hosts"], net["before"]) == (
        "192.168.0.0/24", "prepend", ["node2"], ["192.168.0.111 dev eth0 src 192.168.0.113"])
    assert route_text(net["route"]) == "192.168.0.0/24 dev eth0 proto static scope link src 192.168.3.113"
    assert net["overrides"]["protocol"] == KERNEL


@pytest.mark.parametrize(("gateway", "routes"), [
    ("192.168.3.253", ()),                                          # given
    (None, (route("default", "192.168.3.253", "eth1", BOOT),)),     # the seed's final default route via eth1
    (None, (route("192.168.0.0/16", "192.168.3.253", "eth1", STATIC),)),  # any route via eth1 that covers it
])
def test_seed_case2_with_a_router_on_eth1_goes_by_the_calico_interface(gateway, routes):
    snapshot, expected = seed_node4(routes)
    plan = _routes.plan_source_routes(snapshot, "192.168.3.113", _routes.peers(expected, "node4"), SEED_LOOKUPS,
                                      gateway=gateway)
    [net] = plan["networks"]
    assert route_text(net["route"]) == "192.168.0.0/24 via 192.168.3.253 dev eth1 proto static src 192.168.3.113"
    assert net["action"] == "prepend"


def test_an_earlier_source_route_of_ours_is_replaced():
    ours = route("192.168.0.0/24", None, "eth0", STATIC, scope="link", prefsrc="192.168.3.113")
    snapshot, expected = seed_node4([ours])
    snapshot["routes"].insert(0, snapshot["routes"].pop())  # ours is the head at its key
    plan = _routes.plan_source_routes(snapshot, "192.168.3.113", _routes.peers(expected, "node4"), SEED_LOOKUPS,
                                      gateway="192.168.3.253")
    [net] = plan["networks"]
    assert net["action"] == "replace" and net["replaces"] is ours and net["overrides"] is None


def test_a_peer_only_the_default_route_reaches_gets_a_host_route_unless_allowed():
    default = route("default", "192.168.0.253", "eth0", BOOT)
    snapshot, expected = seed_node4([default])
    expected["nodes"]["node2"]["ip"] = "203.0.113.11"
    peers = _routes.peers(expected, "node4")
    lookups = {**SEED_LOOKUPS, "203.0.113.11": lookup("eth0", "192.168.0.113", "192.168.0.253")}
    [net] = _routes.plan_source_routes(snapshot, "192.168.3.113", peers, lookups)["networks"]
    assert (net["network"], net["action"]) == ("203.0.113.11/32", "add")
    assert route_text(net["route"]) == "203.0.113.11 via 192.168.0.253 dev eth0 proto static src 192.168.3.113"
    [net] = _routes.plan_source_routes(snapshot, "192.168.3.113", peers, lookups, allow_default_route=True,
                                       gateway="192.168.3.253")["networks"]
    assert (net["network"], net["action"], net["overrides"]) == ("default", "prepend", default)
    assert route_text(net["route"]) == "default via 192.168.3.253 dev eth1 proto static src 192.168.3.113"


def test_peers_that_cannot_be_given_a_source_route_are_unresolved():
    multipath = route("192.168.0.0/24", None, None, BIRD)
    multipath["multipath"] = [{"gateway": "192.168.3.1", "dev": "eth0"}, {"gateway": "192.168.3.2", "dev": "eth0"}]
    snapshot, expected = seed_node4()
    snapshot["routes"].insert(0, multipath)
    peers = _routes.peers(expected, "node4")
    plan = _routes.plan_source_routes(snapshot, "192.168.3.113", peers, SEED_LOOKUPS)
    assert [(u["host"], "set source_route_gateway" in u["reason"]) for u in plan["unresolved"]] == [("node2", True)]
    policy = {**SEED_LOOKUPS, "192.168.0.111": lookup("eth0", "192.168.0.113", table=100),
              "192.168.3.110": lookup("eth1", "192.168.3.113", table=100),
              "192.168.3.112": lookup("lo", "192.168.3.112", table=255)}
    plan = _routes.plan_source_routes(snapshot, "192.168.3.113", peers, policy)
    assert [u["reason"] for u in plan["unresolved"]] == [
        "192.168.0.111 is looked up in table 100 (a policy rule): a main-table route cannot change it",
        "192.168.3.112 is an address of this node"]
    assert plan["ok_peers"] == 2  # the table-100 lookup with the Calico IP as source is fine


def test_the_calico_ip_must_be_local_and_the_gateway_on_its_interface():
    snapshot, expected = seed_node4()
    with pytest.raises(ValueError, match=r"Calico IP 192.168.3.200 \(expected_map\) is on no local interface"):
        _routes.plan_source_routes(snapshot, "192.168.3.200", {}, {})
    with pytest.raises(ValueError, match=r"source_route_gateway 192.168.0.253 is not on eth1's networks"):
        _routes.plan_source_routes(snapshot, "192.168.3.113", {}, {}, gateway="192.168.0.253")


def test_many_peers_in_one_network_are_one_route_with_a_bounded_list():
    facts = seed_fleet()
    expected = _contract.expected_map(facts)
    for n in range(60):
        expected["nodes"][f"extra{n:02d}"] = {"ip": f"192.168.0.{n + 1}", "tunnel_address": None, "blocks": []}
    snapshot, _expected = seed_node4()
    peers = _routes.peers(expected, "node4")
    lookups = {p: SEED_LOOKUPS.get(p, lookup("eth0", "192.168.0.113")) for p in peers}
    [net] = _routes.plan_source_routes(snapshot, "192.168.3.113", peers, lookups)["networks"]
    assert net["peer_count"] == 61 and len(net["peers"]) == len(net["hosts"]) == _routes.PEERS_SHOWN


def test_lookup_checks_source_and_device():
    want = {"dev": "eth1"}
    assert _routes.lookup_ok(lookup("eth1", "192.168.3.113"), want, "192.168.3.113")
    assert not _routes.lookup_ok(lookup("eth0", "192.168.3.113"), want, "192.168.3.113")
    assert not _routes.lookup_ok(lookup("eth1", "192.168.0.113"), want, "192.168.3.113")
    assert not _routes.lookup_ok(None, want, "192.168.3.113")
    assert _routes.lookup_text("192.0.2.12", None) == "192.0.2.12: no route"
    assert _routes.lookup_text("192.0.2.12", lookup("eth0", "192.0.2.11", "192.0.2.1", 100)) == \
        "192.0.2.12 via 192.0.2.1 dev eth0 table 100 src 192.0.2.11"


# --- diff -------------------------------------------------------------------------------------------

def test_the_diff_shows_only_the_affected_routes_in_table_order():
    stale = route("10.122.17.64/26", "10.122.127.128", "tunl0", BOOT)
    actions = {
        "replace": [{"dst": "10.122.17.64/26", "type": "unicast", "gateway": "192.168.3.110", "dev": "tunl0",
                     "onlink": True, "protocol": BIRD}],
        "add": [{"dst": "10.122.124.128/26", "type": "unicast", "gateway": "192.168.0.111", "dev": "tunl0",
                 "onlink": True, "protocol": BIRD}],
        "delete": [{"dst": "10.122.9.0/26", "type": "unicast", "gateway": "192.168.3.120", "dev": "tunl0",
                    "onlink": True, "protocol": BIRD}],
    }
    kernel = route("192.168.0.0/24", None, "eth0", KERNEL, scope="link", prefsrc="192.168.0.113")
    source = {"networks": [{"route": {"dst": "192.168.0.0/24", "gateway": None, "dev": "eth0", "scope": "link",
                                      "protocol": STATIC, "prefsrc": "192.168.3.113"},
                            "replaces": None, "overrides": kernel}]}
    diff = _routes.diff(actions, {"10.122.17.64/26": stale}, source)
    assert diff["before"].splitlines() == [
        "10.122.9.0/26 via 192.168.3.120 dev tunl0 proto bird onlink",
        "10.122.17.64/26 via 10.122.127.128 dev tunl0",
        "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.113"]
    assert diff["after"].splitlines() == [
        "10.122.17.64/26 via 192.168.3.110 dev tunl0 proto bird onlink",
        "10.122.124.128/26 via 192.168.0.111 dev tunl0 proto bird onlink",
        "192.168.0.0/24 dev eth0 proto static scope link src 192.168.3.113",
        "192.168.0.0/24 dev eth0 proto kernel scope link src 192.168.0.113"]
    assert _routes.diff({"add": [], "replace": [], "delete": []}, {}) == {"before": "", "after": ""}


def test_the_plan_leaves_its_inputs_alone():
    drift, routes = drift_of(seed_case1(), "node3")
    kept = copy.deepcopy((drift, routes))
    _routes.plan(drift, routes, links("tunl0"), protocols=CALICO)
    assert (drift, routes) == kept
