# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Files the controller-side action plugins write (fleet_audit's reports, repair_plan's repair.json
and repair.md)."""

from __future__ import annotations

import os
import tempfile


def write_atomic(path, text, prefix=".tmp."):
    """Readers (CI, a browser) never see half a report: write a temporary file named ``prefix...``
    beside ``path``, then rename it over ``path`` (mode 0644); the temporary file is removed when
    anything fails."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
