"""The benchmarks' hooks into the code they time still exist (they run outside the
suite, so a rename would break them unseen)."""

from __future__ import annotations

import sys
from pathlib import Path

import crm_bridge.sync as sync_mod


def test_the_tryton_sync_benchmark_times_functions_the_sync_calls() -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    try:
        import tryton_sync
    finally:
        sys.path.pop(0)
    called = set(sync_mod._sync.__code__.co_names)
    for label, owner, name in tryton_sync.PHASES:
        assert hasattr(owner, name), f"{label}: {owner.__name__}.{name} is gone"
        if owner is sync_mod:
            assert name in called, f"{label}: the sync no longer calls {name}"
