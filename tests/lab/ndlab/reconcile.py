"""The lab's Felix and confd: what Calico would program from the datastore and the active
faults, brought about on every node, then waited for (convergence)."""

import ipaddress
import os

from . import faults_dataplane
from .addressing import TUNNEL_DEVICE, VXLAN_PORT, in_underlay, proto_name, underlay_ip
from .birdctl import BIRD_SOCKET, bird_cmd, bird_protocols, bird_socket_host_path
from .calico_node import calico_node_env, register, roll_out, set_template_env
from .errors import LabError
from .kernel import links_and_addrs, route_matches, route_table
from .model import faults_on
from .node import keeper, node_path, start_in_node, start_sshd, stop_in_node
from .render import BIRD_CONF_DIR, NM_FAULTS, bird_files, host_firewall, nft_ruleset, nm_files
from .runner import alive, in_netns, ip_batch, log_tail, pmap, poll, remove_file, run, run_json, write_text
from .state import node_dir, save


def session_up(lab, x, y, regs):
    """Whether BGP between nodes x and y can be Established (the extra network is isolated)."""
    if not (in_underlay(lab, regs[x["name"]]) and in_underlay(lab, regs[y["name"]])):
        return False
    return not any(f["peer"] == y["name"] for f in faults_on(lab, x, "bgp-peer-down")) and \
        not any(f["peer"] == x["name"] for f in faults_on(lab, y, "bgp-peer-down"))


def stale_route(lab, node, target):
    """The wrong next hop seed 001 case 1 describes, shaped for the lab's mode."""
    mode = lab["mode"]
    if mode == "bgp":   # an underlay address nobody holds: the owner's former IP
        return {"gateway": underlay_ip(lab["slot"], 61), "dev": "eth0", "proto": 3, "onlink": False}
    # Seed 001 case 1 exactly: via the node's OWN tunnel address, which it did not hold yet
    # when the route was written.
    return {"gateway": node["tunnel_address"], "dev": TUNNEL_DEVICE[mode], "proto": 3,
            "onlink": True}


def expected_routes(lab, node, regs):
    """{block: route spec or None (absent) or "bird-any"} for every remote block on node."""
    mode = lab["mode"]
    out = {}
    stale = {f["peer"] for f in faults_on(lab, node, "stale-route")}
    missing = {f["peer"] for f in faults_on(lab, node, "missing-route")}
    for other in lab["nodes"]:
        if other is node:
            continue
        reg = regs[other["name"]]
        if other["name"] in stale:
            spec = stale_route(lab, node, other)
        elif other["name"] in missing:
            spec = None
        elif mode == "bgp":
            spec = ({"gateway": reg, "dev": "eth0" if in_underlay(lab, reg) else "eth1",
                     "proto": 12, "onlink": False}
                    if session_up(lab, node, other, regs) else None)
        elif mode == "ipip":
            spec = {"gateway": reg, "dev": "tunl0", "proto": 80, "onlink": True}
        else:
            spec = {"gateway": other["tunnel_address"], "dev": "vxlan.calico", "proto": 3,
                    "onlink": True}
        out[other["block"]] = spec
    return out


def reconcile(lab):
    """Bring every node to what Calico would program from the datastore and the active faults."""
    snapshots = dict(zip([n["name"] for n in lab["nodes"]],
                         pmap(lambda n: links_and_addrs(n["namespace"]), lab["nodes"]), strict=True))
    for node in lab["nodes"]:
        # calico-node re-detects its address (monitor-addresses); keeps the old one on failure.
        register(node, snapshots[node["name"]])
    regs = {n["name"]: n["calico_ip"] for n in lab["nodes"]}
    pmap(lambda n: reconcile_node(lab, n, regs, snapshots[n["name"]]), lab["nodes"])


def reconcile_node(lab, node, regs, links):
    if not alive(node["procs"].get("sshd")):
        start_sshd(lab, node)
    ensure_calico_node(lab, node)
    ensure_tunnel_device(lab, node, regs, links)
    ensure_addresses(lab, node, links)
    ensure_sysctls(lab, node)
    ensure_routes(lab, node, regs)
    run(in_netns(node["namespace"], ["nft", "-f", "-"]),
        input=nft_ruleset(lab, node, regs) + faults_dataplane.workload_chains(lab, node))
    ensure_host_firewall(lab, node, regs)
    faults_dataplane.apply(lab, node)
    if lab["mode"] in ("bgp", "ipip"):
        ensure_bird(lab, node, regs)
    ensure_nm(lab, node)


