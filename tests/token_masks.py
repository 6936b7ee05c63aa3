"""Helpers for tests of token masks, importable from every test folder (tests/ is on
sys.path through its conftest)."""

from __future__ import annotations

from itertools import groupby


def masked_runs(ids: list[int], mask: list[int]) -> list[list[int]]:
    """The maximal runs of consecutive tokens whose mask bit is set, in order."""
    runs = groupby(zip(ids, mask), key=lambda pair: bool(pair[1]))
    return [[token for token, _ in run] for masked, run in runs if masked]
