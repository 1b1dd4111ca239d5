"""The calico-node stand-in: the DaemonSet template's env, its RollingUpdate, and calico-node's
startup (IPv4 autodetection), written from Calico's startup.go and autodetection/*.go.

This is the lab's own oracle: it must stay independent of the collection's autodetection
(plugins/), which the lab exists to test. Import nothing from there."""

import ipaddress
import json
import re

from .addressing import POOL
from .kernel import links_and_addrs
from .runner import PATH_ENV, pmap, run

IP_METHOD = "IP_AUTODETECTION_METHOD"
# Calico >= v3.25 exclusion list for first-found (calico_internals.md 1.4).
DEFAULT_EXCLUDES = [
    "^docker.*", "^cbr.*", "^dummy.*", "^podman.*", "^virbr.*", "^lxcbr.*", "^veth.*",
    "^lo", "^br-.*", "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*",
    r"^vxlan\.calico.*", r"^vxlan-v6\.calico.*", r"^wireguard\.cali.*", r"^wg-v6\.cali.*",
    "^nodelocaldns.*",
]


class Terminated(Exception):
    """calico-node exits at startup (utils.Terminate): its pod crash-loops."""


class NoAddress(Exception):
    """Autodetection found nothing; calico-node keeps the address it registered before."""


def default_ds_env(lab):
    """The calico-node container's env in the lab's DaemonSet, in calico.yaml's order."""
    mode = lab["mode"]
    env = [{"name": "DATASTORE_TYPE", "value": "kubernetes"},
           {"name": "NODENAME",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
           {"name": "CALICO_NETWORKING_BACKEND", "value": "vxlan" if mode == "vxlan" else "bird"},
           {"name": "CLUSTER_TYPE", "value": "k8s,bgp"},
           {"name": "IP", "value": "autodetect"}]
    if lab["extra_nic"]:
        # With a second NIC the healthy fleet pins the method, as the docs advise; else first-found.
        env.append({"name": IP_METHOD, "value": "interface=^eth0$"})
    return env + [{"name": "CALICO_IPV4POOL_IPIP", "value": "Always" if mode == "ipip" else "Never"},
                  {"name": "CALICO_IPV4POOL_VXLAN", "value": "Always" if mode == "vxlan" else "Never"},
                  {"name": "CALICO_IPV4POOL_CIDR", "value": POOL},
                  {"name": "FELIX_IPINIPMTU", "value": "1480"},
                  {"name": "FELIX_VXLANMTU", "value": "1450"}]


def pod_env(node):
    """The env of the node's calico-node pod, from the template it was created from
    (node["pod_template"]); the last entry of a name wins, as in a container. `set env` writes
    plain values, so NODENAME is the only valueFrom."""
    env = {}
    for entry in node["pod_template"]:
        if "valueFrom" in entry:
            env[entry["name"]] = node["name"]
        else:
            env[entry["name"]] = entry.get("value", "")
    return env


def calico_node_env(node):
    """The stand-in's environment: what its pod got from the DaemonSet's template."""
    return {"PATH": PATH_ENV, **pod_env(node)}


def set_template_env(lab, env):
    ds = lab["daemonset"]
    if env != ds["env"]:
        ds["env"] = env
        ds["generation"] += 1


def roll_out(lab):
    """The DaemonSet controller's RollingUpdate (maxUnavailable 1): pods of an older template are
    recreated from the current one, unavailable ones first; a new pod that crashes stops the
    rollout before another available pod is taken down. The pods that start register again.
    A pod is up to date when its template's env equals the DaemonSet's, order included: the
    revision hash covers it, so re-adding a removed variable (appended) is a new revision."""
    snapshots = dict(zip([n["name"] for n in lab["nodes"]],
                         pmap(lambda n: links_and_addrs(n["namespace"]), lab["nodes"]), strict=True))
    budget = 1 - sum(not n["calico_node"]["ready"] for n in lab["nodes"])
    rolled = set()
    for node in sorted(lab["nodes"], key=lambda n: n["calico_node"]["ready"]):
        if node["pod_template"] == lab["daemonset"]["env"]:
            continue
        was_ready = node["calico_node"]["ready"]
        if was_ready and budget < 1:
            break
        node["pod_template"] = lab["daemonset"]["env"]
        rolled.add(node["name"])
        register(node, snapshots[node["name"]])
        budget += node["calico_node"]["ready"] - was_ready
    # The pod the fault replaced is gone: what remains is whatever the template now says.
    lab["faults"] = [f for f in lab["faults"]
                     if not (f["fault"] == "autodetect-wrong-nic" and f["node"] in rolled)]


def register(node, links):
    """calico-node's startup with its pod's env: the IPv4 address it registers, kept when
    detection fails (calico_internals 1.2); none when it terminates."""
    try:
        cidr, message = startup_address(node, links)
    except Terminated as exc:
        node["calico_node"] = {"ready": False, "message": str(exc)}
        return
    node["calico_node"] = {"ready": True, "message": message}
    if cidr:
        node["calico_ip"], node["calico_cidr"] = cidr.split("/")[0], cidr


def startup_address(node, links):
    """(CIDR to register or None to keep the registered one, calico-node's log line), from
    startup.go configureIPsAndSubnets. The lab's nodes are always registered already."""
    env, kept = pod_env(node), node["calico_cidr"]
    ip_env = env.get("IP", "")
    if ip_env == "autodetect":
        try:
            return autodetect(node, links, env.get(IP_METHOD, ""))
        except NoAddress as exc:
            return None, f"{exc}; Autodetection of IPv4 address failed, keeping existing value: {kept}"
    if ip_env in ("", "none"):
        return None, f"Autodetection for IPv4 disabled, keeping existing value: {kept}"
    try:
        address = ipaddress.ip_interface(local_cidr(links, ip_env))
    except ValueError:
        address = None
    if address is None or address.version != 4:
        raise Terminated(f"Environment does not contain a valid IPv4 address: IP={ip_env}")
    return address.with_prefixlen, f"Using IPv4 address from environment: IP={ip_env}"


def autodetect(node, links, method):
    """calico-node's AutoDetectCIDR for IPv4 (autodetection_methods.go), on the node's links:
    (CIDR, log line); NoAddress when nothing matches, Terminated for an unknown method. Written
    for the lab from Calico's code, not from the collection's replay it is testing."""
    def split(text):
        return re.split(r"\s*,\s*", text)

    if method in ("", "first-found"):
        name, cidr = first_match(interfaces(links, (), DEFAULT_EXCLUDES))
        return cidr, f"Using autodetected IPv4 address on interface {name}: {cidr}"
    if method.startswith("interface="):
        name, cidr = first_match(interfaces(links, split(method[len("interface="):]), ()))
        return cidr, f"Using autodetected IPv4 address {cidr} on matching interface {name}"
    if method.startswith("cidr="):
        nets = []
        for text in split(method[len("cidr="):]):
            try:
                nets.append(ipaddress.ip_network(text, strict=False) if "/" in text else None)
            except ValueError:
                nets.append(None)
            if nets[-1] is None:
                raise NoAddress(f"Invalid CIDR {text!r} for IP autodetection method: {method}")
        name, cidr = first_match(interfaces(links, (), ()), nets)
        return cidr, f"Using autodetected IPv4 address {cidr} on interface {name} matching cidrs"
    if method.startswith("can-reach="):
        dest = method[len("can-reach="):]
        cidr = reach(node, links, dest)
        return cidr, f"Using autodetected IPv4 address {cidr}, detected by connecting to {dest}"
    if method.startswith("skip-interface="):
        skip = split(method[len("skip-interface="):])
        name, cidr = first_match(interfaces(links, (), DEFAULT_EXCLUDES + skip))
        return cidr, (f"Using autodetected IPv4 address on interface {name}: {cidr} while "
                      "skipping matching interfaces")
    if method.startswith("kubernetes-internal-ip"):   # a prefix test in Calico too
        cidr = local_cidr(links, node["intended_ip"])  # the lab's Node InternalIP
        if "/" not in cidr:
            raise NoAddress(f"Unable to parse CIDR {cidr}")
        return cidr, f"Using autodetected IPv4 address {cidr}, the Node's InternalIP"
    raise Terminated(f"Invalid IP autodetection method: {method}")


def interfaces(links, include, exclude):
    """GetInterfaces: [(name, [IPv4 interface addresses in kernel order])], links in REVERSE
    ifindex order, kept when the name matches an include regex (any, when there are none) and
    no exclude regex; each list is joined into one unanchored regex, as Go does."""
    def combined(regexes):
        try:
            return re.compile("(" + ")|(".join(regexes) + ")") if regexes else None
        except re.error as exc:
            raise NoAddress(f"Invalid interface regex: {exc}") from None

    inc, exc = combined(include), combined(exclude)
    out = []
    for link in sorted(links, key=lambda x: x["ifindex"], reverse=True):
        name = link["ifname"]
        if (inc is None or inc.search(name)) and not (exc and exc.search(name)):
            out.append((name, [ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
                               for a in link.get("addr_info", []) if a["family"] == "inet"]))
    return out


def first_match(ifaces, nets=None):
    """FilteredEnumeration: the first global unicast address (inside one of nets, when given)."""
    if not ifaces:
        raise NoAddress("no valid host interfaces found")
    for name, addresses in ifaces:
        for a in addresses:
            ip = a.ip
            global_unicast = not (ip.is_loopback or ip.is_link_local or ip.is_multicast
                                  or ip.is_unspecified or ip == ipaddress.ip_address("255.255.255.255"))
            if global_unicast and (not nets or any(ip in net for net in nets)):
                return name, a.with_prefixlen
    raise NoAddress("no valid IPv4 addresses found on the host interfaces")


def local_cidr(links, ip):
    """GetLocalCIDR: ip with the prefix of the interface address it equals, else as given."""
    if "/" in ip:
        return ip
    for _name, addresses in interfaces(links, (), ()):
        for a in addresses:
            if str(a.ip) == ip:
                return a.with_prefixlen
    return ip


def reach(node, links, dest):
    """can-reach: the source the node's kernel picks towards dest (Calico connects a UDP socket
    to dest:80), with the prefix of the interface holding it. Names are not resolved: the lab
    contacts no DNS."""
    try:
        ipaddress.IPv4Address(dest)
    except ValueError:
        raise NoAddress(f"dial udp4 {dest}:80: the lab resolves no names, give an IPv4 address") from None
    res = run(["ip", "-n", node["namespace"], "-j", "route", "get", dest], check=False)
    routes = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else []
    src = routes[0].get("prefsrc") if routes else None
    if not src:
        raise NoAddress(f"dial udp4 {dest}:80: {res.stderr.strip() or 'no source address'}")
    cidr = local_cidr(links, src)
    if "/" not in cidr:
        raise NoAddress("autodetected IPv4 address does not match any addresses found on local "
                        f"interfaces: {src}")
    return cidr
