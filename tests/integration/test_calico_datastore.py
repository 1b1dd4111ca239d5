"""calico_datastore_info through real Ansible (`ansible localhost -m ...`, `ansible-playbook`), and the DS
findings of fleet_audit.

etcd: a real etcd (Debian etcd-server 3.4; etcdctl from etcd-client) started by the test on 127.0.0.1 with
free ports and a temp data dir, stopped by its pid. The keys are written by etcdctl (bulk: the v3 gateway's
/v3/kv/put) in libcalico-go's layout; the lab's are made from `labctl show` by tests/integration/lab_datastore.py.

Kubernetes: no cluster here. tests/integration/fake_kubectl.py serves the documents of
tests/unit/fixtures/kube/{nodes,ipamblocks,blockaffinities}.json (crd.projectcalico.org/v1) and
tests/unit/fixtures/kube/v3/ (the native projectcalico.org/v3 CRDs), which are hand-made in the shape
`kubectl get -o json` prints, not recorded from a live cluster, and the API server's group list.
The lab's own emulated kubectl (tests/lab/kubectl) serves a lab's datastore in either group: the audit
role's datastore phase runs against it end to end, and against a lab whose datastore cannot be read.

A read that fails does not fail the module: it warns and returns the view with `error` (DS000 in the
audit). Sources checked: projectcalico/calico 87c15906f2 (master, v3.34.0-0.dev) and v3.32.0 -
libcalico-go/lib/backend/k8s/discovery.go (the group), api/config/crd/projectcalico.org_*.yaml and
manifests/calico-v3-crds.yaml (the v3 shapes).
"""

import base64
import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ansible_collections.netdoctor.calico.tests.integration.lab_datastore import etcd_kvs
from ansible_collections.netdoctor.calico.tests.integration.module_run import run_module

REPO = Path(__file__).resolve().parents[2]
KUBE_FIXTURES = REPO / "tests" / "unit" / "fixtures" / "kube"
FAKE_KUBECTL = Path(__file__).resolve().parent / "fake_kubectl.py"
ETCD, ETCDCTL = shutil.which("etcd"), shutil.which("etcdctl")
START_TIMEOUT = 30


def ansible(module_args, *, check=False, env=None):
    return run_module("calico_datastore_info", module_args, check=check, env=env)


