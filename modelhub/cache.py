"""The catalog version: one cache counter that every catalog cache key includes.

Whatever changes the catalog (a sync, an operator's edit) bumps it, so every cached
catalog answer is invalidated at once without enumerating keys.
"""

from __future__ import annotations

from django.core.cache import cache

CATALOG_VERSION_KEY = "catalog:version"


def catalog_version() -> int:
    version = cache.get(CATALOG_VERSION_KEY)
    if version is None:
        cache.add(CATALOG_VERSION_KEY, 1, timeout=None)
        version = cache.get(CATALOG_VERSION_KEY, 1)
    return int(version)


def bump_catalog_version() -> int:
    try:
        return int(cache.incr(CATALOG_VERSION_KEY))
    except ValueError:  # the key expired or was never set
        cache.set(CATALOG_VERSION_KEY, 2, timeout=None)
        return 2
