"""The runtime's GC policy (runtime/gcpolicy.py): raised once ready, put back at stop, and a
process's own settings or ``BOTKIT_GC_GEN0`` win."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from botkit.runtime.gcpolicy import ENV, GEN0_THRESHOLD, GcPolicy


@pytest.fixture(autouse=True)
def _keep_gc_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV, raising=False)
    before, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*before)
    if enabled:
        gc.enable()


def test_raised_while_serving_and_put_back() -> None:
    before = gc.get_threshold()
    policy = GcPolicy()
    policy.apply()
    assert gc.get_threshold() == (GEN0_THRESHOLD, *before[1:])
    policy.restore()
    assert gc.get_threshold() == before


def test_a_process_own_threshold_is_kept() -> None:
    gc.set_threshold(1234, 5, 6)
    policy = GcPolicy()
    policy.apply()
    assert gc.get_threshold() == (1234, 5, 6)
    policy.restore()
    assert gc.get_threshold() == (1234, 5, 6)


def test_a_disabled_gc_is_left_alone() -> None:
    before = gc.get_threshold()
    gc.disable()
    GcPolicy().apply()
    assert gc.get_threshold() == before
    assert not gc.isenabled()


@pytest.mark.parametrize(("value", "expected"), [("0", None), ("2500", 2500),
                                                 ("many", GEN0_THRESHOLD)])
def test_the_environment_decides(monkeypatch: pytest.MonkeyPatch, value: str,
                                 expected: int | None) -> None:
    before = gc.get_threshold()
    monkeypatch.setenv(ENV, value)
    GcPolicy().apply()
    assert gc.get_threshold()[0] == (before[0] if expected is None else expected)
