# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: not a public API, may change at any time without notice.

"""calico-node's environment in a calico.yaml manifest, read and edited line by line.

A YAML round trip would re-indent, re-quote and drop the comments of a 13,000-line file; these
functions change only the lines of the env entries they set (or add two lines) and keep every other
byte. They follow block-style YAML as upstream manifests and ``kubectl get -o yaml`` write it;
anything else on the way to the env list (flow style, a duplicate key) is refused with a
ManifestError instead of guessed at. ``check_edit`` re-reads both texts with PyYAML, when it is
installed, and proves that only the intended variables changed.
"""

from __future__ import annotations

import copy
import json
import re

try:
    import yaml
except ImportError:
    yaml = None

DAEMONSET = "calico-node"
CONTAINER = "calico-node"
# A new variable goes after the first of these that is set, else at the end of env.
ANCHORS = {"IP_AUTODETECTION_METHOD": ("IP",), "IP6_AUTODETECTION_METHOD": ("IP6", "IP_AUTODETECTION_METHOD", "IP")}

_DASH = re.compile(r"-(?: +|$)")
_KEY = re.compile(r"""(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^']|'')*)'|(?P<plain>[^\s#'"\[\]{},&*!|>%@`][^#]*?))"""
                  r"""[ \t]*:(?:[ \t]+|$)""")
_DOC_MARK = re.compile(r"(?:---|\.\.\.)(?:\s|$)")


class ManifestError(ValueError):
    """The manifest has no calico-node env list this module can edit safely."""


class _Line:
    """One line: its indentation, whether it is a block sequence entry (``- ``), and the column of
    what follows the dash (the column of the entry's first key)."""

    __slots__ = ("body", "col", "dash", "eol", "indent", "sig", "text")

    def __init__(self, raw):
        self.text = raw.rstrip("\r\n")
        self.eol = raw[len(self.text):]
        stripped = self.text.lstrip(" ")
        self.indent = len(self.text) - len(stripped)
        self.sig = bool(stripped.strip()) and not stripped.startswith("#")
        dash = _DASH.match(stripped) if self.sig else None
        self.dash = dash is not None
        self.col = self.indent + (dash.end() if dash else 0)
        self.body = self.text[self.col:]


def _key(line):
    """``(key, offset of its value in line.text)`` when the line holds a mapping key, else None."""
    m = _KEY.match(line.body) if line.sig else None
    if not m:
        return None
    if m.group("dq") is not None:
        try:
            key = json.loads('"' + m.group("dq") + '"')
        except ValueError:
            return None
    elif m.group("sq") is not None:
        key = m.group("sq").replace("''", "'")
    else:
        key = m.group("plain")
    return key, line.col + m.end()


def _scalar(text):
    """A scalar written on one line -> ``(value, tail)``, tail being the spaces and comment after it;
    None for anything else (block scalar, flow collection, alias, tag, nothing)."""
    if not text.strip() or text[0] in "|>[{&*!%@`#":
        return None
    if text[0] == '"':
        m = re.match(r'"(?:[^"\\]|\\.)*"', text)
        try:
            value = json.loads(m.group(0)) if m else None
        except ValueError:
            value = None    # a YAML-only escape such as \x41: not worth guessing
        end = m.end() if m else 0
    elif text[0] == "'":
        m = re.match(r"'((?:[^']|'')*)'", text)
        value = m.group(1).replace("''", "'") if m else None
        end = m.end() if m else 0
    else:
        m = re.search(r"[ \t]#", text)
        value = text[:m.start() if m else len(text)].rstrip()
        end = len(value)
        if re.search(r":(?:[ \t]|$)", value):
            return None
    tail = text[end:]
    if value is None or (tail.strip() and not tail.lstrip().startswith("#")):
        return None
    return value, tail


def _value_end(lines, k, end):
    """End (exclusive) of the value of the key on line k: the lines indented deeper than the key, and
    a block sequence written at the key's own indentation."""
    col = lines[k].col
    for j in range(k + 1, end):
        ln = lines[j]
        if ln.sig and (ln.indent < col or (ln.indent == col and not ln.dash)):
            return j
    return end


def _after_last(lines, start, end):
    """Index after the last significant line in [start, end); start when there is none."""
    for j in range(end - 1, start - 1, -1):
        if lines[j].sig:
            return j + 1
    return start


def _first(lines, start, end):
    return next((j for j in range(start, end) if lines[j].sig), None)


def _get(lines, start, end, col, key):
    """Line of ``key`` in the block mapping whose keys sit at column ``col`` in [start, end), or None."""
    found = [j for j in range(start, end)
             if lines[j].sig and lines[j].col == col and (_key(lines[j]) or (None,))[0] == key]
    if len(found) > 1:
        raise ManifestError(f"key {key!r} appears twice (lines {found[0] + 1} and {found[1] + 1})")
    return found[0] if found else None