# --- a real etcd -------------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """One etcd member on 127.0.0.1, plain or with TLS (``tls``: the paths of ca, server cert/key, client
    cert/key); ``stop()`` ends it by its pid."""

    def __init__(self, workdir, tls=None):
        self.workdir, self.tls, self.proc = Path(workdir), tls, None
        self.scheme = "https" if tls else "http"
        self.endpoint = None

    def _context(self):
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.tls["ca"])
        context.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
        return context

    def request(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method="POST" if data else "GET")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=self._context()))
        with opener.open(req, timeout=10) as reply:
            return json.loads(reply.read())

    def start(self):
        # A free port can be taken between the probe and etcd's bind: try again with new ones (bounded).
        for attempt in range(3):
            client, peer = free_port(), free_port()
            self.endpoint = f"{self.scheme}://127.0.0.1:{client}"
            data = self.workdir / f"data{attempt}"
            argv = [ETCD, "--name", "nd", "--data-dir", str(data), "--listen-client-urls", self.endpoint,
                    "--advertise-client-urls", self.endpoint, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                    "--initial-cluster", f"nd=http://127.0.0.1:{peer}", "--log-level", "warn"]
            if self.tls:
                argv += ["--cert-file", self.tls["server_cert"], "--key-file", self.tls["server_key"],
                         "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
            self.log = self.workdir / f"etcd{attempt}.log"
            with open(self.log, "w") as log:
                self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self._ready():
                return self
            self.stop()
        raise AssertionError(f"etcd did not start:\n{self.log.read_text()[-2000:]}")

    def _ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.request("/health").get("health") == "true":
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)

    def etcdctl(self, *args):
        cmd = [ETCDCTL, f"--endpoints={self.endpoint}"]
        if self.tls:
            cmd += [f"--cacert={self.tls['ca']}", f"--cert={self.tls['client_cert']}",
                    f"--key={self.tls['client_key']}"]
        done = subprocess.run([*cmd, *args], capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"),
                              timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def put(self, kvs):
        for key, value in kvs.items():
            self.etcdctl("put", key, value)

    def put_many(self, kvs):
        """The v3 gateway's put: one request per key, no process per key."""
        for key, value in kvs.items():
            self.request("/v3/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                                        "value": base64.b64encode(value.encode()).decode()})

    def keys(self):
        return self.etcdctl("get", "--prefix", "/calico/", "--keys-only").split()


@pytest.fixture
def etcd_factory(tmp_path):
    if not (ETCD and ETCDCTL):
        # A test that cannot run has not passed: install the Debian packages etcd-server and etcd-client.
        pytest.fail("etcd and etcdctl are not installed (Debian packages etcd-server, etcd-client)")
    started = []

    def make(tls=None):
        server = Etcd(tmp_path / f"etcd{len(started)}", tls)
        server.workdir.mkdir()
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()
        assert server.proc.poll() is not None


def node_value(name, address, tunnel=None, **spec):
    bgp = {"ipv4Address": address, **({"ipv4IPIPTunnelAddr": tunnel} if tunnel else {})}
    return json.dumps({"kind": "Node", "apiVersion": "projectcalico.org/v3", "metadata": {"name": name},
                       "spec": {"bgp": bgp, "orchRefs": [{"nodeName": name, "orchestrator": "k8s"}], **spec}})


def block_kvs(cidr, node, state="confirmed", deleted=False):
    name = cidr.replace("/", "-")
    block = {"cidr": cidr, "affinity": f"host:{node}", "allocations": [0] + [None] * 63,
             "unallocated": list(range(1, 64)), "attributes": [{"handle_id": f"ipip-tunnel-addr-{node}"}],
             "deleted": deleted}
    return {f"/calico/ipam/v2/assignment/ipv4/block/{name}": json.dumps(block),
            f"/calico/ipam/v2/host/{node}/ipv4/block/{name}": json.dumps({"state": state, "deleted": deleted})}


SMALL = {
    "/calico/resources/v3/projectcalico.org/nodes/n1": node_value("n1", "192.0.2.11/24", "198.18.1.0"),
    "/calico/resources/v3/projectcalico.org/nodes/n2": node_value(
        "n2", "192.0.2.12/24", ipv4VXLANTunnelAddr="198.18.2.1", vxlanTunnelMACAddr="66:AA:00:00:00:02"),
    **block_kvs("198.18.1.0/26", "n1"),
    **block_kvs("198.18.2.0/26", "n2", state="pending"),
    **block_kvs("198.18.3.0/26", "n2", deleted=True),
    # Not read: handles (one per pod) and other resources.
    "/calico/ipam/v2/handle/k8s-pod-network.0123": json.dumps({"block": {"198.18.1.0/26": 1}, "deleted": False}),
    "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool": json.dumps({"kind": "IPPool"}),
}
SMALL_VIEW = {
    "source": "etcd", "api_group": None, "ipam": "calico", "error": None,
    "nodes": {"n1": {"ipv4_address": "192.0.2.11/24", "ipip_tunnel_addr": "198.18.1.0", "vxlan_tunnel_addr": None,
                     "vxlan_mac": None, "ready": None, "pod_cidrs": []},
              "n2": {"ipv4_address": "192.0.2.12/24", "ipip_tunnel_addr": None, "vxlan_tunnel_addr": "198.18.2.1",
                     "vxlan_mac": "66:aa:00:00:00:02", "ready": None, "pod_cidrs": []}},
    "blocks": {"198.18.1.0/26": {"affinity_node": "n1", "state": "confirmed", "affinities": {"n1": "confirmed"},
                                 "ipam_block": True, "allocations": 1},
               "198.18.2.0/26": {"affinity_node": "n2", "state": "pending", "affinities": {"n2": "pending"},
                                 "ipam_block": True, "allocations": 1}},
    "errors": [],
}


def test_etcd_read_back(etcd_factory):
    etcd = etcd_factory()
    etcd.put(SMALL)
    assert len(etcd.keys()) == len(SMALL)
    result = ansible({"backend": "etcd", "etcd_endpoints": [etcd.endpoint]})
    assert result["changed"] is False and result["endpoint"] == etcd.endpoint
    assert result["datastore"] == SMALL_VIEW
    checked = ansible({"backend": "etcd", "etcd_endpoints": [etcd.endpoint]}, check=True)
    assert checked["datastore"] == SMALL_VIEW and not checked["changed"]


def test_etcd_pages_through_a_large_datastore(etcd_factory):
    etcd = etcd_factory()
    kvs = {}
    for i in range(600):  # 1,200 block keys: three pages of 500 under the block prefixes
        kvs.update(block_kvs(f"198.18.{i // 4}.{(i % 4) * 64}/26", f"node{i}"))
    etcd.put_many(kvs)
    result = ansible({"backend": "etcd", "etcd_endpoints": [etcd.endpoint]})
    blocks = result["datastore"]["blocks"]
    assert len(blocks) == 600
    assert blocks["198.18.149.192/26"] == {"affinity_node": "node599", "state": "confirmed",
                                           "affinities": {"node599": "confirmed"}, "ipam_block": True,
                                           "allocations": 1}


def test_etcd_endpoints_fail_over_and_fail_with_every_error(etcd_factory):
    etcd = etcd_factory()
    etcd.put(SMALL)
    dead = f"http://127.0.0.1:{free_port()}"
    result = ansible({"backend": "etcd", "etcd_endpoints": [dead, etcd.endpoint], "timeout": 5})
    assert result["endpoint"] == etcd.endpoint and result["datastore"] == SMALL_VIEW
    # A read that fails is no module failure: the view says why (the audit's DS000), and Ansible warns.
    failed = ansible({"backend": "etcd", "etcd_endpoints": [dead, f"{etcd.endpoint}/not-etcd"], "timeout": 5})
    assert not failed.get("failed") and "endpoint" not in failed
    view = failed["datastore"]
    assert (view["nodes"], view["blocks"]) == ({}, {})
    assert view["error"]["kind"] == "http"  # a member that answers wrongly says more than one that is down
    assert view["error"]["message"].startswith("no etcd endpoint answered: ")
    assert len(view["error"]["details"]) == 2 and "HTTP 404" in view["error"]["details"][1]
    assert view["error"]["details"][0].startswith(dead) and "refused" in view["error"]["details"][0]
    assert any("could not be read (http)" in w for w in failed["warnings"])
    dead_only = ansible({"backend": "etcd", "etcd_endpoints": [dead], "timeout": 5})
    assert dead_only["datastore"]["error"]["kind"] == "unreachable"
    # Wrong arguments still fail the task.
    assert ansible({"backend": "etcd"})["msg"] == "backend is etcd but all of the following are missing: etcd_endpoints"


def make_tls(directory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate (cryptography)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    paths = {}

    def write(name, key, cert):
        paths[f"{name}_key"] = str(directory / f"{name}-key.pem")
        paths[f"{name}_cert"] = str(directory / f"{name}.pem")
        Path(paths[f"{name}_key"]).write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        Path(paths[f"{name}_cert"]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def builder(subject, issuer, key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1)))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "netdoctor test CA")])
    ca = (builder(ca_name, ca_name, ca_key).add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
          .sign(ca_key, hashes.SHA256()))
    write("ca", ca_key, ca)
    paths["ca"] = paths["ca_cert"]
    for name, usages in (("server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                         ("client", [ExtendedKeyUsageOID.CLIENT_AUTH])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca_name, key)
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
                .add_extension(x509.ExtendedKeyUsage(usages), False).sign(ca_key, hashes.SHA256()))
        write(name, key, cert)
    return paths


def test_etcd_with_client_certificates(etcd_factory, tmp_path):
    tls = make_tls(tmp_path)
    etcd = etcd_factory(tls)
    etcd.put(SMALL)
    args = {"backend": "etcd", "etcd_endpoints": [etcd.endpoint], "etcd_ca": tls["ca"],
            "etcd_cert": tls["client_cert"], "etcd_key": tls["client_key"]}
    assert ansible(args)["datastore"] == SMALL_VIEW
    # Without the client certificate etcd refuses us; without the CA we refuse etcd's certificate.
    no_cert = ansible({**args, "etcd_cert": None, "etcd_key": None, "timeout": 5})["datastore"]["error"]
    assert no_cert["kind"] == "credentials" and etcd.endpoint in no_cert["message"], no_cert
    assert no_cert["message"].endswith("(etcd asks for a client certificate: etcd_cert, etcd_key)")
    no_ca = ansible({**args, "etcd_ca": None, "timeout": 5})["datastore"]["error"]
    assert no_ca["kind"] == "tls" and "CERTIFICATE_VERIFY_FAILED" in no_ca["message"], no_ca
    # issue 11: a missing file is named with its option, before any request (not a bare "[Errno 2]").
    for option in ("etcd_ca", "etcd_cert", "etcd_key"):
        path = str(tmp_path / f"no-{option}.pem")
        error = ansible({**args, option: path})["datastore"]["error"]
        assert error == {"kind": "file", "message": f"{option} {path}: No such file or directory",
                         "details": [f"{option} {path}: No such file or directory"]}, error
    both = ansible({**args, "etcd_ca": str(tmp_path), "etcd_key": str(tmp_path / "gone.pem")})["datastore"]["error"]
    assert both["message"] == (f"etcd_ca {tmp_path}: Is a directory; "
                               f"etcd_key {tmp_path / 'gone.pem'}: No such file or directory")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n", encoding="utf-8")
    error = ansible({**args, "etcd_ca": str(not_pem)})["datastore"]["error"]
    assert error["kind"] == "file" and error["message"].startswith(f"etcd_ca {not_pem}: not a CA certificate in PEM")
    error = ansible({**args, "etcd_key": tls["ca_key"]})["datastore"]["error"]  # another certificate's key
    assert error["kind"] == "file" and error["message"].startswith(
        f"etcd_cert {tls['client_cert']} (etcd_key {tls['ca_key']}): cannot load the client certificate and its key")
    alone = ansible({**args, "etcd_cert": None})["datastore"]["error"]
    assert alone["kind"] == "config" and "etcd_key" in alone["message"]


# --- Kubernetes, through the kubectl stand-in ----------------------------------------------------------


@pytest.fixture
def kube(tmp_path):
    state, bindir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bindir.mkdir()
    for name, resource in (("nodes.json", "nodes"), ("ipamblocks.json", "ipamblocks.crd.projectcalico.org"),
                           ("blockaffinities.json", "blockaffinities.crd.projectcalico.org"),
                           ("v3/ipamblocks.json", "ipamblocks.projectcalico.org"),
                           ("v3/blockaffinities.json", "blockaffinities.projectcalico.org")):
        shutil.copyfile(KUBE_FIXTURES / name, state / f"list.{resource}.json")
    serve_groups(state, "crd.projectcalico.org")
    kubectl = bindir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_KUBECTL}" "$@"\n', encoding="utf-8")
    kubectl.chmod(0o755)
    env = {"FAKE_KUBE_DIR": str(state), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}

    def calls():
        return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    return {"state": state, "env": env, "calls": calls}


