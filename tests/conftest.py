"""Make the collection importable as ``ansible_collections.netdoctor.calico`` (``make install``
links this checkout into ``.collections``)."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLLECTIONS = os.path.join(_ROOT, ".collections")
if not os.path.isdir(os.path.join(_COLLECTIONS, "ansible_collections", "netdoctor", "calico")):
    raise RuntimeError("the collection is not linked into .collections: run `make install` first")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)


def pytest_addoption(parser):
    parser.addoption("--no-skips", action="store_true",
                     help="fail the run when any test was skipped (make test sets it: a skipped test has not passed)")


def pytest_sessionfinish(session, exitstatus):
    if not session.config.getoption("--no-skips"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(f"--no-skips: {len(skipped)} test(s) skipped; that fails the run", red=True)
        session.exitstatus = 1
