"""What every benchmark that alternates its pipelines shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting at ``turn`` (mod their number): each takes each place in turn, so a drift
    of the machine's load favours none."""
    k = turn % len(items)
    return [*items[k:], *items[:k]]
