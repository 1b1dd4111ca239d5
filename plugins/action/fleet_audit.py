# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fleet_audit: the cross-node audit, run on the controller over every play host's facts."""

from __future__ import annotations

import datetime
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue, _contract
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _datastore_rules, _fleet, _report
from ansible_collections.netdoctor.calico.plugins.plugin_utils._files import write_atomic

FORMATS = {"json": "report.json", "md": "report.md", "html": "report.html", "junit": "junit.xml",
           "prometheus": "calico_audit.prom"}
# prometheus is asked for where a textfile collector reads it (a scheduled audit), not by default.
DEFAULT_FORMATS = ["json", "md", "html", "junit"]

ARGUMENT_SPEC = {
    "hosts": {"type": "list", "elements": "str"},
    "unreachable": {"type": "raw"},
    "intended_ips": {"type": "dict", "default": {}},
    "intended_ip_var": {"type": "str"},
    "drift": {"type": "dict", "default": {}},
    "pools": {"type": "list", "elements": "str", "default": []},
    "cross_subnet": {"type": "bool", "default": False},
    "report_dir": {"type": "path"},
    "formats": {"type": "list", "elements": "str", "choices": list(FORMATS), "default": DEFAULT_FORMATS},
    "query": {"type": "str"},
    "fail_on": {"type": "str", "choices": list(_catalogue.FAIL_ON), "default": "critical"},
    "junit_fail_on": {"type": "str", "choices": list(_catalogue.FAIL_ON), "default": "warning"},
    "map_only": {"type": "bool", "default": False},
    "datastore": {"type": "dict"},
    "cluster_var": {"type": "str", "default": "calico_cluster"},
    "clusters": {"type": "dict", "default": {}},
}


def _unreachable(value):
    """The ``unreachable`` option: a list of hosts, or host -> reason (None: no reason known)."""
    if isinstance(value, dict):
        return {str(h): (str(r) if r not in (None, "") else None) for h, r in value.items()}
    if isinstance(value, (list, tuple)):
        return {str(h): None for h in value}
    if isinstance(value, str):
        return {h.strip(): None for h in value.split(",") if h.strip()}
    raise AnsibleActionFail(f"unreachable must be a list of hosts or a dict host -> reason, not {type(value).__name__}")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)

        play_hosts = list(task_vars.get("ansible_play_hosts_all") or ())
        hosts = args["hosts"] if args["hosts"] is not None else play_hosts
        hostvars = task_vars.get("hostvars") or {}
        if args["unreachable"] is not None:
            unreachable = _unreachable(args["unreachable"])
        else:
            # Failed or unreachable hosts drop out of ansible_play_hosts but stay in _all.
            unreachable = dict.fromkeys(set(play_hosts) - set(task_vars.get("ansible_play_hosts") or ()))
        if not hosts:
            raise AnsibleActionFail("no host to audit: the host group matched no host (check its name and --limit)")
        facts_by_host, intended, clusters = {}, {}, {}
        for host in hosts:
            host_vars = hostvars.get(host) or {}
            fact = (host_vars.get("ansible_facts") or {}).get("calico_node")
            facts_by_host[host] = fact if isinstance(fact, dict) and host not in unreachable else None
            if args["intended_ip_var"] and host_vars.get(args["intended_ip_var"]):
                intended[host] = str(host_vars[args["intended_ip_var"]])
            cluster = args["clusters"].get(host, host_vars.get(args["cluster_var"]))
            if cluster is not None:
                if not isinstance(cluster, str) or not cluster.strip() or "\n" in cluster:
                    raise AnsibleActionFail(f"{host}: {args['cluster_var']} must be a cluster name, not {cluster!r}")
                clusters[host] = cluster.strip()
        intended.update({h: str(ip) for h, ip in args["intended_ips"].items()})
        # A host in the play without facts (facts task skipped or failed) was not audited either.
        for host, fact in facts_by_host.items():
            if fact is None:
                unreachable.setdefault(host, None)

        groups = _fleet.group_clusters(facts_by_host, clusters)
        if args["map_only"]:
            # The first half of an audit: the map each node checks its own routes against, per cluster.
            maps = {name: _contract.expected_map({h: facts_by_host[h] for h in members},
                                                 {h: ip for h, ip in intended.items() if h in members},
                                                 pools=args["pools"], cross_subnet=args["cross_subnet"])
                    for name, members in groups.items()}
            result.update(changed=False, expected_maps=maps,
                          clusters={h: name for name, members in groups.items() for h in members},
                          drift_needed=sorted(h for name, members in groups.items() for h in _fleet.drift_needed(
                              {m: facts_by_host[m] for m in members}, maps[name])))
            if len(maps) == 1:
                result["expected_map"] = next(iter(maps.values()))
            return result

        try:
            maps, findings, host_lines = _fleet.audit_fleet(
                facts_by_host, clusters=clusters, intended_ips=intended, drift_by_host=args["drift"],
                unreachable=unreachable, pools=args["pools"], cross_subnet=args["cross_subnet"],
                datastore=args["datastore"])
        except ValueError as exc:  # a datastore option that is no calico_datastore_info view
            raise AnsibleActionFail(f"datastore: {exc}") from exc
        generated = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        report = _report.build_report(maps, findings, host_lines, generated)
        # Without a datastore view (none given, or its read failed: DS000) the DS rules did not run: no
        # JUnit testcase claims they passed.
        checks = _datastore_rules.junit_checks(_fleet.CHECKS, args["datastore"])

        report_paths = {}
        if args["report_dir"]:
            try:
                os.makedirs(args["report_dir"], exist_ok=True)
                for fmt in args["formats"]:
                    path = os.path.join(args["report_dir"], FORMATS[fmt])
                    write_atomic(path, self._render(fmt, report, args["junit_fail_on"], checks), prefix=".fleet_audit.")
                    report_paths[fmt] = path
            except OSError as exc:
                raise AnsibleActionFail(f"cannot write the fleet audit reports to {args['report_dir']}: {exc}") from exc

        result.update(changed=False, expected_maps=maps, findings=findings, summary=report["summary"],
                      report_paths=report_paths)
        if len(maps) == 1:
            result["expected_map"] = next(iter(maps.values()))
        if args["query"]:
            try:
                result["query_result"] = _report.query(report, args["query"])
            except (ValueError, RuntimeError) as exc:
                raise AnsibleActionFail(str(exc)) from exc
        # Fail last, after the reports are on disk: this is the CI exit code.
        bad = _catalogue.failing(findings, args["fail_on"])
        if not report["summary"]["audited"] and args["fail_on"] != "never":
            result["failed"] = True
            result["msg"] = (f"no node was audited: all {report['summary']['hosts']} host(s) were unreachable or "
                             "gave no facts; see the UNREACH findings")
        elif bad:
            result["failed"] = True
            result["msg"] = (f"{len(bad)} finding(s) at or above fail_on={args['fail_on']}: "
                             + "; ".join(f"{f['id']} {f['host']}: {f['summary']}" for f in bad[:5])
                             + (" ..." if len(bad) > 5 else ""))
        return result

    @staticmethod
    def _render(fmt, report, junit_fail_on, checks):
        if fmt == "json":
            return _report.render_json(report)
        if fmt == "md":
            return _report.render_markdown(report)
        if fmt == "html":
            return _report.render_html(report)
        if fmt == "prometheus":
            return _report.render_prometheus(report)
        return _report.render_junit(report, checks, junit_fail_on)