def serve_groups(state, *groups):
    """The API server's group list (`kubectl get --raw /apis`) with Calico's ``groups`` among others."""
    version = {"crd.projectcalico.org": "v1", "projectcalico.org": "v3"}
    names = ["apps", "operator.tigera.io", *groups]
    (state / "raw.apis.json").write_text(json.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": g, "versions": [{"groupVersion": f"{g}/{version.get(g, 'v1')}", "version": version.get(g, "v1")}],
         "preferredVersion": {"groupVersion": f"{g}/{version.get(g, 'v1')}", "version": version.get(g, "v1")}}
        for g in names]}), encoding="utf-8")


def get_calls(group, prefix=("--kubeconfig=/etc/kubernetes/admin.conf", "--context=prod"), timeout=20):
    out = [[*prefix, "get", "--raw=/apis", f"--request-timeout={timeout}s"]] if group is None else []
    group = group or "crd.projectcalico.org"
    return out + [[*prefix, "get", resource, "--output=json", f"--request-timeout={timeout}s"]
                  for resource in ("nodes", f"ipamblocks.{group}", f"blockaffinities.{group}")]


def test_kubernetes_read(kube, tmp_path):
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n", encoding="utf-8")
    result = ansible({"backend": "kubernetes", "kubeconfig": str(kubeconfig), "context": "prod",
                      "timeout": 20}, env=kube["env"])
    assert result["changed"] is False and "endpoint" not in result and not result.get("warnings")
    view = result["datastore"]
    assert view["source"] == "kubernetes" and view["errors"] == [] and view["error"] is None
    assert view["api_group"] == "crd.projectcalico.org/v1"
    assert sorted(view["nodes"]) == [f"node{i}" for i in range(1, 7)]
    assert view["nodes"]["node6"] == {"ipv4_address": "192.168.3.115/24", "ipip_tunnel_addr": "10.122.200.0",
                                      "vxlan_tunnel_addr": None, "vxlan_mac": None, "ready": False,
                                      "pod_cidrs": ["10.244.6.0/24"]}
    assert len(view["blocks"]) == 6 and "10.122.99.0/26" not in view["blocks"]  # soft-deleted
    # The group first, as libcalico-go finds it (discovery.go); then every list, the group named.
    assert kube["calls"]() == get_calls(None, (f"--kubeconfig={kubeconfig}", "--context=prod"))


