"""What each module of the collection sends to a node: its AnsiballZ payload, built by
ansible-core's own module_common (as a real run builds it, ZIP_DEFLATED), beside
ansible.builtin.ping's, and which of the collection's files each one carries.

Targets (issue 10): calico_routes carries no controller code, and what it adds beyond ping's
payload is at most 58.5 KB (half of the 117 KB it added when it imported the fleet rules).
The last line is the figure:
    payload: calico_routes X KB, calico_node_facts Y KB, largest Z KB (ping P KB)
"""

import base64
import io
import os
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS = ROOT / ".collections"
os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))

from ansible.executor import module_common  # noqa: E402 - after ANSIBLE_CONFIG
from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.plugins.loader import init_plugin_loader, module_loader  # noqa: E402
from ansible.template import Templar  # noqa: E402

ADDED_TARGET_KB = 58.5
NODE_MODULES = ("calico_node_facts", "calico_routes", "calico_nm_unmanaged", "calico_firewall",
                "calico_vxlan_offload", "calico_host_managers", "calico_autodetection", "calico_trace",
                "calico_datastore_info")
CONTROLLER_ROOMS = ("plugin_utils/", "plugins/action/", "plugins/filter/")


def build(name):
    """(payload bytes, {collection file inside: compressed bytes})."""
    ctx = module_loader.find_plugin_with_context(name)
    built = module_common.modify_module(
        module_name=name, module_path=ctx.plugin_resolved_path, module_args={}, templar=Templar(loader=DataLoader()),
        task_vars={"ansible_python_interpreter": "/usr/bin/python3"}, module_compression="ZIP_DEFLATED")
    data = built.b_module_data
    match = re.search(rb"\n\s*zip_data\s*=\s*[rb]*['\"]+([A-Za-z0-9+/=]+)", data)
    inside = {}
    if match:
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(match.group(1)))) as archive:
            inside = {i.filename: i.compress_size for i in archive.infolist()
                      if "netdoctor" in i.filename and not i.filename.endswith("__init__.py")}
    return len(data), inside


def main():
    init_plugin_loader([str(COLLECTIONS)])
    ping, _files = build("ansible.builtin.ping")
    print(f"ansible.builtin.ping: {ping / 1000:.1f} KB")
    sizes, failed = {}, []
    for short in NODE_MODULES:
        size, inside = build(f"netdoctor.calico.{short}")
        sizes[short] = size
        files = ", ".join(f"{Path(f).name} {c / 1000:.1f}" for f, c in sorted(inside.items(), key=lambda kv: -kv[1]))
        print(f"{short}: {size / 1000:.1f} KB, {size / ping:.2f}x ping, +{(size - ping) / 1000:.1f} KB "
              f"(collection files, compressed KB: {files})")
        foreign = [f for f in inside if any(room in f for room in CONTROLLER_ROOMS)]
        if foreign:
            failed.append(f"{short} carries controller code: {foreign}")
    added = (sizes["calico_routes"] - ping) / 1000
    if added > ADDED_TARGET_KB:
        failed.append(f"calico_routes adds {added:.1f} KB beyond ping (target <= {ADDED_TARGET_KB} KB)")
    largest = max(sizes, key=sizes.get)
    print(f"payload: calico_routes {sizes['calico_routes'] / 1000:.1f} KB, calico_node_facts "
          f"{sizes['calico_node_facts'] / 1000:.1f} KB, largest {sizes[largest] / 1000:.1f} KB ({largest}) "
          f"(ping {ping / 1000:.1f} KB; calico_routes +{added:.1f} KB, target <= {ADDED_TARGET_KB})")
    for message in failed:
        print(f"MISSED: {message}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
