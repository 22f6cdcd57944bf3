"""A sorted name index for moto's S3 object store, so that listing a prefix
costs O(matches + log n) instead of a copy and scan of every key in the bucket.

moto keeps a bucket's objects in ``bucket.keys``, a ``_VersionedKeyStore``
(a dict of key name -> list of versions), and its ``list_objects`` walks all of
it for every ListObjects/ListObjectsV2, even with a prefix.  Here:

* ``IndexedKeyStore`` is that store plus its names kept sorted; every way of
  changing the dict keeps the names in step.  moto's ``FakeBucket`` creates it
  (we swap the name moto's module uses), so every bucket has one.
* ``list_objects`` with a prefix hands moto's own implementation a view of the
  bucket whose ``keys.items()`` holds only the names that start with the
  prefix.  Everything else (delimiters, delete markers, markers, truncation,
  the response) is still moto's code, so the results are the same.

Call :func:`install` once before moto creates buckets.
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

import moto.s3.models as s3models
from moto.s3.utils import _VersionedKeyStore

# One lock for all stores' name lists (deep copies of a store must not carry a lock).
_LOCK = threading.Lock()


class IndexedKeyStore(_VersionedKeyStore):
    """moto's ``_VersionedKeyStore`` with its key names kept sorted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._names: list[str] = sorted(dict.keys(self))

    def _names_list(self) -> list[str]:
        # be ready to be called on an instance made without __init__ (unpickling)
        names = self.__dict__.get("_names")
        if names is None:
            names = self.__dict__["_names"] = sorted(dict.keys(self))
        return names

    def _add_name(self, key: str) -> None:
        if not dict.__contains__(self, key):
            bisect.insort(self._names_list(), key)

    def _drop_name(self, key: str) -> None:
        names = self._names_list()
        i = bisect.bisect_left(names, key)
        if i < len(names) and names[i] == key:
            del names[i]

    def __setitem__(self, key: str, value: Any) -> Any:
        with _LOCK:
            self._add_name(key)
            return super().__setitem__(key, value)

    def setlist(self, key: Any, list_: Any) -> Any:
        with _LOCK:
            self._add_name(key)
            return super().setlist(key, list_)

    def pop(self, key: str) -> None:  # type: ignore[override]
        with _LOCK:
            super().pop(key)
            self._drop_name(key)

    def __delitem__(self, key: str) -> None:
        with _LOCK:
            dict.__delitem__(self, key)
            self._drop_name(key)

    def popitem(self) -> Any:
        with _LOCK:
            k, v = dict.popitem(self)
            self._drop_name(k)
            return k, v

    def setdefault(self, key: Any, default: Any = None) -> Any:
        with _LOCK:
            self._add_name(key)
            return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        # dict.update semantics (whole version lists), unlike __setitem__
        for k, v in dict(*args, **kwargs).items():
            with _LOCK:
                self._add_name(k)
                dict.__setitem__(self, k, v)

    def clear(self) -> None:
        with _LOCK:
            dict.clear(self)
            self.__dict__["_names"] = []

    def names_with_prefix(self, prefix: str) -> list[str]:
        with _LOCK:
            names = self._names_list()
            i = bisect.bisect_left(names, prefix)
            j = i
            n = len(names)
            while j < n and names[j].startswith(prefix):
                j += 1
            return names[i:j]

    def prefix_items(self, prefix: str) -> list[tuple[str, Any]]:
        """What ``items()`` would give, restricted to names starting with ``prefix``."""
        out = []
        for name in self.names_with_prefix(prefix):
            try:
                out.append((name, self[name]))
            except KeyError:  # removed meanwhile
                continue
        return out


class _PrefixKeys:
    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self._items = items

    def items(self) -> list[tuple[str, Any]]:
        return self._items


class _PrefixBucketView:
    """The bucket as moto's ``list_objects`` sees it: ``keys`` narrowed to a prefix."""

    def __init__(self, bucket: Any, items: list[tuple[str, Any]]) -> None:
        self.__dict__["_bucket"] = bucket
        self.__dict__["keys"] = _PrefixKeys(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_bucket"], name)


_moto_list_objects = s3models.S3Backend.list_objects


def _list_objects(self: Any, bucket: Any, prefix: Any, delimiter: Any, marker: Any, max_keys: Any) -> Any:
    keys = getattr(bucket, "keys", None)
    if prefix and isinstance(keys, IndexedKeyStore) and not isinstance(bucket, s3models.FakeTableStorageBucket):
        bucket = _PrefixBucketView(bucket, keys.prefix_items(prefix))
    return _moto_list_objects(self, bucket, prefix, delimiter, marker, max_keys)


def install() -> None:
    """Make moto's new buckets use :class:`IndexedKeyStore` and its prefix
    listings use the index.  Idempotent."""
    if getattr(s3models.S3Backend.list_objects, "ecx_indexed", False):
        return
    s3models._VersionedKeyStore = IndexedKeyStore  # type: ignore[misc]
    _list_objects.ecx_indexed = True  # type: ignore[attr-defined]
    s3models.S3Backend.list_objects = _list_objects  # type: ignore[method-assign]