def test_kubernetes_native_v3_crds(kube):
    """Only projectcalico.org is served (manifests/calico-v3-crds.yaml, v3.32+): the v3 CRDs are read."""
    v1 = ansible({"backend": "kubernetes"}, env=kube["env"])["datastore"]
    serve_groups(kube["state"], "projectcalico.org")
    v3 = ansible({"backend": "kubernetes"}, env=kube["env"])["datastore"]
    assert v3["api_group"] == "projectcalico.org/v3" and v3["error"] is None
    assert {**v3, "api_group": None} == {**v1, "api_group": None}
    assert kube["calls"]()[-3:] == get_calls("projectcalico.org", prefix=(), timeout=30)
    # With the Calico API server both are served: libcalico-go (and this module) read the v1 CRDs.
    serve_groups(kube["state"], "projectcalico.org", "crd.projectcalico.org")
    both = ansible({"backend": "kubernetes"}, env=kube["env"])["datastore"]
    assert both == v1 and kube["calls"]()[-1][1] == "blockaffinities.crd.projectcalico.org"


def test_kubernetes_explicit_group_skips_discovery(kube):
    (kube["state"] / "stderr.apis").write_text("error: discovery must not be asked\n", encoding="utf-8")
    view = ansible({"backend": "kubernetes", "calico_api_group": "projectcalico.org/v3"}, env=kube["env"])["datastore"]
    assert view["api_group"] == "projectcalico.org/v3" and view["error"] is None and len(view["blocks"]) == 6
    assert [c[1] for c in kube["calls"]()] == ["nodes", "ipamblocks.projectcalico.org",
                                               "blockaffinities.projectcalico.org"]


