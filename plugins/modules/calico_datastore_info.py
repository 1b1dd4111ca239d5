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
  - O(backend=kubernetes) runs C(kubectl get nodes), C(kubectl get ipamblocks.crd.projectcalico.org) and
    C(kubectl get blockaffinities.crd.projectcalico.org) with C(--output=json). That datastore has no Calico Node
    object - its fields are the Kubernetes Node's C(projectcalico.org/IPv4Address), C(IPv4IPIPTunnelAddr),
    C(IPv4VXLANTunnelAddr) and C(VXLANTunnelMACAddr) annotations.
  - Soft-deleted blocks and affinities (C(deleted) set) are left out, as Calico's readers leave them out; an affinity
    with no state (data from releases before states existed) counts as confirmed, as in Calico.
  - It reads the cluster, not the host it runs on - run it once, where the datastore is reachable (C(run_once) with
    C(delegate_to=localhost), or on a control-plane node).
author:
  - netdoctor.calico contributors (@netdoctor)
requirements:
  - For O(backend=etcd), etcd 3.4 or later (the C(/v3) gateway path) reachable from where the module runs.
  - For O(backend=kubernetes), kubectl, with a kubeconfig allowed to list nodes and the two Calico CRDs.
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
    - The datastore's view. C(source) is C(etcd) or C(kubernetes).
    - C(nodes) maps each Calico node name to C(ipv4_address) (as registered, with its prefix length),
      C(ipip_tunnel_addr), C(vxlan_tunnel_addr), C(vxlan_mac) (lower case) and C(ready) (the Kubernetes Node's Ready
      condition; null from etcd). A field the datastore does not hold is null.
    - C(blocks) maps each block CIDR to C(affinity_node) (the node the block belongs to), C(state) (that node's affinity
      - C(confirmed), C(pending), C(pendingDeletion), or null when there is no affinity object), C(affinities) (node to
      state, every live host affinity of the block), C(ipam_block) (the IPAM block object exists - an affinity can
      precede it) and C(allocations) (addresses in use in the block).
    - C(errors) lists entries that could not be read (not JSON, no CIDR); they are left out of the view.
  returned: always
  type: dict
  sample:
    source: etcd
    nodes:
      node1: {ipv4_address: 192.0.2.75/26, ipip_tunnel_addr: 198.18.65.0, vxlan_tunnel_addr: null, vxlan_mac: null,
              ready: null}
    blocks:
      198.18.65.0/26: {affinity_node: node1, state: confirmed, affinities: {node1: confirmed}, ipam_block: true,
                       allocations: 3}
    errors: []
endpoint:
  description: The etcd endpoint that answered.
  returned: when O(backend=etcd)
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


def _etcd_opener(params):
    context = ssl.create_default_context(cafile=params["etcd_ca"])
    if params["etcd_cert"]:
        context.load_cert_chain(params["etcd_cert"], params["etcd_key"])
    # No ProxyHandler settings: a proxy from the environment has no business between us and etcd.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


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
            raise OSError(f"HTTP {exc.code} from {url}: {detail or exc.reason}") from exc
    return post


def read_etcd(module):
    params = module.params
    try:
        opener = _etcd_opener(params)
    except (OSError, ssl.SSLError) as exc:
        module.fail_json(msg=f"cannot load the etcd TLS files: {exc}")
    if not params["etcd_endpoints"]:
        module.fail_json(msg="etcd_endpoints is empty: give at least one etcd client URL")
    errors = []
    for endpoint in params["etcd_endpoints"]:
        try:
            _revision, pairs = _datastore.etcd_read(_etcd_post(opener, endpoint, params["timeout"]))
        except (OSError, ValueError) as exc:  # URLError, timeouts and TLS errors are OSErrors
            errors.append(f"{endpoint}: {getattr(exc, 'reason', None) or exc}")
            continue
        return {"datastore": _datastore.view_from_etcd(pairs), "endpoint": endpoint}
    return module.fail_json(msg="no etcd endpoint answered: " + "; ".join(errors), errors=errors)


def read_kubernetes(module):
    params = module.params
    kubectl = params["kubectl"]
    binary = kubectl if os.sep in kubectl else module.get_bin_path(kubectl)
    if not binary or not os.access(binary, os.X_OK):
        module.fail_json(msg=f"kubectl not found ({kubectl!r}); install it or give its path in the kubectl option")
    base = _kube.base_command(binary, params["kubeconfig"], params["context"])
    documents = []
    for resource in _datastore.KUBE_RESOURCES:
        cmd = [*base, "get", resource, "--output=json", f"--request-timeout={params['timeout']}s"]
        rc, out, err = module.run_command(cmd)
        if rc != 0:
            module.fail_json(msg=f"kubectl could not list {resource}: {err.strip() or out.strip()}", cmd=cmd, rc=rc,
                             stdout=out, stderr=err)
        try:
            documents.append(json.loads(out))
        except ValueError:
            module.fail_json(msg=f"kubectl printed no JSON for {resource}", cmd=cmd, stdout=out)
    try:
        return {"datastore": _datastore.view_from_kubernetes(*documents)}
    except ValueError as exc:
        return module.fail_json(msg=str(exc))


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
        },
        required_if=[("backend", "etcd", ["etcd_endpoints"])],
        supports_check_mode=True,
    )


def main():
    module = build_module()
    module.run_command_environ_update = {"LANG": "C", "LC_ALL": "C", "LANGUAGE": "C"}
    if module.params["backend"] == "etcd":
        result = read_etcd(module)
    else:
        result = read_kubernetes(module)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