def _inline(lines, k):
    """What follows ``key:`` on line k (comments dropped)."""
    rest = lines[k].text[_key(lines[k])[1]:]
    return "" if rest.lstrip().startswith("#") else rest.strip()


def _scalar_of(lines, start, end, col, key):
    k = _get(lines, start, end, col, key)
    if k is None or _after_last(lines, k + 1, _value_end(lines, k, end)) > k + 1:
        return None
    parsed = _scalar(lines[k].text[_key(lines[k])[1]:])
    return parsed[0] if parsed else None


def _mapping(lines, start, end, col, key, *, where):
    """``(start, end, col)`` of the block mapping under ``key``; ManifestError when there is none."""
    k = _get(lines, start, end, col, key)
    if k is None:
        raise ManifestError(f"{where} has no {key!r}")
    if _inline(lines, k):
        raise ManifestError(f"line {k + 1}: {where}.{key} is not written as a block mapping")
    s, e = k + 1, _value_end(lines, k, end)
    first = _first(lines, s, e)
    if first is None or lines[first].dash:
        raise ManifestError(f"line {k + 1}: {where}.{key} is not a mapping")
    return s, e, lines[first].col


def _items(lines, k, end, where):
    """``[(start, end, col)]`` of the block sequence under the key on line k."""
    if _inline(lines, k):
        raise ManifestError(f"line {k + 1}: {where} is not written as a block sequence")
    s, e = k + 1, _value_end(lines, k, end)
    first = _first(lines, s, e)
    if first is None:
        return []
    if not lines[first].dash:
        raise ManifestError(f"line {first + 1}: {where} is not a sequence")
    starts = [j for j in range(first, e) if lines[j].sig and lines[j].dash and lines[j].indent == lines[first].indent]
    items = []
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else e
        # "-" alone on its line: the entry's keys start on the next line
        col = lines[a].col if lines[a].body.strip() else lines[_first(lines, a + 1, b) or a].col
        items.append((a, b, col))
    return items


def _documents(lines):
    marks = [i for i, ln in enumerate(lines) if _DOC_MARK.match(ln.text)]
    bounds = [-1, *marks, len(lines)]
    return [(bounds[i] + 1, bounds[i + 1]) for i in range(len(bounds) - 1)]


def _locate(lines):
    """The calico-node container's env: ``{"key": line of env:, "items": [(start, end, col)],
    "entries": [entry]}`` (see ``_entry``)."""
    daemonsets = []
    for s, e in _documents(lines):
        if _scalar_of(lines, s, e, 0, "kind") != "DaemonSet" or _get(lines, s, e, 0, "metadata") is None:
            continue
        meta = _mapping(lines, s, e, 0, "metadata", where="the document")
        if _scalar_of(lines, *meta, "name") == DAEMONSET:
            daemonsets.append((s, e, 0))
    if not daemonsets:
        raise ManifestError(f"no DaemonSet named {DAEMONSET} in the manifest")
    if len(daemonsets) > 1:
        raise ManifestError(f"{len(daemonsets)} DaemonSets named {DAEMONSET} (documents starting at lines "
                            + ", ".join(str(d[0] + 1) for d in daemonsets) + ")")
    block = daemonsets[0]
    where = f"the {DAEMONSET} DaemonSet"
    for key in ("spec", "template", "spec"):
        block = _mapping(lines, *block, key, where=where)
        where += "." + key
    k = _get(lines, *block, "containers")
    if k is None:
        raise ManifestError(f"{where} has no containers")
    containers = [c for c in _items(lines, k, block[1], where + ".containers")
                  if _scalar_of(lines, *c, "name") == CONTAINER]
    if len(containers) != 1:
        raise ManifestError(f"{where}.containers has {len(containers)} containers named {CONTAINER}")
    a, b, col = containers[0]
    k = _get(lines, a, b, col, "env")
    if k is None:
        raise ManifestError(f"the {CONTAINER} container has no env list")
    items = _items(lines, k, b, f"the {CONTAINER} container's env")
    return {"key": k, "items": items, "entries": [_entry(lines, *item) for item in items]}


def _entry(lines, start, end, col):
    """One env entry: ``{"name", "start", "after" (index after its last line), "indent", "col",
    "value_line", "value" (str, or None when it is not a one-line scalar), "tail", "value_end",
    "value_from" (line or None)}``."""
    k = _get(lines, start, end, col, "value")
    entry = {"name": _scalar_of(lines, start, end, col, "name"), "start": start,
             "after": _after_last(lines, start, end), "indent": lines[start].indent, "col": col,
             "value_line": k, "value": None, "tail": "", "value_end": None,
             "value_from": _get(lines, start, end, col, "valueFrom")}
    if k is not None:
        entry["value_end"] = _after_last(lines, k + 1, _value_end(lines, k, end))
        parsed = _scalar(lines[k].text[_key(lines[k])[1]:]) if entry["value_end"] == k + 1 else None
        if parsed:
            entry["value"], entry["tail"] = parsed
    return entry


