# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private to this collection: not a public API, may change at any time without notice.

"""Planning and verification for the NetworkManager drop-in of ``calico_nm_unmanaged`` (NM001).

Pure functions over ``_nm_config``'s data: which specs to write, where NetworkManager reads the
file, which later files undo it, and whether an effective configuration (``_nm_config.merge()`` or
``NetworkManager --print-config``) leaves every Calico device unmanaged.
"""

from __future__ import annotations

import os

from ansible_collections.netdoctor.calico.plugins.module_utils import _nm_config

DEFAULT_PATH = "/etc/NetworkManager/conf.d/calico.conf"
CALICO_SPECS = tuple("interface-name:" + d for d in _nm_config.CALICO_DEVICES)
HEADER = ("# Managed by netdoctor.calico.calico_nm_unmanaged (NM001): NetworkManager leaves Calico's devices alone.\n"
          "# '+=' appends to the list other files set, so this file composes with them.\n")

# Tags NetworkManager's device specs start with (nm_match_spec_device); anything else is a name here.
_TAGS = ("interface-name:", "mac:", "type:", "driver:", "s390-subchannels:", "dhcp-plugin:", "except:")
# The D-Bus Reload() flag NM_MANAGER_RELOAD_FLAG_CONF (nm-dbus-interface.h): re-read the config files only.
RELOAD_FLAG_CONF = 1


def _spec(item):
    """The spec for one ``extra_devices`` item, or raise ValueError saying what is wrong with it."""
    text = item.strip()
    if not text:
        raise ValueError(f"{item!r} is empty")
    if any(c in text for c in "\n\r\0"):
        raise ValueError(f"{item!r} contains a line break or NUL")
    low = text.lower()
    if low.startswith("except:"):
        raise ValueError(f"{text!r}: an except: spec changes what the whole merged unmanaged-devices list matches")
    spec = text if low.startswith(_TAGS) else "interface-name:" + text
    _exc, kind, arg = _nm_config.parse_spec(spec)
    if kind in ("name-glob", "name-exact"):
        if not arg.strip("*"):
            raise ValueError(f"{text!r} matches every interface, including the one this host is reached over")
        if any(c in arg for c in "/:") or any(c.isspace() for c in arg):
            hint = f" (for a MAC address write mac:{arg})" if _nm_config._hwaddr(arg) else ""
            raise ValueError(f"{text!r}: Linux interface names cannot contain '/', ':' or whitespace{hint}")
        if len(arg.replace("*", "")) > _nm_config.IFNAME_MAX:
            raise ValueError(f"{text!r}: Linux interface names are at most {_nm_config.IFNAME_MAX} characters")
    elif kind == "mac" and _nm_config._hwaddr(arg) is None:
        raise ValueError(f"{text!r}: not a hardware address")
    elif not arg.strip():
        raise ValueError(f"{text!r} has nothing after its tag")
    return spec


def extra_specs(items):
    """NetworkManager device specs for ``extra_devices``: a bare name or glob becomes
    ``interface-name:<it>``, a tagged spec (``mac:``, ``type:``, ``driver:``, ...) is kept as it is.

    Drops duplicates and Calico's own specs. Raises ValueError naming every bad item.
    """
    specs, errors = [], []
    for item in items:
        try:
            spec = _spec(item)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if spec not in specs and spec not in CALICO_SPECS:
            specs.append(spec)
    if errors:
        raise ValueError("; ".join(errors))
    return specs


def dropin_text(extra=()):
    """The whole drop-in: Calico's devices and ``extra`` appended to ``[keyfile] unmanaged-devices``."""
    return HEADER + _nm_config.render_dropin(extra=extra)


def check_path(path):
    """None when ``path`` is a drop-in NetworkManager reads from its default directories, else why not."""
    if not os.path.isabs(path):
        return f"path must be absolute, got {path!r}"
    dirs = _nm_config.DEFAULT_DIRS
    conf_dirs = (dirs["etc"], dirs["run"], dirs["system"])
    if os.path.normpath(path) != path or os.path.dirname(path) not in conf_dirs or not path.endswith(".conf") \
            or path.endswith("/.conf"):
        return (f"path must be a NAME.conf file directly in one of {', '.join(conf_dirs)} "
                f"(NetworkManager reads no other drop-ins), got {path!r}")
    return None


