"""``bench/gateway.py`` for the other benchmarks, which reuse its services and set-up.

Its module name would be the gateway package's, so it is loaded by path, under another.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

GATEWAY_BENCH = Path(__file__).resolve().parent / "gateway.py"


def bench_gateway():
    spec = importlib.util.spec_from_file_location("bench_gateway", GATEWAY_BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
