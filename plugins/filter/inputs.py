# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""preflight_input_problems, repair_input_problems: what the roles' argument specs cannot check,
asserted before anything changes (docs in the .yml sidecars; functions in plugin_utils/_inputs)."""

from __future__ import annotations

from ansible_collections.netdoctor.calico.plugins.plugin_utils import _inputs
from ansible_collections.netdoctor.calico.plugins.plugin_utils._filters import as_filter


class FilterModule:
    def filters(self):
        return {
            "preflight_input_problems": as_filter("preflight_input_problems", _inputs.preflight_problems,
                                                  _input="dict"),
            "repair_input_problems": as_filter("repair_input_problems", _inputs.repair_problems, _input="dict"),
        }
