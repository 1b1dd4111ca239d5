"""Make the collection importable as ``ansible_collections.netdoctor.calico``.

- Under ``make`` (pytest from the checkout): ``make install`` links this checkout into
  ``.collections/ansible_collections/netdoctor/calico``; that tree goes on ``sys.path``.
- Under ``ansible-test units`` (or any pytest run from a copy that already sits in an
  ``ansible_collections/netdoctor/calico`` tree, as tests/ecosystem/run.sh makes): the tree the
  collection is in is used, and no ``.collections`` link is needed.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TREE = os.path.dirname(os.path.dirname(os.path.dirname(_ROOT)))
if os.path.join(_TREE, "ansible_collections", "netdoctor", "calico") == _ROOT:
    _COLLECTIONS = _TREE
else:
    _COLLECTIONS = os.path.join(_ROOT, ".collections")
    if not os.path.isdir(os.path.join(_COLLECTIONS, "ansible_collections", "netdoctor", "calico")):
        raise RuntimeError("the collection is not linked into .collections: run `make install` first")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
# tests/ itself (its helper modules, report_schema): pytest puts it on sys.path when it loads this file
# from the checkout, ansible-test's collection loader does not.
_TESTS = os.path.join(_ROOT, "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)


def pytest_addoption(parser):
    parser.addoption("--no-skips", action="store_true",
                     help="fail the run when any test was skipped (make test sets it: a skipped test has not passed)")


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    _check_written_reports(session, reporter)
    if not session.config.getoption("--no-skips"):
        return
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"--no-skips: {len(skipped)} test(s) skipped; that fails the run", red=True)
        session.exitstatus = 1


def _check_written_reports(session, reporter):
    """Every report.json this session wrote must match docs/report.schema.json."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    try:
        top = factory.getbasetemp() if factory is not None else None
    except (OSError, ValueError):
        top = None
    if top is None or not os.path.isdir(top):
        return
    import report_schema  # noqa: PLC0415 - tests/ is on sys.path (rootdir conftest); jsonschema only when needed

    count, bad = report_schema.check_tree(str(top))
    if reporter and count:
        reporter.write_line(f"report schema: {count} report.json file(s) checked, {len(bad)} invalid")
    for path, found in bad.items():
        if reporter:
            reporter.write_line(f"{path} does not match docs/report.schema.json: " + "; ".join(found[:5]), red=True)
    if bad:
        session.exitstatus = 1
