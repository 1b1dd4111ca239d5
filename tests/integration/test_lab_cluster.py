"""The lab's cluster emulation: `labctl kubeconfig` and tests/lab/kubectl over a real lab.

One 3-node bgp lab with --extra-nic (one pod per node) is shared by the tests; each test
leaves it healed. The repair is proven end to end: `autodetect-wrong-nic` breaks node3, a
`kubectl set env` on the calico-node DaemonSet (raw, and through the collection's own
calico_autodetection module run by real Ansible) rolls every calico-node, which re-detects
and re-registers its address, and the pods ping again.
"""

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBECTL = os.path.join(REPO, "tests", "lab", "kubectl")
ANSIBLE = os.path.join(REPO, ".venv", "bin", "ansible")
NS = ["--namespace=kube-system"]
ETH0 = "interface=^eth0$"


@pytest.fixture(scope="module")
def lab(lab_factory, lab_report):
    lab = lab_factory("tkc", mode="bgp", nodes=3, pods_per_node=1, extra_nic=True)
    lab_report(f"lab-up-3 (bgp, cluster emulation): {lab.up_seconds:.2f} s")
    lab.kubeconfig = lab.labctl("kubeconfig", "--name", lab.name).stdout.strip()
    yield lab
    lab.down()


def kubectl(lab, *args, check=True, env=None):
    res = subprocess.run([KUBECTL, f"--kubeconfig={lab.kubeconfig}", *args], capture_output=True,
                         text=True, timeout=300, check=False, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {res.returncode}:\n{res.stderr}")
    return res


def get_json(lab, *args):
    return json.loads(kubectl(lab, "get", *args, "--output=json").stdout)


def ds_env(ds):
    container = next(c for c in ds["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "calico-node")
    return container["env"]


def env_values(ds):
    return {e["name"]: e.get("value") for e in ds_env(ds)}


def pids(lab):
    return {n["name"]: n["processes"].get("calico-node") for n in lab.nodes()}


def ansible_module(lab, module, args, check=False):
    """One ad-hoc task on localhost; its result as the json callback reports it."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    cmd = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-m", module, "-a", args,
           "-e", f"ansible_python_interpreter={REPO}/.venv/bin/python"] + (["--check"] if check else [])
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
                          check=False)
    try:
        return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no JSON from ansible (rc {done.returncode}):\n{done.stdout}\n"
                             f"{done.stderr}") from None


def assert_healthy(lab):
    for n in lab.nodes():
        assert n["calico_ip"] == n["intended_ip"], n
        assert n["calico_node"]["ready"], n
    result = lab.ping()
    assert (result.passed, result.failed) == (6, 0), result.output


# ---------------------------------------------------------------- shapes

def test_kubeconfig_and_get_shapes(lab):
    with open(lab.kubeconfig) as fh:
        text = fh.read()
    ctx = f"netdoctor-lab-{lab.name}"
    for line in ("apiVersion: v1", "kind: Config", "clusters:", "contexts:", "users:",
                 f"current-context: {ctx}", "    server: https://127.0.0.1:6443",
                 f"    cluster: {ctx}"):
        assert line + "\n" in text, text

    # The argv calico_autodetection builds, and kubectl's other spellings.
    ds = get_json(lab, "daemonset", "calico-node", *NS)
    assert kubectl(lab, "get", "ds", "-n", "kube-system", "calico-node", "-ojson").stdout == \
        json.dumps(ds, indent=4) + "\n"
    assert (ds["apiVersion"], ds["kind"]) == ("apps/v1", "DaemonSet")
    meta = ds["metadata"]
    assert (meta["name"], meta["namespace"], meta["generation"]) == ("calico-node", "kube-system", 1)
    assert meta["uid"] and "ownerReferences" not in meta
    env = ds_env(ds)
    names = [e["name"] for e in env]
    assert names.index("IP") < names.index("IP_AUTODETECTION_METHOD")
    assert env_values(ds) == {
        "DATASTORE_TYPE": "kubernetes", "NODENAME": None, "CALICO_NETWORKING_BACKEND": "bird",
        "CLUSTER_TYPE": "k8s,bgp", "IP": "autodetect", "IP_AUTODETECTION_METHOD": ETH0,
        "CALICO_IPV4POOL_IPIP": "Never", "CALICO_IPV4POOL_VXLAN": "Never",
        "CALICO_IPV4POOL_CIDR": "198.18.0.0/16", "FELIX_IPINIPMTU": "1480", "FELIX_VXLANMTU": "1450"}
    assert next(e for e in env if e["name"] == "NODENAME")["valueFrom"] == {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}
    assert {k: ds["status"][k] for k in ("desiredNumberScheduled", "numberReady",
                                         "updatedNumberScheduled", "observedGeneration")} == {
        "desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 3,
        "observedGeneration": 1}
    # Every stand-in runs the template's env.
    for n in lab.nodes():
        with open(f"/proc/{n['processes']['calico-node']}/environ", "rb") as fh:
            proc_env = dict(kv.split("=", 1) for kv in fh.read().decode().split("\0") if "=" in kv)
        assert proc_env["NODENAME"] == n["name"]
        assert proc_env["IP_AUTODETECTION_METHOD"] == ETH0 == n["autodetection_method"]

    nodes = {n["name"]: n for n in lab.nodes()}
    listed = get_json(lab, "nodes")
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == \
        ["node1", "node2", "node3"]
    for item in listed["items"]:
        n = nodes[item["metadata"]["name"]]
        assert item["metadata"]["annotations"]["projectcalico.org/IPv4Address"] == \
            n["underlay"][0] == f"{n['calico_ip']}/26"
        assert item["status"]["addresses"] == [{"address": n["intended_ip"], "type": "InternalIP"},
                                               {"address": n["name"], "type": "Hostname"}]
    assert get_json(lab, "node", "node2") == listed["items"][1]
    assert get_json(lab, "node/node2") == listed["items"][1]

    blocks = get_json(lab, "ipamblocks.crd.projectcalico.org")["items"]
    affinities = get_json(lab, "blockaffinities.crd.projectcalico.org")["items"]
    for n, block, affinity in zip(nodes.values(), blocks, affinities, strict=True):
        cidr = n["blocks"][0]
        dashed = cidr.replace(".", "-").replace("/", "-")
        assert (block["kind"], block["apiVersion"]) == ("IPAMBlock", "crd.projectcalico.org/v1")
        assert block["metadata"]["name"] == dashed
        spec = block["spec"]
        assert (spec["cidr"], spec["affinity"], spec["deleted"]) == (cidr, f"host:{n['name']}", False)
        assert len(spec["allocations"]) == 64 and spec["allocations"][1] == 0   # the pod, .1
        assert len(spec["unallocated"]) == 63
        assert affinity["metadata"]["name"] == f"{n['name']}-{dashed}"
        assert affinity["spec"] == {"cidr": cidr, "deleted": "false", "node": n["name"],
                                    "state": "confirmed", "type": "host"}

    # The table and -o name, KUBECONFIG instead of --kubeconfig.
    res = subprocess.run([KUBECTL, "get", "ds", "-n", "kube-system"], capture_output=True,
                         text=True, check=True, env=dict(os.environ, KUBECONFIG=lab.kubeconfig))
    assert res.stdout.split("\n")[1].split()[:6] == ["calico-node", "3", "3", "3", "3", "3"]
    assert kubectl(lab, "get", "nodes", "-o", "name").stdout.split() == \
        ["node/node1", "node/node2", "node/node3"]

    # Errors as kubectl's: exit 1, the message on stderr.
    for args, message in (
            (["get", "pods"], 'error: the server doesn\'t have a resource type "pods"'),
            (["get", "ds", "calico-node"],      # the kubeconfig's namespace: default
             'Error from server (NotFound): daemonsets.apps "calico-node" not found'),
            (["get", "node", "node9"], 'Error from server (NotFound): nodes "node9" not found'),
            (["get", "nodes", "--bogus"], "error: unknown flag: --bogus"),
            (["frobnicate", "nodes"], 'error: unknown command "frobnicate nodes" for "kubectl"'),
            (["--context=other", "get", "nodes"], "error: context was not found")):
        res = kubectl(lab, *args, check=False)
        assert res.returncode == 1 and res.stderr.startswith(message), (args, res.stderr)
        assert res.stdout == ""


# ---------------------------------------------------------------- the repair

def test_set_env_repairs_autodetect_wrong_nic(lab):
    lab.fault("autodetect-wrong-nic", node="node3")
    n3 = lab.node("node3")
    wrong = n3["extra"][0].split("/")[0]
    assert n3["calico_ip"] == wrong
    ds = get_json(lab, "daemonset", "calico-node", *NS)
    assert "IP_AUTODETECTION_METHOD" not in env_values(ds)       # first-found
    assert (ds["metadata"]["generation"], ds["status"]["updatedNumberScheduled"]) == (2, 1)
    notes = get_json(lab, "node", "node3")["metadata"]["annotations"]
    assert notes["projectcalico.org/IPv4Address"] == n3["extra"][0]

    before = pids(lab)
    res = kubectl(lab, "set", "env", "daemonset/calico-node", *NS, "--containers=calico-node",
                  "--dry-run=server", f"IP_AUTODETECTION_METHOD={ETH0}")
    assert res.stdout == "daemonset.apps/calico-node env updated (server dry run)\n"
    assert pids(lab) == before and lab.node("node3")["calico_ip"] == wrong
    assert get_json(lab, "daemonset", "calico-node", *NS) == ds

    res = kubectl(lab, "set", "env", "daemonset/calico-node", *NS, "--containers=calico-node",
                  f"IP_AUTODETECTION_METHOD={ETH0}")
    assert res.stdout == "daemonset.apps/calico-node env updated\n"
    after = pids(lab)
    assert all(after[n] and after[n] != before[n] for n in before), (before, after)
    assert {n["autodetection_method"] for n in lab.nodes()} == {ETH0}
    assert lab.show()["faults"] == []
    assert kubectl(lab, "rollout", "status", "daemonset/calico-node", *NS).stdout == \
        'daemon set "calico-node" successfully rolled out\n'
    ds = get_json(lab, "daemonset", "calico-node", *NS)
    assert ds["metadata"]["generation"] == 3 and ds["status"]["updatedNumberScheduled"] == 3
    notes = get_json(lab, "node", "node3")["metadata"]["annotations"]
    assert notes["projectcalico.org/IPv4Address"] == n3["underlay"][0]
    assert_healthy(lab)

    # The same value again: no patch, no rollout, nothing printed.
    res = kubectl(lab, "set", "env", "daemonset/calico-node", *NS, f"IP_AUTODETECTION_METHOD={ETH0}")
    assert res.stdout == "" and pids(lab) == after


def test_invalid_method_crashes_calico_node_and_keeps_addresses(lab):
    registered = {n["name"]: n["calico_ip"] for n in lab.nodes()}
    before = pids(lab)
    # No such method: calico-node terminates; maxUnavailable 1 halts the rollout at one node.
    kubectl(lab, "set", "env", "daemonset/calico-node", *NS, "IP_AUTODETECTION_METHOD=eth1")
    nodes = lab.nodes()
    assert {n["name"]: n["calico_ip"] for n in nodes} == registered
    crashed = [n for n in nodes if not n["calico_node"]["ready"]]
    assert len(crashed) == 1 and "calico-node" not in crashed[0]["processes"]
    assert crashed[0]["calico_node"]["message"] == "Invalid IP autodetection method: eth1"
    assert sum(pids(lab)[n] == before[n] for n in before) == 2
    res = kubectl(lab, "rollout", "status", "daemonset/calico-node", *NS, check=False)
    assert res.returncode == 1
    assert "1 out of 3 new pods have been updated" in res.stdout
    assert "Invalid IP autodetection method: eth1" in res.stderr
    status = get_json(lab, "ds", "calico-node", *NS)["status"]
    assert (status["numberReady"], status["numberUnavailable"]) == (2, 1)

    # A regex that does not compile is no crash: detection fails, every node keeps its address
    # (calico-node logs "keeping existing value") and the rollout completes.
    kubectl(lab, "set", "env", "daemonset/calico-node", *NS, "IP_AUTODETECTION_METHOD=interface=[")
    nodes = lab.nodes()
    assert {n["name"]: n["calico_ip"] for n in nodes} == registered
    assert all(n["calico_node"]["ready"] for n in nodes)
    assert all("keeping existing value" in n["calico_node"]["message"] for n in nodes)
    kubectl(lab, "rollout", "status", "daemonset/calico-node", *NS)

    lab.heal()
    assert env_values(get_json(lab, "ds", "calico-node", *NS))["IP_AUTODETECTION_METHOD"] == ETH0


def test_first_found_moves_every_node_to_eth1(lab):
    kubectl(lab, "set", "env", "daemonset/calico-node", *NS, "IP_AUTODETECTION_METHOD-")
    nodes = lab.nodes()
    assert all(n["calico_ip"] == n["extra"][0].split("/")[0] for n in nodes), nodes
    assert all(n["autodetection_method"] is None for n in nodes)
    kubectl(lab, "rollout", "status", "daemonset/calico-node", *NS)
    result = lab.ping()
    assert (result.passed, result.failed) == (0, 6), result.output   # the extra network is isolated

    # cidr= and can-reach= bring them back (the controller address is reached through eth0).
    underlay = lab.show()["controller_ip"].rsplit(".", 1)[0] + ".0/24"
    kubectl(lab, "set", "env", "daemonset/calico-node", *NS, f"IP_AUTODETECTION_METHOD=cidr={underlay}")
    assert all(n["calico_ip"] == n["intended_ip"] for n in lab.nodes())
    kubectl(lab, "set", "env", "daemonset/calico-node", *NS, "IP_AUTODETECTION_METHOD=first-found")
    kubectl(lab, "set", "env", "daemonset/calico-node", *NS,
            f"IP_AUTODETECTION_METHOD=can-reach={lab.show()['controller_ip']}")
    assert all(n["calico_ip"] == n["intended_ip"] for n in lab.nodes())

    healed = lab.heal()
    assert all(n["autodetection_method"] == ETH0 for n in healed["nodes"])
    ds = get_json(lab, "ds", "calico-node", *NS)
    assert env_values(ds)["IP_AUTODETECTION_METHOD"] == ETH0
    assert ds["status"]["updatedNumberScheduled"] == 3
    assert_healthy(lab)


def test_calico_autodetection_module_repairs_through_lab_kubectl(lab):
    lab.fault("autodetect-wrong-nic", node="node3")
    wrong = lab.node("node3")["extra"][0]
    view = ansible_module(lab, "netdoctor.calico.calico_datastore_info",
                          f"backend=kubernetes kubectl={KUBECTL} kubeconfig={lab.kubeconfig}")
    assert view["datastore"]["nodes"]["node3"]["ipv4_address"] == wrong, view
    assert view["datastore"]["blocks"][lab.node("node3")["blocks"][0]]["state"] == "confirmed"

    args = f"target=daemonset kubectl={KUBECTL} kubeconfig={lab.kubeconfig} method={ETH0}"
    generation = get_json(lab, "ds", "calico-node", *NS)["metadata"]["generation"]
    checked = ansible_module(lab, "netdoctor.calico.calico_autodetection", args, check=True)
    assert checked["changed"] and not checked.get("failed"), checked
    assert checked["previous"] is None and "--dry-run=server" in checked["command"]
    assert get_json(lab, "ds", "calico-node", *NS)["metadata"]["generation"] == generation
    assert lab.node("node3")["calico_ip"] == wrong.split("/")[0]

    changed = ansible_module(lab, "netdoctor.calico.calico_autodetection", args)
    assert changed["changed"] and not changed.get("failed"), changed
    assert get_json(lab, "ds", "calico-node", *NS)["metadata"]["generation"] == generation + 1
    assert_healthy(lab)

    again = ansible_module(lab, "netdoctor.calico.calico_autodetection", args)
    assert not again["changed"] and not again.get("failed") and again["command"] is None, again
    assert again["previous"] == ETH0


@pytest.mark.parametrize("mode", ["vxlan", "ipip"])
def test_set_env_repair_re_renders_tunnels(lab_factory, mode):
    """The same repair where the registered address also is the VTEP's source (vxlan) and the
    peers' FDB, neighbours and encapsulation filter entries (vxlan, ipip)."""
    lab = lab_factory(f"tkc{mode[0]}", mode=mode, nodes=2, pods_per_node=1, extra_nic=True)
    try:
        lab.kubeconfig = lab.labctl("kubeconfig", "--name", lab.name).stdout.strip()
        lab.fault("autodetect-wrong-nic", node="node2")
        assert lab.ping().failed == 2
        kubectl(lab, "set", "env", "daemonset/calico-node", *NS, f"IP_AUTODETECTION_METHOD={ETH0}")
        n2 = lab.node("node2")
        assert n2["calico_ip"] == n2["intended_ip"]
        if mode == "vxlan":
            info = json.loads(lab.exec("node2", "ip", "-j", "-d", "link", "show", "vxlan.calico")
                              .stdout)[0]["linkinfo"]["info_data"]
            assert (info["local"], info["link"]) == (n2["intended_ip"], "eth0")
        fdb = json.loads(lab.exec("node1", "bridge", "-j", "fdb", "show", "dev",
                                  n2["tunnel_device"]).stdout)
        assert [f["dst"] for f in fdb if f.get("dst")] == [n2["intended_ip"]]
        result = lab.ping()
        assert (result.passed, result.failed) == (2, 0), result.output
    finally:
        lab.down()
