"""Make the collection importable as ``ansible_collections.netdoctor.calico`` (``make install``
links this checkout into ``.collections``)."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_COLLECTIONS = os.path.join(_ROOT, ".collections")
if not os.path.isdir(os.path.join(_COLLECTIONS, "ansible_collections", "netdoctor", "calico")):
    raise RuntimeError("the collection is not linked into .collections: run `make install` first")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)
