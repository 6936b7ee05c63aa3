"""Parsing shared by the command modules."""

from __future__ import annotations

from collections.abc import Iterable


def split_instance_ids(values: str | Iterable[str] | None) -> list[str] | None:
    """`--instance-ids` as a list: ids separated by commas or spaces, in one value or in
    repeated ones; None (every task) when nothing is named."""
    if not values:
        return None
    if isinstance(values, str):
        values = [values]
    ids = [part for value in values for part in value.replace(",", " ").split()]
    return ids or None
