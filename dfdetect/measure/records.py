"""The two normalised shapes every attack source is turned into.

``ApiResult``: one provider call, parsed from its raw response. Confidences and similarities are
on a 0–100 scale; "no answer" is ``None`` (never 0).

Attack records (a DataFrame, ``ATTACK_COLUMNS``): one row per fake image X_D and provider, with the
API's answer for X_D, its answer for the target's real image X_T, and Similarity(X_T, X_D). This is
what ``dfdetect.table2.metrics`` scores, whichever source (the paper authors' CSVs or
our SQLite cache) it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.registry import OPERATIONS, get_provider, provider_names

STATUSES = ("ok", "no_face", "error")

ATTACK_COLUMNS = [
    "provider",
    "dataset",
    "image_key",
    "target",
    "fake_name",
    "fake_conf",
    "target_name",
    "target_conf",
    "similarity",
    "source",
]


def check_provider(provider: str) -> str:
    """``provider`` when it is registered (``dfdetect.measure.registry``), else ``AttackDataError``."""
    return get_provider(provider).name


def check_operation(operation: str) -> str:
    if operation not in OPERATIONS:
        raise AttackDataError(f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
    return operation


def check_score(value, what: str) -> float | None:
    """``None`` stays ``None``; anything else must be a finite number in [0, 100]."""
    if value is None:
        return None
    value = float(value)
    if math.isnan(value):
        return None
    if not 0.0 <= value <= 100.0:
        raise AttackDataError(f"{what} {value} is outside 0–100")
    return value


@dataclass(frozen=True)
class ApiResult:
    """One parsed provider response (see the module docstring for the conventions)."""

    provider: str
    operation: str
    status: str
    name: str | None = None
    confidence: float | None = None
    similarity: float | None = None
    error_code: str | None = None

    def __post_init__(self):
        check_provider(self.provider)
        check_operation(self.operation)
        if self.status not in STATUSES:
            raise AttackDataError(f"unknown status {self.status!r}; expected one of {', '.join(STATUSES)}")
        object.__setattr__(self, "confidence", check_score(self.confidence, "confidence"))
        object.__setattr__(self, "similarity", check_score(self.similarity, "similarity"))
        if self.name is not None and not str(self.name).strip():
            object.__setattr__(self, "name", None)
        answers = (self.name, self.confidence, self.similarity)
        if self.status != "ok" and any(a is not None for a in answers):
            raise AttackDataError(f"a {self.status!r} result cannot carry a name, confidence or similarity")


def validate_attack_records(df: pd.DataFrame, where: str = "attack records") -> pd.DataFrame:
    """Check columns, providers and score ranges; return a copy with normalised dtypes."""
    missing = [c for c in ATTACK_COLUMNS if c not in df.columns]
    if missing:
        raise AttackDataError(f"{where}: missing columns {missing}")
    out = df.copy()
    for column in ("fake_name", "target_name", "target", "source"):
        out[column] = out[column].fillna("").astype(str)
    for column in ("fake_conf", "target_conf", "similarity"):
        out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
        bad = out[column].notna() & ~out[column].between(0.0, 100.0)
        if bad.any():
            row = out.loc[bad].iloc[0]
            raise AttackDataError(
                f"{where}: {column} {row[column]} outside 0–100 for image {row['image_key']!r} ({row['source']})"
            )
    known = provider_names()
    unknown = sorted(set(out["provider"]) - set(known))
    if unknown:
        raise AttackDataError(f"{where}: unknown provider(s) {unknown}; expected one of {', '.join(known)}")
    if (out["target"] == "").any():
        row = out.loc[out["target"] == ""].iloc[0]
        raise AttackDataError(f"{where}: image {row['image_key']!r} ({row['source']}) has no target identity")
    dup = out.duplicated(["provider", "dataset", "image_key"])
    if dup.any():
        row = out.loc[dup].iloc[0]
        raise AttackDataError(
            f"{where}: image {row['image_key']!r} appears twice for {row['provider']}/{row['dataset']}"
        )
    return out
