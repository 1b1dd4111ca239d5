"""_probes.probe_targets: which peers each node probes (the audit's probe matrix)."""

from ansible_collections.netdoctor.calico.plugins.plugin_utils import _probes


def _fleet(count, prefix="node", base="192.0.2"):
    return {f"{prefix}{i}": f"{base}.{10 + i}" for i in range(1, count + 1)}


def test_a_small_fleet_probes_every_other_node():
    assert [t["host"] for t in _probes.probe_targets(_fleet(4), "node1", 8)] == ["node2", "node3", "node4"]
    assert _probes.probe_targets(_fleet(4), "node1", 0) == []  # probes off


def test_probes_stay_inside_the_node_s_cluster():
    ips = {**_fleet(3, "east-"), **_fleet(3, "west-", "198.51.100")}
    clusters = {h: h.split("-")[0] for h in ips}
    assert [t["host"] for t in _probes.probe_targets(ips, "east-1", 8, clusters)] == ["east-2", "east-3"]
    # Without cluster names every host is one cluster.
    assert len(_probes.probe_targets(ips, "east-1", 8)) == 5


def test_a_large_fleet_probes_at_most_k_peers_near_and_sampled():
    ips = {f"n{i:04d}": f"198.18.{i // 250}.{i % 250 + 1}" for i in range(5000)}
    counts = {h: len(_probes.probe_targets(ips, h, 8)) for h in list(ips)[:200]}
    assert set(counts.values()) == {8}
    targets = _probes.probe_targets(ips, "n0100", 8)
    same_subnet = [t for t in targets if t["ip"].startswith("198.18.0.")]
    assert len(same_subnet) == 4  # k // 2 neighbours of its own /24, the rest sampled across the fleet
    assert targets == _probes.probe_targets(ips, "n0100", 8)  # the same every run