def test_kubernetes_read_failures_are_the_view_s_error(kube, tmp_path):
    def error(**args):
        result = ansible({"backend": "kubernetes", **args}, env=kube["env"])
        assert not result.get("failed") and result["datastore"]["nodes"] == {}, result
        assert any("could not be read" in w for w in result["warnings"])
        return result["datastore"]["error"]

    # No Calico group at all: Calico's CRDs are not installed.
    serve_groups(kube["state"])
    assert error() == {"kind": "resource_absent", "message": "the API server serves neither crd.projectcalico.org "
                       "nor projectcalico.org: Calico's CRDs are not installed in this cluster", "details": []}
    # The group is served but a CRD is missing.
    serve_groups(kube["state"], "crd.projectcalico.org")
    (kube["state"] / "list.blockaffinities.crd.projectcalico.org.json").unlink()
    missing = error()
    assert missing["kind"] == "resource_absent" and missing["message"] == (
        "kubectl could not list blockaffinities.crd.projectcalico.org: error: the server doesn't have a resource "
        'type "blockaffinities.crd.projectcalico.org"')
    # Credentials: kubectl's own words; the group list failing the same way stops at once.
    (kube["state"] / "stderr.apis").write_text("error: You must be logged in to the server (Unauthorized)\n",
                                               encoding="utf-8")
    (kube["state"] / "stderr.nodes").write_text("error: You must be logged in to the server (Unauthorized)\n",
                                                encoding="utf-8")
    assert error()["kind"] == "credentials"
    # A timeout while discovering is not waited for a second time.
    (kube["state"] / "stderr.apis").write_text(
        "Unable to connect to the server: dial tcp 192.0.2.10:6443: i/o timeout\n", encoding="utf-8")
    calls = len(kube["calls"]())
    timeout = error()
    assert timeout["kind"] == "timeout" and timeout["message"].startswith("kubectl could not read the API groups")
    assert len(kube["calls"]()) == calls + 1
    # kubectl and the kubeconfig: named before anything runs.
    assert error(kubectl="/nonexistent/kubectl")["kind"] == "kubectl"
    gone = tmp_path / "gone.conf"
    assert error(kubeconfig=str(gone)) == {"kind": "file", "message": f"kubeconfig {gone}: No such file or directory",
                                           "details": [f"kubeconfig {gone}: No such file or directory"]}


