"""The lab's datastore on disk (/run/netdoctor-lab/<name>/state.json), the one lock every
changing command takes, and the choice of a free slot."""

import contextlib
import fcntl
import json
import os
import re

from .addressing import root_ns_addresses, slot_networks
from .errors import LabError, UsageError

BASE = "/run/netdoctor-lab"
NAME_RE = re.compile(r"[a-z][a-z0-9]{0,5}\Z")
SLOTS = 4


def lab_dir(name):
    return os.path.join(BASE, name)


def node_dir(lab, node):
    return os.path.join(lab_dir(lab["name"]), node["name"])


def state_path(name):
    return os.path.join(lab_dir(name), "state.json")


def check_name(name):
    if not NAME_RE.match(name or ""):
        raise UsageError(f"lab name {name!r} must match [a-z][a-z0-9]{{0,5}}")


def load(name, required=True):
    check_name(name)
    try:
        with open(state_path(name)) as fh:
            return json.load(fh)
    except FileNotFoundError:
        if required:
            raise LabError(f"no lab named {name!r} (see `labctl list`)") from None
        return None


def save(lab):
    path = state_path(lab["name"])
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(lab, fh, indent=1)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked():
    """One lock for every command that changes a lab: slots and names are shared."""
    while True:
        os.makedirs(BASE, exist_ok=True)
        fd = os.open(BASE, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # `down` removes BASE when it empties; a waiter then holds a lock on a dead directory.
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(BASE)):
                break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)


def all_labs():
    labs = []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(BASE)):
            lab = load(entry, required=False) if NAME_RE.match(entry) else None
            if lab:
                labs.append(lab)
    return labs


def pick_slot():
    taken = {lab["slot"] for lab in all_labs()}
    used = root_ns_addresses()
    for slot in range(SLOTS):
        if slot in taken:
            continue
        if any(a in net for net in slot_networks(slot) for a in used):
            continue
        return slot
    raise LabError(f"no free lab slot: {SLOTS} slots, in use {sorted(taken)}, the rest collide "
                   "with addresses of the root namespace")