def overrides(discovered, path, specs, config=None):
    """What undoes ``specs`` written to ``path``: the file that hides it (same name in a directory read
    instead), later files that set ``unmanaged-devices=`` or remove one of ``specs`` with ``-=``, and
    NetworkManager-intern.conf when ``config`` (the merged configuration) shows it replaced the list.

    Returns ``[{"file", "op": "hides" | "=" | "-=", "value": [spec]}]``.
    """
    placed = _nm_config.with_dropin(discovered, path, "")
    if path in placed["shadowed"]:
        name = os.path.basename(path)
        return [{"file": f["path"], "op": "hides", "value": []} for f in placed["files"]
                if os.path.basename(f["path"]) == name]
    found = _nm_config.later_overrides(discovered, path, specs)
    intern = (discovered.get("intern") or {}).get("path")
    if config and intern:
        found += [dict(h) for h in config["history"] if h["file"] == intern]
    return found


def config_from_print_config(text):
    """``NetworkManager --print-config`` output as the part of ``_nm_config.merge()``'s result that
    ``_nm_config.calico_devices()`` reads: ``{"unmanaged_devices", "device_sections"}``.

    NetworkManager prints the literal ``[device]`` first and the ``[device-*]`` sections in lookup
    order, where the literal one comes last.
    """
    groups = _nm_config.parse_keyfile(text)
    names = [g for g in groups if g.startswith("device") and g != "device" and groups[g]]
    names += ["device"] if groups.get("device") else []
    sections = []
    for name in names:
        values = dict(groups[name])
        sections.append({
            "group": name,
            "match_device": _nm_config.split_specs(values["match-device"]) if "match-device" in values else None,
            "managed": values.get("managed"),
            "stop_match": _nm_config.parse_bool(values.get("stop-match"), False),
        })
    return {"unmanaged_devices": _nm_config.split_specs(dict(groups.get("keyfile", [])).get("unmanaged-devices")),
            "device_sections": sections}


def verdict(config, extra=()):
    """Whether ``config`` leaves Calico's devices and the ``extra`` specs unmanaged::

        {"ok": bool, "effective_unmanaged_devices": [spec], "managed_calico_devices": [pattern],
         "managed_examples": {pattern: name}, "missing_specs": [spec]}

    Calico's patterns are checked name by name (``_nm_config.calico_devices``); an extra spec must
    be in the effective list, which is what appending it promised.
    """
    calico = _nm_config.calico_devices(config)
    missing = [s for s in extra if s not in config["unmanaged_devices"]]
    return {
        "ok": not calico["managed_calico_devices"] and not missing,
        "effective_unmanaged_devices": list(config["unmanaged_devices"]),
        "managed_calico_devices": calico["managed_calico_devices"],
        "managed_examples": calico["managed_examples"],
        "missing_specs": missing,
    }


def failure_message(path, result, found):
    """Why the effective configuration is not what ``path`` asks for, naming the files to fix."""
    managed = [p if result["managed_examples"].get(p, p) == p else f"{p} (e.g. {result['managed_examples'][p]})"
               for p in result["managed_calico_devices"]]
    parts = []
    if managed:
        parts.append("still manages " + ", ".join(managed))
    if result["missing_specs"]:
        parts.append("does not list " + ", ".join(result["missing_specs"]))
    msg = f"NetworkManager's effective configuration {' and '.join(parts)} although {path} lists them."
    culprits = []
    for o in found:
        if o["op"] == "hides":
            culprits.append(f"{o['file']} has the same name and is read instead of {path}")
        elif o["op"] == "=":
            culprits.append(f"{o['file']} is read later and replaces the list (unmanaged-devices=)")
        else:
            culprits.append(f"{o['file']} is read later and removes entries (unmanaged-devices-=)")
    if culprits:
        msg += " " + "; ".join(culprits) + (". Append with unmanaged-devices+= there (or add Calico's devices to "
                                            "that list), or rename this drop-in so it sorts after it.")
    else:
        msg += " No later file replaces the list: look for except: specs in unmanaged-devices."
    return msg


def reload_command(nmcli=None, busctl=None, dbus_send=None):
    """argv that asks a running NetworkManager to re-read its configuration files (never a restart),
    with the first tool available; None when there is none."""
    if nmcli:
        return [nmcli, "general", "reload", "conf"]
    target = ["org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager"]
    if busctl:
        return [busctl, "call", *target, "org.freedesktop.NetworkManager", "Reload", "u", str(RELOAD_FLAG_CONF)]
    if dbus_send:
        return [dbus_send, "--system", "--print-reply", "--dest=" + target[0], target[1],
                "org.freedesktop.NetworkManager.Reload", f"uint32:{RELOAD_FLAG_CONF}"]
    return None