# --- the lab: a real data plane checked against a real etcd ---------------------------------------------

PLAYBOOK = """
- name: Audit the lab against Calico's etcd datastore
  hosts: calico_nodes
  gather_facts: false
  tasks:
    - name: Gather each node's facts
      netdoctor.calico.calico_node_facts:
        intended_ip: "{{ calico_intended_ip }}"

    - name: Read the datastore once, on the controller
      netdoctor.calico.calico_datastore_info:
        backend: etcd
        etcd_endpoints: ["{{ etcd_endpoint }}"]
      delegate_to: localhost
      run_once: true
      register: calico_datastore

    - name: Audit, with the datastore
      netdoctor.calico.fleet_audit:
        datastore: "{{ calico_datastore.datastore }}"
        intended_ip_var: calico_intended_ip
        report_dir: "{{ out }}"
        fail_on: never
      run_once: true
      register: audit

    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{ {'datastore': calico_datastore.datastore, 'audit': audit} | to_json }}"
        dest: "{{ out }}/results.json"
        mode: "0644"
      delegate_to: localhost
      run_once: true
"""


def ds_findings(audit):
    return sorted((f["id"], f["severity"], f["host"], (f.get("evidence") or {}).get("kind"))
                  for f in audit["findings"] if f["id"].startswith("DS"))


