"""report.json against the published JSON Schema (docs/report.schema.json).

tests/conftest.py validates every report.json the test session wrote (under pytest's base temp
directory) when the session ends, and fails the run on any that does not match."""

import json
import os

import jsonschema

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "report.schema.json")


def _validator():
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        schema = json.load(fh)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(document):
    """Where ``document`` breaks the schema: one line per error (empty when it is valid)."""
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))]


def written_reports(top):
    """Every report.json below ``top``."""
    for folder, _dirs, files in os.walk(top):
        if "report.json" in files:
            yield os.path.join(folder, "report.json")


def check_tree(top):
    """(number of reports read, {path: [errors]} for the invalid ones)."""
    bad, count = {}, 0
    for path in written_reports(top):
        count += 1
        with open(path, encoding="utf-8") as fh:
            found = errors(json.load(fh))
        if found:
            bad[path] = found
    return count, bad
