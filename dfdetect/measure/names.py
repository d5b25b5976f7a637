"""Celebrity-name normalisation and the alias table.

Two names denote the same celebrity when their normalised forms, after mapping through the alias
table, are equal. Normalisation ignores case, accents, punctuation and spacing, and keeps letters
of every script (Hangul, Devanagari, ...), so ``"Beyoncé Knowles"`` and ``"beyonce-knowles"`` match.
"""

from __future__ import annotations

import csv
import math
import os
import unicodedata
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

DEFAULT_ALIAS_FILE = "aliases.csv"


def normalise_name(name) -> str:
    """``""`` for a missing name (None, NaN, blank); otherwise lower-case letters and digits only."""
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return ""
    decomposed = unicodedata.normalize("NFKD", str(name))
    without_marks = unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
    return "".join(c for c in without_marks.casefold() if c.isalnum())


class AliasTable:
    """Maps normalised alternative spellings to the normalised canonical name."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self._canonical: dict[str, str] = {}
        for alias, canonical in pairs:
            self.add(alias, canonical)

    def add(self, alias: str, canonical: str) -> None:
        alias_n, canonical_n = normalise_name(alias), normalise_name(canonical)
        if not alias_n or not canonical_n:
            raise ValueError(f"alias pair ({alias!r}, {canonical!r}) has an empty name")
        target = self._canonical.get(canonical_n, canonical_n)
        self._canonical[alias_n] = target
        for key, value in self._canonical.items():
            if value == alias_n:
                self._canonical[key] = target

    def canonical(self, name) -> str:
        """The normalised canonical form of ``name`` (``""`` when there is no name)."""
        n = normalise_name(name)
        return self._canonical.get(n, n)

    def same(self, a, b) -> bool:
        """True when both names are present and denote the same celebrity."""
        ca, cb = self.canonical(a), self.canonical(b)
        return bool(ca) and ca == cb

    def __len__(self) -> int:
        return len(self._canonical)

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> AliasTable:
        """Read ``alias,canonical`` rows; lines starting with ``#`` are comments."""
        path = Path(path)
        with path.open(newline="", encoding="utf-8") as f:
            numbered = [(i, line) for i, line in enumerate(f, start=1)]
        kept = [(i, line) for i, line in numbered if line.strip() and not line.lstrip().startswith("#")]
        rows = list(csv.reader(line for _, line in kept))
        if not rows or rows[0] != ["alias", "canonical"]:
            raise ValueError(f"{path}: header must be 'alias,canonical', found {rows[0] if rows else None}")
        table = cls()
        for (line_no, _), row in zip(kept[1:], rows[1:], strict=True):
            if len(row) != 2:
                raise ValueError(
                    f"{path}: line {line_no}: expected 2 fields (alias,canonical), got {len(row)}"
                )
            try:
                table.add(*row)
            except ValueError as e:
                raise ValueError(f"{path}: line {line_no}: {e}") from None
        return table


def default_aliases(extra: str | os.PathLike | None = None) -> AliasTable:
    """The package's alias table, plus the pairs of ``extra`` (same format) when given."""
    with resources.as_file(resources.files("dfdetect.measure") / DEFAULT_ALIAS_FILE) as path:
        table = AliasTable.from_csv(path)
    if extra is not None:
        for alias, canonical in AliasTable.from_csv(extra)._canonical.items():
            table.add(alias, canonical)
    return table