@pytest.mark.lab
def test_lab_against_its_etcd_datastore(lab_factory, etcd_factory, tmp_path):
    lab = lab_factory("dsl", mode="ipip", nodes=3, extra_nic=True)
    etcd = etcd_factory()
    record = lab.show()
    etcd.put(etcd_kvs(record))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")

    def audit(name):
        out = tmp_path / name
        out.mkdir()
        lab.ansible_playbook(str(playbook), "-e", f"etcd_endpoint={etcd.endpoint} out={out}")
        return json.loads((out / "results.json").read_text())

    healthy = audit("healthy")
    view = healthy["datastore"]
    nodes = {n["name"]: n for n in record["nodes"]}
    assert view["nodes"]["node1"]["ipv4_address"] == nodes["node1"]["underlay"][0]
    assert {n: v["ipip_tunnel_addr"] for n, v in view["nodes"].items()} == {
        n: v["tunnel_address"] for n, v in nodes.items()}
    assert {c: b["affinity_node"] for c, b in view["blocks"].items()} == {
        n["blocks"][0]: name for name, n in nodes.items()}
    assert ds_findings(healthy["audit"]) == []
    assert healthy["audit"]["summary"]["by_id"].keys().isdisjoint({"DS001", "DS002", "DS003"})

    # Plant what a datastore drifts into: a stale node with a block, a block the datastore gives
    # node1 that node1 never announced, node2's block released, and node3's address moved by the
    # lab (autodetection takes eth1) while etcd keeps the old one.
    base = record["nodes"][0]["underlay"][0].split("/")[0].rsplit(".", 1)
    slot_net = int(record["nodes"][0]["blocks"][0].split(".")[2]) - 1  # node i's block is 198.18.(64k+i).0/26
    stale_ip, stale_block = f"{base[0]}.{int(base[1]) + 8}/26", f"198.18.{slot_net + 9}.0/26"
    extra_block = f"198.18.{slot_net + 40}.0/26"
    etcd.put({"/calico/resources/v3/projectcalico.org/nodes/node9": node_value("node9", stale_ip, stale_block[:-3]),
              **block_kvs(stale_block, "node9"), **block_kvs(extra_block, "node1")})
    node2_block = nodes["node2"]["blocks"][0].replace("/", "-")
    etcd.etcdctl("del", f"/calico/ipam/v2/assignment/ipv4/block/{node2_block}")
    etcd.etcdctl("del", f"/calico/ipam/v2/host/node2/ipv4/block/{node2_block}")
    moved = lab.fault("autodetect-wrong-nic", node="node3")
    node3 = next(n for n in moved["nodes"] if n["name"] == "node3")
    assert node3["calico_ip"] != nodes["node3"]["calico_ip"]

    drifted = audit("drifted")
    assert ds_findings(drifted["audit"]) == [
        ("DS001", "critical", "node3", None),
        ("DS002", "warning", "node1", "not_announced"),
        ("DS002", "warning", "node2", "not_assigned"),
        ("DS003", "info", "node9", None),
    ]
    by_id = {(f["id"], f["host"]): f for f in drifted["audit"]["findings"]}
    assert by_id[("DS001", "node3")]["evidence"]["fields"]["ipv4_address"] == {
        "datastore": nodes["node3"]["underlay"][0],
        "node": [{"value": node3["calico_ip"], "source": "BIRD router id"}]}
    assert by_id[("DS002", "node1")]["evidence"]["blocks"] == [extra_block]
    assert by_id[("DS002", "node2")]["evidence"]["blocks"] == nodes["node2"]["blocks"]
    assert by_id[("DS003", "node9")]["evidence"]["blocks"] == [stale_block]
    report = json.loads((tmp_path / "drifted" / "report.json").read_text())
    assert report["summary"]["by_id"]["DS003"] == 1
    assert 'testsuite name="node9"' in (tmp_path / "drifted" / "junit.xml").read_text()

    # etcd catches up with node3's new address: DS001 goes (the wrong address itself is AD001's).
    etcd.put({k: v for k, v in etcd_kvs(lab.show()).items() if k.endswith("/nodes/node3")})
    caught_up = audit("caught_up")
    assert [f[:3] for f in ds_findings(caught_up["audit"])] == [
        ("DS002", "warning", "node1"), ("DS002", "warning", "node2"), ("DS003", "info", "node9")]
    lab.down()


# --- the audit role's datastore phase against the lab's emulated Kubernetes datastore --------------------

LAB_KUBECTL = REPO / "tests" / "lab" / "kubectl"


