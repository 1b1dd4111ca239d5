#!/usr/bin/python
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: calico_datastore_info
short_description: Read Calico's datastore - nodes, IPAM blocks, block affinities - from etcd or the Kubernetes API
version_added: 0.1.0
description:
  - Reads what Calico's datastore says about every node - its registered IPv4 address, IPIP and VXLAN tunnel addresses
    and VTEP MAC - and which node each IPAM block belongs to, and returns it as one view, the same whichever datastore
    Calico uses. M(netdoctor.calico.fleet_audit) compares it with the nodes (its
    O(netdoctor.calico.fleet_audit#module:datastore) option).
  - O(backend=etcd) reads libcalico-go's etcd v3 keys - C(/calico/resources/v3/projectcalico.org/nodes/),
    C(/calico/ipam/v2/assignment/) (IPAM blocks) and C(/calico/ipam/v2/host/) (block affinities) - through the etcd v3
    JSON gateway (C(POST /v3/kv/range)), a page of keys at a time, every page at the revision of the first answer so
    the view is one snapshot. IPAM handles (one per pod) are not read.
  - O(backend=kubernetes) runs C(kubectl get nodes), C(kubectl get ipamblocks.<group>) and
    C(kubectl get blockaffinities.<group>) with C(--output=json). The group is the one Calico itself uses
    (O(calico_api_group)) - by default found as libcalico-go finds it, from the API server's groups
    (C(kubectl get --raw /apis)) - C(crd.projectcalico.org) (v1 CRDs, also behind the Calico API server), or
    C(projectcalico.org) when only Calico's native v3 CRDs are installed (v3.32 and later). That datastore has no
    Calico Node object - its fields are the Kubernetes Node's C(projectcalico.org/IPv4Address),
    C(IPv4IPIPTunnelAddr), C(IPv4VXLANTunnelAddr) and C(VXLANTunnelMACAddr) annotations; the Node's
    C(spec.podCIDRs) are returned too (a cluster that runs Calico over host-local IPAM, C(USE_POD_CIDR), has them as
    its blocks - M(netdoctor.calico.fleet_audit) reads them so when the nodes' facts show that mode).
  - Soft-deleted blocks and affinities (C(deleted) set; a string in the v1 BlockAffinity CRD, read as Go's
    C(strconv.ParseBool)) are left out, as Calico's readers leave them out; an affinity with no state (data from
    releases before states existed, or an etcd affinity stored with no value) counts as confirmed, as in Calico.
  - A read that fails does not fail the task - the audit must go on and say so. The module warns and returns an
    empty view whose C(error) says why (Calico's CRDs not served, credentials, TLS, timeout, a missing file, ...);
    M(netdoctor.calico.fleet_audit) reports it as finding DS000. Files (O(etcd_ca), O(etcd_cert), O(etcd_key),
    O(kubeconfig)) are checked before any request and a problem names the option and the path. To make a failed read
    fail the task, register the result and set C(failed_when) to C(result.datastore.error).
  - It reads the cluster, not the host it runs on - run it once, where the datastore is reachable (C(run_once) with
    C(delegate_to=localhost), or on a control-plane node).
author:
  - netdoctor.calico contributors (@netdoctor)
requirements:
  - For O(backend=etcd), etcd 3.4 or later (the C(/v3) gateway path) reachable from where the module runs.
  - For O(backend=kubernetes), kubectl, with a kubeconfig allowed to list nodes and the two Calico CRDs (in either
    group).
extends_documentation_fragment:
  - netdoctor.calico._attributes
  - netdoctor.calico._attributes.actiongroup_calico
attributes:
  check_mode:
    support: full
    details: The module only reads, so check mode runs it unchanged.
  diff_mode:
    support: N/A
    details: The module never changes anything.
  idempotent:
    support: full
options:
  backend:
    description:
      - The datastore Calico uses - C(DATASTORE_TYPE=etcdv3) or C(kubernetes) in calico-node's environment.
    type: str
    required: true
    choices: [etcd, kubernetes]
  etcd_endpoints:
    description:
      - The etcd client URLs, for example C(https://192.0.2.10:2379) - Calico's C(ETCD_ENDPOINTS). Each is tried in turn
        until one answers.
      - Required with O(backend=etcd).
    type: list
    elements: str
  etcd_ca:
    description:
      - The CA certificate that signed the etcd server's certificate (Calico's C(ETCD_CA_CERT_FILE)). The system's CAs
        when not given.
    type: path
  etcd_cert:
    description:
      - The client certificate, when etcd asks for one (Calico's C(ETCD_CERT_FILE)).
    type: path
  etcd_key:
    description:
      - The client certificate's private key (Calico's C(ETCD_KEY_FILE)). Required with O(etcd_cert) unless the key is
        in that file.
    type: path
  timeout:
    description:
      - Seconds to wait for each etcd request or kubectl command.
    type: int
    default: 30
  kubectl:
    description:
      - The kubectl binary, a name looked up in C(PATH) or a path, for O(backend=kubernetes).
    type: str
    default: kubectl
  kubeconfig:
    description:
      - The kubeconfig kubectl uses (C(--kubeconfig)); kubectl's own default when not given.
    type: path
  context:
    description:
      - The kubeconfig context (C(--context)); the current context when not given.
    type: str
  calico_api_group:
    description:
      - The group and version of Calico's CRDs to read, for O(backend=kubernetes) - Calico's own
        C(CALICO_API_GROUP). C(auto) picks what libcalico-go picks - C(projectcalico.org/v3) when the API server serves
        that group and not C(crd.projectcalico.org), else C(crd.projectcalico.org/v1).
    type: str
    default: auto
    choices: [auto, crd.projectcalico.org/v1, projectcalico.org/v3]
notes:
  - etcd is read without an HTTP proxy, whatever the environment sets - it is on the cluster's own network.
  - etcd user/password authentication is not supported; use client certificates, as Calico does.
seealso:
  - module: netdoctor.calico.fleet_audit
    description: Compares the view with every node's facts (O(netdoctor.calico.fleet_audit#module:datastore)).
  - name: Calico - datastore
    description: etcd or the Kubernetes API as Calico's datastore.
    link: https://docs.tigera.io/calico/latest/getting-started/kubernetes/hardway/the-calico-datastore
"""

EXAMPLES = r"""
- name: Read Calico's etcd datastore from the controller, once for the play
  netdoctor.calico.calico_datastore_info:
    backend: etcd
    etcd_endpoints: ["https://192.0.2.10:2379", "https://192.0.2.11:2379"]
    etcd_ca: /etc/calico/certs/ca.pem
    etcd_cert: /etc/calico/certs/client.pem
    etcd_key: /etc/calico/certs/client-key.pem
  delegate_to: localhost
  run_once: true
  register: calico_datastore

- name: Or the Kubernetes datastore, with the admin kubeconfig of a control-plane node
  netdoctor.calico.calico_datastore_info:
    backend: kubernetes
    kubeconfig: /etc/kubernetes/admin.conf
  delegate_to: "{{ groups['kube_control_plane'][0] }}"
  run_once: true
  register: calico_datastore

- name: Compare it with the nodes in the fleet audit
  netdoctor.calico.fleet_audit:
    datastore: "{{ calico_datastore.datastore }}"
    report_dir: "{{ playbook_dir }}/reports"
  run_once: true
"""

RETURN = r"""
datastore:
  description:
    - The datastore's view. C(source) is C(etcd) or C(kubernetes); C(api_group) the group/version of the CRDs read
      (null for etcd); C(ipam) is C(calico) (blocks from Calico's IPAM objects).
    - C(nodes) maps each Calico node name to C(ipv4_address) (as registered, with its prefix length),
      C(ipip_tunnel_addr), C(vxlan_tunnel_addr), C(vxlan_mac) (lower case), C(ready) (the Kubernetes Node's Ready
      condition; null from etcd) and C(pod_cidrs) (the Kubernetes Node's C(spec.podCIDRs); empty from etcd). A field
      the datastore does not hold is null.
    - C(blocks) maps each block CIDR to C(affinity_node) (the node the block belongs to), C(state) (that node's affinity
      - C(confirmed), C(pending), C(pendingDeletion), or null when there is no affinity object), C(affinities) (node to
      state, every live host affinity of the block), C(ipam_block) (the IPAM block object exists - an affinity can
      precede it) and C(allocations) (addresses in use in the block).
    - C(errors) lists entries that could not be read (not JSON, no CIDR); they are left out of the view.
    - C(error) is null, or - the read failed, C(nodes) and C(blocks) are empty - C(kind) (C(resource_absent),
      C(credentials), C(tls), C(timeout), C(unreachable), C(file), C(config), C(kubectl), C(bad_output), C(http) or
      C(other)), C(message) and C(details) (each etcd endpoint's error, or the kubectl command).
  returned: always
  type: dict
  sample:
    source: etcd
    api_group: null
    ipam: calico
    nodes:
      node1: {ipv4_address: 192.0.2.75/26, ipip_tunnel_addr: 198.18.65.0, vxlan_tunnel_addr: null, vxlan_mac: null,
              ready: null, pod_cidrs: []}
    blocks:
      198.18.65.0/26: {affinity_node: node1, state: confirmed, affinities: {node1: confirmed}, ipam_block: true,
                       allocations: 3}
    errors: []
    error: null
endpoint:
  description: The etcd endpoint that answered.
  returned: when O(backend=etcd) and the read succeeded
  type: str
  sample: https://192.0.2.10:2379
"""

import json
import os
import ssl
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.netdoctor.calico.plugins.module_utils import _datastore, _kube

ETCD_FILES = ("etcd_ca", "etcd_cert", "etcd_key")
# kubectl failures after which another request cannot do better (and a timeout must not be waited twice).
_FINAL_KINDS = ("timeout", "unreachable", "tls", "config", "file")


class ReadError(Exception):
    """A read that failed: ``kind`` (one of _datastore.ERROR_KINDS), the message, per-try details."""

    def __init__(self, kind, message, details=()):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, list(details)
        self.api_group = None


def check_files(params, options):
    """Every file option given must be a readable file: checked before any request, each problem
    naming its option and path (a bare "[Errno 2]" from the TLS library names neither)."""
    problems = []
    for option in options:
        path = params.get(option)
        if not path:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            problems.append(f"{option} {path}: {exc.strerror or exc}")
    if problems:
        raise ReadError("file", "; ".join(problems), problems)


def _etcd_opener(params):
    check_files(params, ETCD_FILES)
    if params["etcd_key"] and not params["etcd_cert"]:
        raise ReadError("config", f"etcd_key {params['etcd_key']} is given without etcd_cert: give the client "
                                  "certificate it belongs to")
    try:
        context = ssl.create_default_context(cafile=params["etcd_ca"])
    except (OSError, ssl.SSLError) as exc:
        raise ReadError("file", f"etcd_ca {params['etcd_ca']}: not a CA certificate in PEM ({exc})") from exc
    if params["etcd_cert"]:
        key = f"etcd_key {params['etcd_key']}" if params["etcd_key"] else "its key in the same file"
        try:
            context.load_cert_chain(params["etcd_cert"], params["etcd_key"])
        except (OSError, ssl.SSLError) as exc:
            raise ReadError("file", f"etcd_cert {params['etcd_cert']} ({key}): cannot load the client certificate "
                                    f"and its key ({exc})") from exc
    # No ProxyHandler settings: a proxy from the environment has no business between us and etcd.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


class _Status(OSError):
    """etcd's gateway answered with an HTTP error status (``code``)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _etcd_post(opener, endpoint, timeout):
    url = endpoint.rstrip("/") + _datastore.ETCD_RANGE_PATH

    def post(body):
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with opener.open(request, timeout=timeout) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            # The gateway explains itself in a JSON body: {"error", "code", "message"}.
            detail = exc.read().decode("utf-8", "replace").strip()
            raise _Status(exc.code, f"HTTP {exc.code} from {url}: {detail or exc.reason}") from exc
    return post


def read_etcd(module):
    params = module.params
    if not params["etcd_endpoints"]:
        module.fail_json(msg="etcd_endpoints is empty: give at least one etcd client URL")
    opener = _etcd_opener(params)
    errors, kinds = [], []
    for endpoint in params["etcd_endpoints"]:
        try:
            _revision, pairs = _datastore.etcd_read(_etcd_post(opener, endpoint, params["timeout"]))
        except (OSError, ValueError) as exc:  # URLError, timeouts and TLS errors are OSErrors
            kind = _datastore.etcd_error_kind(exc, client_cert=bool(params["etcd_cert"]))
            hint = " (etcd asks for a client certificate: etcd_cert, etcd_key)" if (
                kind == "credentials" and not params["etcd_cert"]) else ""
            kinds.append(kind)
            errors.append(f"{endpoint}: {getattr(exc, 'reason', None) or exc}{hint}")
            continue
        return {"datastore": _datastore.view_from_etcd(pairs), "endpoint": endpoint}
    raise ReadError(_datastore.worst_kind(kinds), "no etcd endpoint answered: " + "; ".join(errors), errors)


def _kubectl(module, cmd, what):
    rc, out, err = module.run_command(cmd)
    if rc != 0:
        text = err.strip() or out.strip() or f"exit code {rc}"
        raise ReadError(_datastore.kubectl_error_kind(text), f"kubectl could not {what}: {text}", [" ".join(cmd)])
    return out


def _json(out, what):
    try:
        return json.loads(out)
    except ValueError:
        raise ReadError("bad_output", f"kubectl printed no JSON for {what}") from None


def discover_api_group(module, base, timeout):
    """The group/version of Calico's CRDs, as libcalico-go picks it from the API server's groups;
    on a discovery failure that another request could get past, crd.projectcalico.org/v1, as
    libcalico-go falls back."""
    try:
        document = _json(_kubectl(module, [*base, "get", f"--raw={_datastore.KUBE_DISCOVERY}",
                                           f"--request-timeout={timeout}s"], "read the API groups"), "/apis")
        group = _datastore.api_group_from_discovery(document)
    except ReadError as exc:
        if exc.kind in _FINAL_KINDS:
            raise
        return _datastore.API_GROUP_V1
    except ValueError:
        return _datastore.API_GROUP_V1
    if group is None:
        raise ReadError("resource_absent", "the API server serves neither crd.projectcalico.org nor "
                                           "projectcalico.org: Calico's CRDs are not installed in this cluster")
    return group


def read_kubernetes(module):
    params = module.params
    kubectl = params["kubectl"]
    binary = kubectl if os.sep in kubectl else module.get_bin_path(kubectl)
    if not binary or not os.access(binary, os.X_OK):
        raise ReadError("kubectl", f"kubectl not found ({kubectl!r}); install it or give its path in the kubectl "
                                   "option")
    check_files(params, ("kubeconfig",))
    base = _kube.base_command(binary, params["kubeconfig"], params["context"])
    group = params["calico_api_group"]
    if group == "auto":
        group = discover_api_group(module, base, params["timeout"])
    documents = []
    try:
        for resource in _datastore.resources_of(group):
            cmd = [*base, "get", resource, "--output=json", f"--request-timeout={params['timeout']}s"]
            documents.append(_json(_kubectl(module, cmd, f"list {resource}"), resource))
        try:
            return {"datastore": _datastore.view_from_kubernetes(*documents, api_group=group)}
        except ValueError as exc:
            raise ReadError("bad_output", str(exc)) from exc
    except ReadError as exc:
        exc.api_group = group
        raise


def build_module():
    return AnsibleModule(
        argument_spec={
            "backend": {"type": "str", "required": True, "choices": ["etcd", "kubernetes"]},
            "etcd_endpoints": {"type": "list", "elements": "str"},
            "etcd_ca": {"type": "path"},
            "etcd_cert": {"type": "path"},
            "etcd_key": {"type": "path"},
            "timeout": {"type": "int", "default": 30},
            "kubectl": {"type": "str", "default": "kubectl"},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
            "calico_api_group": {"type": "str", "default": "auto", "choices": ["auto", *_datastore.API_GROUPS]},
        },
        required_if=[("backend", "etcd", ["etcd_endpoints"])],
        supports_check_mode=True,
    )


def main():
    module = build_module()
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    backend = module.params["backend"]
    try:
        result = read_etcd(module) if backend == "etcd" else read_kubernetes(module)
    except ReadError as exc:
        # Not a module failure: the audit goes on and reports the missing view (DS000).
        module.warn(f"Calico's datastore ({backend}) could not be read ({exc.kind}): {exc.message}")
        result = {"datastore": _datastore.error_view(backend, exc.kind, exc.message, exc.details, exc.api_group)}
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