def ensure_host_firewall(lab, node, regs):
    """Load the host firewall only when the faults change it, as a firewall service would: rules
    someone added since (the repair's accept rules) stay until the next fault or heal."""
    wanted = faults_dataplane.with_host_firewall(host_firewall(lab, node, regs), lab, node, regs)
    if wanted == node.get("host_firewall"):
        return
    run(in_netns(node["namespace"], ["nft", "-f", "-"]),
        input="table inet filter\ndelete table inet filter\n" + (wanted or ""))
    node["host_firewall"] = wanted


def ensure_calico_node(lab, node):
    """The stand-in restarts whenever its pod is recreated from another template, and does not
    run while calico-node would terminate at startup (a crash-looping pod)."""
    if not node["calico_node"]["ready"]:
        stop_in_node(node, "calico-node")
        return
    rec = node["procs"].get("calico-node")
    if alive(rec) and rec.get("pod_template") == node["pod_template"]:
        return
    stop_in_node(node, "calico-node")
    # Felix's health endpoint on localhost:9099 (faults_dataplane.STANDIN), argv[0] calico-node.
    start_in_node(lab, node, "calico-node", faults_dataplane.standin_argv(lab, node),
                  env=calico_node_env(node))["pod_template"] = node["pod_template"]


def ensure_tunnel_device(lab, node, regs, links):
    mode = lab["mode"]
    if mode == "bgp":
        return
    ns = node["namespace"]
    by_name = {link["ifname"]: link for link in links}
    reg = regs[node["name"]]
    lines = []
    if mode == "vxlan":
        parent = next((link["ifname"] for link in links for a in link.get("addr_info", [])
                       if a.get("local") == reg), "eth0")
        cur = by_name.get("vxlan.calico")
        data = (cur or {}).get("linkinfo", {}).get("info_data", {})
        if cur and data.get("local") == reg and data.get("link") == parent:
            return
        # Felix deletes and recreates a VTEP whose source or parent changed (vxlanLinksIncompat).
        if cur:
            lines.append("link del vxlan.calico")
        lines += [f"link add vxlan.calico address {node['vxlan_mac']} mtu 1450 type vxlan "
                  f"id 4096 dstport {VXLAN_PORT} local {reg} dev {parent} nolearning"]
        dev = "vxlan.calico"
    else:
        if "tunl0" in by_name:
            return
        # IPIP-shaped: no `local`, so the outer source comes from the kernel's route lookup.
        lines += [f"link add tunl0 address {node['tunl_mac']} mtu 1480 type vxlan id 1 "
                  f"dstport {VXLAN_PORT} nolearning"]
        dev = "tunl0"
    lines += [f"addr add {node['tunnel_address']}/32 dev {dev}", f"link set {dev} up",
              f"route replace blackhole {node['block']} proto 80"]
    ip_batch(lines, ns)


def ensure_addresses(lab, node, links):
    """src-asym: a second eth0 address that the route to the peers uses as source."""
    ns = node["namespace"]
    eth0 = next(link for link in links if link["ifname"] == "eth0")
    fault = next(iter(faults_on(lab, node, "src-asym")), None)
    want = {node["underlay_ip"]} | ({fault["address"]} if fault else set())
    have = {a["local"] for a in eth0.get("addr_info", []) if a["family"] == "inet"}
    subnet = lab["underlay_cidr"]
    src = fault["address"] if fault else node["underlay_ip"]
    adds = [f"addr add {a}/26 dev eth0" for a in sorted(want - have)]
    dels = [f"addr del {a}/26 dev eth0" for a in sorted(have - want)]
    if adds or dels or route_table(ns).get(subnet, {}).get("prefsrc") != src:
        # The subnet route must stop naming an address before that address goes.
        ip_batch(adds + [f"route replace {subnet} dev eth0 proto kernel scope link src {src}"]
                 + dels, ns)


def ensure_sysctls(lab, node):
    names = {f["fault"] for f in faults_on(lab, node)}
    rp = "1" if "rp-filter-strict" in names else "0"
    eths = ["eth0"] + (["eth1"] if node["extra_ip"] else [])
    settings = ["net.ipv4.ip_forward=1",
                f"net.ipv4.conf.all.rp_filter={rp}", f"net.ipv4.conf.default.rp_filter={rp}"]
    settings += [f"net.ipv4.conf.{e}.rp_filter={rp}" for e in eths]
    proxy_arp = "0" if "proxy-arp-off" in names else "1"
    for pod in node["pods"]:
        c = pod["interface"]
        # What Felix and the CNI plugin set on a workload interface (calico_internals 2.5).
        settings += [f"net.ipv4.conf.{c}.rp_filter={rp}", f"net.ipv4.conf.{c}.route_localnet=1",
                     f"net.ipv4.conf.{c}.proxy_arp={proxy_arp}",
                     f"net.ipv4.neigh.{c}.proxy_delay=0"]
        if "no-ip-forward" not in names:
            settings.append(f"net.ipv4.conf.{c}.forwarding=1")
    if "no-ip-forward" in names:
        # Last, so it also clears every interface's forwarding flag, as the kernel does.
        settings.append("net.ipv4.ip_forward=0")
    run(in_netns(node["namespace"], ["sysctl", "-q", "-w"] + settings))


