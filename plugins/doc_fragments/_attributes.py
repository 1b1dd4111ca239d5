# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

from __future__ import annotations


class ModuleDocFragment:
    # Every module of the collection, as the ansible-core fragment does it.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside of check mode, with the same arguments, the second invocation indicates
        no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    # Read-only fact gatherers.
    FACTS = r"""
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
  check_mode:
    support: full
    details: The module never changes the target, so check mode runs it unchanged.
  diff_mode:
    support: N/A
    details: The module never changes the target.
  idempotent:
    support: full
"""

    # Action plugins that run on the controller only, with a documentation stub (fleet_audit, repair_plan).
    CONTROLLER = r"""
options: {}
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the task can be executed on the
      controller.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
  bypass_host_loop:
    description: Forces a 'global' task that does not execute per host; this bypasses per host templating and serial.
    support: none
    details: Use C(run_once=true) - one task covers every host of the play.
  connection:
    description: Uses the target's configured connection information to execute code on it.
    support: none
  delegation:
    description: Can be used in conjunction with C(delegate_to) and related keywords.
    support: none
    details: It runs on the controller and ignores the delegated host.
"""

    # Modules in the C(calico) action group.
    ACTIONGROUP_CALICO = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/netdoctor.calico.calico) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - netdoctor.calico.calico
"""
