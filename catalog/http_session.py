"""The HTTP session of the catalog's live lookups (Hugging Face model cards, OpenRouter's
endpoint lists): one per process, created on first use, since requests is imported only
where a provider is called (see sync/fetch.py)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests


@functools.cache
def shared() -> requests.Session:
    import requests

    return requests.Session()
