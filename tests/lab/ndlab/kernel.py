"""Reading a node's kernel state: its main routing table, its links and their addresses."""

from .runner import run_json

PROTO_NUMBERS = {"kernel": 2, "boot": 3, "static": 4, "bird": 12, "dhcp": 16}


def proto_number(value):
    if value is None:
        return 3    # iproute2 leaves out proto boot
    return int(value) if str(value).isdigit() else PROTO_NUMBERS.get(value, -1)


def route_table(ns):
    """{dst: route} for the main table, with protocol as a number."""
    table = {}
    for r in run_json(["ip", "-n", ns, "-j", "-d", "route", "show"]):
        r["proto"] = proto_number(r.get("protocol"))
        r["onlink"] = "onlink" in r.get("flags", [])
        table[r["dst"]] = r
    return table


def route_matches(actual, spec):
    if actual is None or actual.get("type", "unicast") != "unicast":
        return False
    return (actual.get("gateway") == spec["gateway"] and actual.get("dev") == spec["dev"]
            and actual["proto"] == spec["proto"])


def links_and_addrs(ns):
    return run_json(["ip", "-n", ns, "-j", "-d", "addr", "show"])
