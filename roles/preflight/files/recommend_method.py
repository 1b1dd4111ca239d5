# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet's IP_AUTODETECTION_METHOD recommendation, computed on the controller.

Runs with the controller's Python (ansible_playbook_python) and calls the collection's own
``_fleet.recommendation`` - the function the fleet_audit action plugin uses - on the links every
node reported in its calico_node fact. Read-only, no network.

    python recommend_method.py ROLE_PATH < {"links": {host: the fact's links}, "targets": {host: ip},
                                            "calico_version": "3.30"}

prints ``_fleet.recommendation``'s result as JSON: {"method", "reason", "evidence", "tried", "operator"?}.

It exists because fleet_audit replays only the method calico-node uses now (its running environment),
not a method about to be chosen, and the collection has no controller-side entry point for
``recommend_method`` yet (a filter or an option of fleet_audit would replace this file).
"""

import json
import pathlib
import sys


def main():
    # ROLE_PATH is <root>/ansible_collections/<namespace>/<name>/roles/<role>: import the module_utils of the
    # very collection copy the role came from.
    root = pathlib.Path(sys.argv[1]).parents[4]
    sys.path.insert(0, str(root))
    from ansible_collections.netdoctor.calico.plugins.module_utils import _fleet  # noqa: PLC0415

    data = json.load(sys.stdin)
    facts = {host: {"links": links, "autodetection": {"calico_version": data.get("calico_version")}}
             for host, links in data["links"].items()}
    rec = _fleet.recommendation(facts, data["targets"])
    json.dump(rec, sys.stdout)


if __name__ == "__main__":
    main()
