# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""repair_plan: the repair's plan from an audit report, and its before/after report, on the controller."""

from __future__ import annotations

import datetime
import json
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.netdoctor.calico.plugins.module_utils import _catalogue
from ansible_collections.netdoctor.calico.plugins.plugin_utils import _repair, _report
from ansible_collections.netdoctor.calico.plugins.plugin_utils._files import write_atomic

PLAN_OPTIONS = ("report_path", "hosts", "min_severity", "steps", "run_tags", "skip_tags", "method", "replay")
REPORT_OPTIONS = ("before", "after_autodetection", "after", "plan", "check_mode", "fail_on", "report_dir",
                  "changes", "probes", "autodetection_result")
ARGUMENT_SPEC = {
    "mode": {"type": "str", "required": True, "choices": ["plan", "report"]},
    # mode=plan
    "report_path": {"type": "path"},
    "hosts": {"type": "list", "elements": "str"},
    "min_severity": {"type": "str", "choices": list(_catalogue.SEVERITIES), "default": "warning"},
    "steps": {"type": "dict", "options": {step: {"type": "bool", "default": True} for step in _repair.STEPS}},
    "run_tags": {"type": "list", "elements": "str", "default": ["all"]},
    "skip_tags": {"type": "list", "elements": "str", "default": []},
    "method": {"type": "str", "default": ""},
    "replay": {"type": "dict", "default": {}},
    # mode=report
    "before": {"type": "path"},
    "after_autodetection": {"type": "path"},
    "after": {"type": "path"},
    "plan": {"type": "dict"},
    "check_mode": {"type": "bool"},
    "fail_on": {"type": "str", "choices": list(_catalogue.FAIL_ON), "default": "warning"},
    "report_dir": {"type": "path"},
    "changes": {"type": "dict", "default": {}},
    "probes": {"type": "dict", "default": {}},
    "autodetection_result": {"type": "dict"},
}
REQUIRED_IF = [("mode", "plan", ("report_path",)), ("mode", "report", ("before", "plan", "report_dir"))]
WHAT = {"report_path": "the audit report to plan from", "before": "the audit report before the repair",
        "after": "the audit report after the repair"}
FILES = {"json": "repair.json", "md": "repair.md"}


def read_report(path, option):
    """An audit's report.json document, or a failure that names the option and the file."""
    what = WHAT[option]
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except FileNotFoundError:
        msg = (f"{option}: {what}, {path}, does not exist - the audit (the netdoctor.calico.audit role, or fleet_audit "
               "with report_dir) writes it; did it run into this directory?")
        raise AnsibleActionFail(msg) from None
    except (OSError, ValueError) as exc:
        raise AnsibleActionFail(f"{option}: cannot read {what}, {path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise AnsibleActionFail(f"{option}: {path} is not an audit report.json (no list of findings)")
    return doc


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF)
        mode = args["mode"]
        foreign = sorted(set(self._task.args) & set(REPORT_OPTIONS if mode == "plan" else PLAN_OPTIONS))
        if foreign:
            raise AnsibleActionFail(f"{', '.join(foreign)}: not an option of mode={mode} (the options of mode={mode} "
                                    f"are {', '.join(PLAN_OPTIONS if mode == 'plan' else REPORT_OPTIONS)})")
        result["changed"] = False
        if mode == "plan":
            result["plan"] = _repair.plan({
                "report": read_report(args["report_path"], "report_path"), "hosts": args["hosts"],
                "min_severity": args["min_severity"], "steps": args["steps"], "run_tags": args["run_tags"],
                "skip_tags": args["skip_tags"], "method": args["method"], "replay": args["replay"]})
            return result

        before = read_report(args["before"], "before")
        after = read_report(args["after"], "after") if args["after"] else None
        check_mode = args["check_mode"] if args["check_mode"] is not None else bool(self._task.check_mode)
        doc = _repair.document(
            before, after, args["plan"], changes=args["changes"], probes=args["probes"], check_mode=check_mode,
            fail_on=args["fail_on"], autodetection_result=args["autodetection_result"],
            reports={k: args[k] for k in _repair.REPORTS},
            generated=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
        report_dir = args["report_dir"]
        paths = {fmt: os.path.join(report_dir, name) for fmt, name in FILES.items()}
        # Written in check mode too, on the controller only: in check mode the report is the plan.
        try:
            os.makedirs(report_dir, exist_ok=True)
            write_atomic(paths["json"], _report.render_json(doc), prefix=".repair.")
            write_atomic(paths["md"], _repair.markdown(doc), prefix=".repair.")
        except OSError as exc:
            raise AnsibleActionFail(f"cannot write the repair reports to {report_dir}: {exc}") from exc
        result.update(_repair.report_result(doc, paths))
        return result