def ensure_routes(lab, node, regs):
    """Felix's routes, neighbours and FDB (ipip, vxlan); stale/alien routes in every mode."""
    ns = node["namespace"]
    mode = lab["mode"]
    table = route_table(ns)
    lines = []
    for block, spec in expected_routes(lab, node, regs).items():
        actual = table.get(block)
        if mode == "bgp" and (spec is None or spec["proto"] == 12):
            # BIRD owns these; the lab only removes what is not BIRD's (a healed stale route).
            if actual and actual["proto"] != 12:
                lines.append(f"route del {block} proto {actual['proto']}")
            continue
        if spec is None:
            if actual:
                lines.append(f"route del {block}")
            continue
        if route_matches(actual, spec) and actual["onlink"] == spec["onlink"]:
            continue
        route = (f"route replace {block} via {spec['gateway']} dev {spec['dev']} "
                 f"proto {spec['proto']}" + (" onlink" if spec["onlink"] else ""))
        if spec["gateway"] == node["tunnel_address"]:
            # The kernel refuses a local gateway, so replay the history: the route first, the
            # address after. A stand-in address keeps the device from losing its other routes.
            standin = str(ipaddress.ip_network(node["block"])[63])
            lines += [f"addr add {standin}/32 dev {spec['dev']}",
                      f"addr del {spec['gateway']}/32 dev {spec['dev']}", route,
                      f"addr add {spec['gateway']}/32 dev {spec['dev']}",
                      f"addr del {standin}/32 dev {spec['dev']}"]
        else:
            lines.append(route)
    if mode in ("ipip", "vxlan"):
        blackhole = table.get(node["block"])
        if not blackhole or blackhole.get("type") != "blackhole" or blackhole["proto"] != 80:
            lines.append(f"route replace blackhole {node['block']} proto 80")
    ip_batch(lines, ns)
    if mode in ("ipip", "vxlan"):
        ensure_l2(lab, node, regs)


def ensure_l2(lab, node, regs):
    ns, dev = node["namespace"], TUNNEL_DEVICE[lab["mode"]]
    want_neigh, want_fdb = {}, {}
    for other in lab["nodes"]:
        if other is node:
            continue
        reg = regs[other["name"]]
        if lab["mode"] == "vxlan":
            want_neigh[other["tunnel_address"]] = other["vxlan_mac"]
            want_fdb[other["vxlan_mac"]] = reg
        else:
            want_neigh[reg] = other["tunl_mac"]
            want_fdb[other["tunl_mac"]] = reg
    have_neigh = {n["dst"]: n for n in run_json(["ip", "-n", ns, "-j", "neigh", "show", "dev", dev])}
    lines = [f"neigh del {dst} dev {dev}" for dst in have_neigh if dst not in want_neigh]
    for dst, mac in want_neigh.items():
        n = have_neigh.get(dst)
        if not n or n.get("lladdr") != mac or "PERMANENT" not in n.get("state", []):
            lines.append(f"neigh replace {dst} lladdr {mac} dev {dev} nud permanent")
    ip_batch(lines, ns)
    fdb_lines = []
    have_fdb = [f for f in run_json(["bridge", "-n", ns, "-j", "fdb", "show", "dev", dev])
                if f.get("dst")]
    for f in have_fdb:
        if want_fdb.get(f["mac"]) != f["dst"]:
            fdb_lines.append(f"fdb del {f['mac']} dev {dev} dst {f['dst']} self")
    have = {(f["mac"], f["dst"]) for f in have_fdb}
    for mac, dst in want_fdb.items():
        if (mac, dst) not in have:
            fdb_lines.append(f"fdb replace {mac} dev {dev} dst {dst} self permanent")
    ip_batch(fdb_lines, ns, tool="bridge")


