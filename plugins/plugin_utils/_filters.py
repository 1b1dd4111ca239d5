# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""How the collection's filters wrap the plain functions they are: a bad input becomes an
AnsibleFilterError that names the filter, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def as_filter(name, func, **kinds):
    """``func`` as the filter ``name``: ``kinds`` names arguments that must be a ``dict`` or a
    ``list`` (``_input`` is the piped value); ValueError, TypeError and KeyError become
    AnsibleFilterError("name: ...")."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        names = ["_input", *func.__code__.co_varnames[1:func.__code__.co_argcount]]
        given = dict(zip(names, args, strict=False)) | kwargs
        for arg, kind in kinds.items():
            value = given.get(arg)
            ok = isinstance(value, Mapping) if kind == "dict" else isinstance(value, (list, tuple))
            if arg in given and not ok:
                raise AnsibleFilterError(f"{name}: {arg} must be a {kind}, got {type(value).__name__}")
        try:
            return func(*args, **kwargs)
        except (ValueError, TypeError, KeyError) as exc:
            raise AnsibleFilterError(f"{name}: {exc}") from exc
    return run