def _split(text):
    return [_Line(raw) for raw in text.splitlines(keepends=True)]


def calico_node_env(text):
    """calico-node's env in the manifest, in order:
    ``[{"name", "value": str | None, "value_from": bool, "line": n}]`` (``line`` counts from 1).

    Raises ManifestError when the manifest has no single calico-node DaemonSet container with an env
    list in block style.
    """
    return [{"name": e["name"], "value": e["value"], "value_from": e["value_from"] is not None, "line": e["start"] + 1}
            for e in _locate(_split(text))["entries"]]


def _quoted(value):
    # JSON's string syntax is a subset of YAML's double-quoted scalars.
    return json.dumps(value)


def _set_one(text, name, value):
    lines = _split(text)
    env = _locate(lines)
    out = [ln.text + ln.eol for ln in lines]
    eol = next((ln.eol for ln in lines if ln.eol), "\n")
    mine = [e for e in env["entries"] if e["name"] == name]
    for e in mine:
        if e["value_from"] is not None:
            raise ManifestError(f"line {e['value_from'] + 1}: {name} is set with valueFrom; change its source, or "
                                "replace valueFrom with value in the manifest first")
    # bottom-up, so the line numbers of the entries above stay valid
    for e in reversed(mine):
        k = e["value_line"]
        if k is None:
            out[e["after"] - 1:e["after"]] = [_ensure_eol(out[e["after"] - 1], eol),
                                              " " * e["col"] + "value: " + _quoted(value) + eol]
        elif e["value"] != value or e["value_end"] != k + 1:
            prefix = lines[k].text[:_key(lines[k])[1]]
            prefix += "" if prefix.endswith((" ", "\t")) else " "
            out[k:e["value_end"]] = [prefix + _quoted(value) + e["tail"] + (lines[k].eol or eol)]
    if mine:
        return "".join(out)

    entries = env["entries"]
    anchor = next((e for want in ANCHORS.get(name, ()) for e in reversed(entries) if e["name"] == want),
                  entries[-1] if entries else None)
    if anchor is not None:
        at, indent, col = anchor["after"], anchor["indent"], anchor["col"]
    else:
        at = _after_last(lines, env["key"], env["key"] + 1)
        indent = lines[env["key"]].col + 2
        col = indent + 2
    new = [" " * indent + "- name: " + name, " " * col + "value: " + _quoted(value)]
    out[at - 1] = _ensure_eol(out[at - 1], eol)
    out[at:at] = [line + eol for line in new]
    return "".join(out)


def _ensure_eol(raw, eol):
    return raw if raw.endswith(("\n", "\r")) else raw + eol


def set_env(text, values):
    """``text`` with calico-node's env setting each ``{name: value}`` of ``values``.

    An entry that is set is rewritten on its own lines (every entry of that name, if it repeats);
    a missing one is added after its anchor (``ANCHORS``: IP_AUTODETECTION_METHOD after IP) or at
    the end of env, in the style of the entries around it. An entry set with ``valueFrom`` is
    refused. Returns ``text`` itself when nothing changes.
    """
    for name, value in values.items():
        text = _set_one(text, name, value)
    return text


def _container_env(docs):
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "DaemonSet" \
                and (doc.get("metadata") or {}).get("name") == DAEMONSET:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container.get("name") == CONTAINER:
                    return container
    return None


def check_edit(before, after, values):
    """Re-read ``before`` and ``after`` with PyYAML and raise ManifestError unless ``after`` is
    ``before`` with only calico-node's ``values`` set. False when PyYAML is not installed (nothing
    checked), True when checked."""
    if yaml is None:
        return False
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = [list(yaml.load_all(text, Loader=loader)) for text in (before, after)]
    except yaml.YAMLError as exc:
        raise ManifestError(f"the manifest is not valid YAML: {exc}") from None
    plain = copy.deepcopy(docs)
    envs = []
    for version in plain:
        container = _container_env(version)
        if container is None:
            raise ManifestError("PyYAML finds no calico-node container in the manifest")
        envs.append(container.pop("env", None) or [])
    rest = [[e for e in env if e.get("name") not in values] for env in envs]
    ours = [e for e in envs[1] if e.get("name") in values]
    exact = {(e.get("name"), e.get("value")) for e in ours} == set(values.items()) \
        and all(set(e) == {"name", "value"} for e in ours)
    if plain[0] != plain[1] or rest[0] != rest[1] or not exact:
        raise ManifestError("the edited manifest does not read back as the original with only "
                            f"{', '.join(values)} changed; the file was left alone")
    return True