def ensure_bird(lab, node, regs):
    files = bird_files(lab, node, regs)
    changed = [write_text(node_path(node, f"{BIRD_CONF_DIR}/{name}"), text)
               for name, text in files.items()]
    rec = node["procs"].get("bird")
    router_id = regs[node["name"]]
    sock = bird_socket_host_path(lab, node)
    if alive(rec) and rec.get("router_id") == router_id:
        if any(changed):
            code, lines = bird_cmd(sock, "configure")
            if code >= 8000:
                raise LabError(f"{node['name']}: birdc configure: {' '.join(lines)}")
        return
    # A new router id needs a new BIRD, as calico-node restarts when its address changes.
    stop_in_node(node, "bird")
    remove_file(sock)
    start_in_node(lab, node, "bird", ["bird", "-f", "-c", f"{BIRD_CONF_DIR}/bird.cfg",
                                      "-s", BIRD_SOCKET])["router_id"] = router_id
    if not poll(lambda: os.path.exists(sock) or not alive(node["procs"]["bird"]), 10, 0.02) \
            or not alive(node["procs"]["bird"]):
        raise LabError(f"{node['name']}: BIRD did not start: "
                       f"{log_tail(os.path.join(node_dir(lab, node), 'bird.log'))}")


def ensure_nm(lab, node):
    names = {f["fault"] for f in faults_on(lab, node)}
    want_running = lab["nm"] or bool(names & set(NM_FAULTS))
    changed = False
    for fname, text in nm_files(lab, node).items():
        path = node_path(node, f"/etc/NetworkManager/conf.d/{fname}")
        changed |= write_text(path, text) if text is not None else remove_file(path)
    running = alive(node["procs"].get("nm"))
    if not want_running:
        stop_in_node(node, "nm", "dbus")
        return
    if running and not changed:
        return
    stop_in_node(node, "nm")
    if not alive(node["procs"].get("dbus")):
        sock = node_path(node, "/run/dbus/system_bus_socket")
        remove_file(sock)
        start_in_node(lab, node, "dbus", ["dbus-daemon", "--system", "--nofork", "--nopidfile"])
        if not poll(lambda: os.path.exists(sock), 10, 0.02):
            raise LabError(f"{node['name']}: dbus-daemon did not start: "
                           f"{log_tail(os.path.join(node_dir(lab, node), 'dbus.log'))}")
    start_in_node(lab, node, "nm", ["NetworkManager", "--no-daemon"])
    cmd = ["nsenter", "-t", str(keeper(node)), "-m", "-u", "-n", "--",
           "nmcli", "-t", "-f", "RUNNING", "general"]
    if not poll(lambda: run(cmd, check=False).stdout.strip() == "running", 20, 0.2):
        raise LabError(f"{node['name']}: NetworkManager did not come up: "
                       f"{log_tail(os.path.join(node_dir(lab, node), 'nm.log'))}")


def observe(lab, node):
    obs = {"routes": route_table(node["namespace"]), "sessions": None}
    if lab["mode"] in ("bgp", "ipip"):
        try:
            obs["sessions"] = bird_protocols(bird_socket_host_path(lab, node))
        except (OSError, LabError):
            obs["sessions"] = {}
    return obs


def mismatches(lab):
    regs = {n["name"]: n["calico_ip"] for n in lab["nodes"]}
    problems = []
    for node, obs in zip(lab["nodes"], pmap(lambda n: observe(lab, n), lab["nodes"]), strict=True):
        for block, spec in expected_routes(lab, node, regs).items():
            actual = obs["routes"].get(block)
            if spec is None and actual is not None and actual.get("type", "unicast") == "unicast":
                problems.append(f"{node['name']}: {block} should be absent, is via "
                                f"{actual.get('gateway')} dev {actual.get('dev')}")
            elif spec is not None and not route_matches(actual, spec):
                problems.append(f"{node['name']}: {block} should be via {spec['gateway']} "
                                f"dev {spec['dev']} proto {spec['proto']}")
        local = obs["routes"].get(node["block"])
        want_proto = 12 if lab["mode"] == "bgp" else 80
        if not local or local.get("type") != "blackhole" or local["proto"] != want_proto:
            problems.append(f"{node['name']}: no blackhole {node['block']} proto {want_proto}")
        if obs["sessions"] is not None:
            for other in lab["nodes"]:
                if other is node:
                    continue
                name = proto_name(regs[other["name"]])
                up = obs["sessions"].get(name) == "Established"
                if up != session_up(lab, node, other, regs):
                    problems.append(f"{node['name']}: {name} is {obs['sessions'].get(name)}")
    return problems


def converge(lab, timeout=None):
    timeout = timeout or 30 + len(lab["nodes"])
    last = poll(lambda: not mismatches(lab), timeout, 0.25)
    if not last:
        problems = mismatches(lab)
        if problems:
            raise LabError(f"lab did not converge within {timeout}s: {'; '.join(problems[:8])}")


def apply_daemonset_env(lab, env):
    """A changed pod template, as `kubectl set env` leaves it: rolled out, the fleet re-rendered
    from what the restarted calico-nodes registered; returns once the lab has converged."""
    set_template_env(lab, env)
    try:
        roll_out(lab)
        reconcile(lab)
    finally:
        save(lab)
    converge(lab)