def lab_crds(lab, mode):
    """The lab option of tests/lab/kubectl: which Calico CRD groups the lab's API server serves."""
    Path(f"/run/netdoctor-lab/{lab.name}/kube-api.json").write_text(json.dumps({"calico_crds": mode}),
                                                                    encoding="utf-8")


def role_audit(lab, out, *extra):
    """`ansible-playbook netdoctor.calico.audit` with the Kubernetes datastore read through the lab's kubectl;
    (exit code, report.json, junit testcases {(suite, check): failed})."""
    kubeconfig = lab.labctl("kubeconfig", "--name", lab.name).stdout.strip()
    cmd = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "netdoctor.calico.audit", "-i", lab.inventory(),
           "-e", f"audit_report_dir={out}", "-e", "audit_datastore=kubernetes", "-e", f"audit_kubectl={LAB_KUBECTL}",
           "-e", f"audit_kubeconfig={kubeconfig}", *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
                          env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    report = json.loads((Path(out) / "report.json").read_text())
    cases = {(s.get("name"), c.get("name")): c.find("failure") is not None
             for s in ET.parse(Path(out) / "junit.xml").getroot().iter("testsuite") for c in s.iter("testcase")}
    return done, report, cases


@pytest.mark.lab
def test_audit_reads_either_crd_group_and_reports_a_datastore_it_cannot_read(lab_factory, tmp_path):
    lab = lab_factory("dsk", mode="ipip", nodes=3)
    nodes = [n["name"] for n in lab.nodes()]
    kubeconfig = lab.labctl("kubeconfig", "--name", lab.name).stdout.strip()
    read = {"backend": "kubernetes", "kubectl": str(LAB_KUBECTL), "kubeconfig": kubeconfig}

    views = {}
    for mode in ("v1", "v3", "apiserver"):
        lab_crds(lab, mode)
        views[mode] = run_module("calico_datastore_info", read)["datastore"]
        assert views[mode]["error"] is None and views[mode]["errors"] == [], views[mode]
    # libcalico-go's choice (discovery.go): v3 alone -> v3; v1, or v1 with the API server's v3 -> v1.
    assert {m: v["api_group"] for m, v in views.items()} == {
        "v1": "crd.projectcalico.org/v1", "v3": "projectcalico.org/v3", "apiserver": "crd.projectcalico.org/v1"}
    assert {**views["v3"], "api_group": None} == {**views["v1"], "api_group": None}
    assert sorted(views["v1"]["nodes"]) == nodes and len(views["v1"]["blocks"]) == len(nodes)

    # The audit role end to end, on each group: the datastore agrees with the nodes, DS001-DS003 ran and passed.
    for mode in ("v1", "v3"):
        lab_crds(lab, mode)
        done, report, cases = role_audit(lab, tmp_path / mode, "-e", "audit_fail_on=never")
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert not [f for f in report["findings"] if f["id"].startswith("DS")], report["findings"]
        assert report["summary"]["audited"] == len(nodes)
        for node in nodes:
            assert {c: failed for (s, c), failed in cases.items() if s == node and c.startswith("DS")} == {
                "DS001": False, "DS002": False, "DS003": False}, (mode, node)

    # No Calico CRD served: the read fails, the audit goes on and says so (DS000, a warning: the default
    # audit_fail_on=critical passes), with no DS check claiming to have passed on a node.
    lab_crds(lab, "none")
    done, report, cases = role_audit(lab, tmp_path / "none")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    (missing,) = [f for f in report["findings"] if f["id"].startswith("DS")]
    assert (missing["id"], missing["severity"], missing["host"]) == ("DS000", "warning", "datastore")
    assert missing["evidence"]["kind"] == "resource_absent"
    assert "Calico's CRDs are not installed" in missing["summary"]
    assert report["summary"]["by_id"].get("DS000") == 1 and sorted(report["hosts"]) == nodes
    assert {c for (s, c) in cases if c.startswith("DS")} == {"DS000"} and cases[("datastore", "DS000")]
    assert "could not be read (resource_absent)" in done.stdout + done.stderr  # the module's warning
    lab.down()
