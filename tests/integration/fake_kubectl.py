"""A stand-in for kubectl and the API server behind it, for the modules' kubectl targets.

There is no cluster here. This script answers the few kubectl commands calico_autodetection and
calico_datastore_info run from objects stored as JSON in $FAKE_KUBE_DIR (daemonset.<namespace>.<name>.json,
installations.operator.tigera.io.<name>.json, list.<resource>.json: the whole `kubectl get
<resource> -o json` document, and raw.apis.json: what `kubectl get --raw /apis` prints), applies
`set env` and merge patches to them as the API server would (nothing is stored with
--dry-run=server), enforces the Installation's "one autodetection method"
rule, and appends every argv to $FAKE_KUBE_DIR/calls.jsonl. A file stderr.<resource> (stderr.apis for
the group list) makes `get` of it print that file on stderr and exit 1, as kubectl does when the API
server or the connection fails. Anything else exits 2, so an unexpected command fails the test.
"""

import json
import os
import sys

STATE = os.environ["FAKE_KUBE_DIR"]
KINDS = {"daemonset": "daemonsets.apps", "installations.operator.tigera.io": "installations.operator.tigera.io"}
METHODS = ("firstFound", "kubernetes", "interface", "skipInterface", "canReach", "cidrs")


def fail(msg, code=1):
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def parse(argv):
    flags, args = {}, []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            flags[key] = value
        elif arg.startswith("-"):
            fail(f"fake kubectl: unsupported flag {arg}", 2)
        else:
            args.append(arg)
    return flags, args


def path_of(kind, name, namespace):
    stem = f"daemonset.{namespace}.{name}" if kind == "daemonset" else f"{kind}.{name}"
    return os.path.join(STATE, stem + ".json")


def load(kind, name, namespace):
    try:
        with open(path_of(kind, name, namespace), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        fail(f'Error from server (NotFound): {KINDS[kind]} "{name}" not found')


def store(obj, kind, name, namespace, flags):
    if flags.get("dry-run") == "server":
        return
    obj["metadata"]["generation"] = obj["metadata"].get("generation", 0) + 1
    with open(path_of(kind, name, namespace), "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def set_env(obj, container_name, specs):
    for container in obj["spec"]["template"]["spec"]["containers"]:
        if container["name"] != container_name:
            continue
        env = container.setdefault("env", [])
        for spec in specs:
            name, value = spec.split("=", 1)
            mine = [e for e in env if e["name"] == name]
            for e in mine:
                e.pop("valueFrom", None)
                e["value"] = value
            if not mine:
                env.append({"name": name, "value": value})


def main():
    flags, args = parse(sys.argv[1:])
    with open(os.path.join(STATE, "calls.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(sys.argv[1:]) + "\n")
    namespace = flags.get("namespace", "default")
    target = args[1] if args[:1] == ["get"] and len(args) > 1 else None
    if args == ["get"] and flags.get("raw") == "/apis":
        target = "apis"
    if target and os.path.exists(os.path.join(STATE, f"stderr.{target}")):
        with open(os.path.join(STATE, f"stderr.{target}"), encoding="utf-8") as f:
            fail(f.read().rstrip("\n"))
    if args == ["get"] and flags.get("raw") == "/apis" and "output" not in flags:
        try:
            with open(os.path.join(STATE, "raw.apis.json"), encoding="utf-8") as f:
                print(f.read(), end="")
        except FileNotFoundError:
            fail("Error from server (NotFound): the server could not find the requested resource")
    elif args[:1] == ["get"] and len(args) == 3 and args[1] in KINDS and flags.get("output") == "json":
        print(json.dumps(load(args[1], args[2], namespace), indent=4))
    elif args[:1] == ["get"] and len(args) == 2 and flags.get("output") == "json":
        try:
            with open(os.path.join(STATE, f"list.{args[1]}.json"), encoding="utf-8") as f:
                print(f.read(), end="")
        except FileNotFoundError:
            fail(f'error: the server doesn\'t have a resource type "{args[1]}"')
    elif args[:2] == ["set", "env"] and args[2].startswith("daemonset/") and "containers" in flags:
        name = args[2].split("/", 1)[1]
        obj = load("daemonset", name, namespace)
        set_env(obj, flags["containers"], args[3:])
        store(obj, "daemonset", name, namespace, flags)
        print(f"daemonset.apps/{name} env updated")
    elif args[:1] == ["patch"] and len(args) == 3 and flags.get("type") == "merge" and "patch" in flags:
        kind, name = args[1], args[2]
        obj = merge_patch(load(kind, name, namespace), json.loads(flags["patch"]))
        network = obj.get("spec", {}).get("calicoNetwork", {})
        for field in ("nodeAddressAutodetectionV4", "nodeAddressAutodetectionV6"):
            if sum(1 for m in METHODS if (network.get(field) or {}).get(m)) > 1:
                fail(f'The Installation "{name}" is invalid: spec.calicoNetwork.{field}: Invalid value: "object": '
                     "no more than one node address autodetection method can be specified")
        store(obj, kind, name, namespace, flags)
        print(f"installation.operator.tigera.io/{name} patched")
    else:
        fail(f"fake kubectl: unsupported command {sys.argv[1:]}", 2)


if __name__ == "__main__":
    main()
