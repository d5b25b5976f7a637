"""Parameter names of state dicts saved by other code: the wrappers' prefixes removed."""

from __future__ import annotations

from collections.abc import Sequence


def strip_prefixes(key: str, prefixes: Sequence[str]) -> str:
    """``key`` without any leading ``prefixes`` (``module.net.conv1.weight`` -> ``conv1.weight``)."""
    changed = True
    while changed:
        changed = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, changed = key[len(prefix) :], True
    return key
