"""Importer for the paper authors' cached API results (``shared/data/api_results/tariq2022/``).

Each CSV row is one fake image X_D: ``Filename, Src, Tar, Src Pred., Src Conf., Tar Pred., Tar Conf.,
Similarity``. ``Tar Pred./Tar Conf.`` is the API's answer for the fake, ``Src Pred./Src Conf.`` its
answer for the real image of ``Src``; an empty name means no celebrity. The scoring rules of
``shared/data/README.md`` are applied here, once:

- the target identity is ``Tar`` in ``Results_celebDF.csv`` and ``Src`` in every other file;
- the answer for the target's real image X_T is the same row's ``Src Pred./Src Conf.`` when the
  target is ``Src``; when it is ``Tar`` (celebDF) it comes from the rows whose ``Src`` is that
  identity: their distinct real images (one per folder) vote, see ``target_answer``;
- AWS files are on 0–100, Azure files on 0–1 (rescaled to 0–100 here);
- a ``Similarity`` of 0 marks a failed call or no face and becomes "no answer" (NaN), never 0.

A malformed row (wrong field count, non-numeric or out-of-range score, a name without a
confidence, a duplicate file name) raises ``AttackDataError`` naming the file and line, or with
``errors="skip"`` is listed in the report and left out; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from dfdetect.measure.names import AliasTable, default_aliases
from dfdetect.measure.records import ATTACK_COLUMNS, AttackDataError, validate_attack_records
from dfdetect.measure.registry import get_provider
from dfdetect.measure.target_answer import vote_answers

REQUIRED_COLUMNS = [
    "Filename",
    "Src",
    "Tar",
    "Src Pred.",
    "Src Conf.",
    "Tar Pred.",
    "Tar Conf.",
    "Similarity",
]
# the providers whose results the authors published (the files' scale: their confidence_scale)
AUTHORS_PROVIDERS = ("aws", "azure")
AUTHORS_ROOT = "/home/sha/project/adversarial_deepfake/src/Similarity/"
TARGET_IS_TAR = {"results_celebdf"}


@dataclass
class ImportReport:
    path: str
    provider: str
    dataset: str
    target_column: str
    target_answer: str
    n_rows: int = 0
    n_imported: int = 0
    skipped: list[str] = field(default_factory=list)
    n_similarity_zero: int = 0
    n_targets: int = 0
    targets_without_real_image: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.path}: {self.n_rows} rows read, {self.n_imported} imported, {len(self.skipped)} skipped"
            f" ({self.provider}, dataset {self.dataset}, target column {self.target_column!r},"
            f" X_T answer from {self.target_answer})",
            f"  {self.n_targets} target identities; {self.n_similarity_zero} similarity values of 0 read as"
            " 'no answer'",
        ]
        if self.targets_without_real_image:
            lines.append(f"  targets with no real image row: {', '.join(self.targets_without_real_image)}")
        lines += [f"  skipped {reason}" for reason in self.skipped]
        return "\n".join(lines)


def default_target_column(path: str | os.PathLike) -> str:
    return "Tar" if Path(path).stem.lower() in TARGET_IS_TAR else "Src"


def image_key(filename: str, dataset: str) -> str:
    """``<dataset>/<path below the dataset folder, without extension>`` (POSIX separators)."""
    path = filename.replace("\\", "/")
    if path.startswith(AUTHORS_ROOT):
        path = path[len(AUTHORS_ROOT) :].split("/", 1)[-1]
    stem = PurePosixPath(path.lstrip("/"))
    return f"{dataset}/{stem.with_suffix('').as_posix()}"


def _score(text: str, scale: float, what: str) -> float:
    text = text.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    limit = 100.0 / scale
    if not (0.0 <= value <= limit):
        raise ValueError(f"{what} {value} is outside 0–{limit:g} for this provider")
    return value * scale


def _parse_row(row: dict[str, str], scale: float) -> dict:
    out = {}
    for who, name_col, conf_col in (("fake", "Tar Pred.", "Tar Conf."), ("target", "Src Pred.", "Src Conf.")):
        name, conf = row[name_col].strip(), _score(row[conf_col], scale, conf_col)
        if bool(name) == math.isnan(conf):
            raise ValueError(f"{name_col} {name!r} and {conf_col} {row[conf_col]!r}: one is missing")
        out[f"{who}_name"], out[f"{who}_conf"] = name, conf
    out["similarity"] = _score(row["Similarity"], scale, "Similarity")
    return out


def _read_rows(path: Path, errors: str, report: ImportReport):
    """Yield (line number, row dict); bad rows raise or go to ``report.skipped``."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise AttackDataError(f"{path}: empty file")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise AttackDataError(f"{path}: missing columns {missing} (found {header})")
        for fields in reader:
            line = reader.line_num
            if not any(x.strip() for x in fields):
                continue
            report.n_rows += 1
            if len(fields) != len(header):
                _bad(path, line, f"expected {len(header)} fields, found {len(fields)}", errors, report)
                continue
            yield line, dict(zip(header, fields, strict=True))


def _bad(path: Path, line: int, reason: str, errors: str, report: ImportReport) -> None:
    message = f"{path.name}:{line}: {reason}"
    if errors == "raise":
        raise AttackDataError(f"{path}: line {line}: {reason}")
    report.skipped.append(message)


def read_tariq2022(
    path: str | os.PathLike,
    provider: str,
    dataset: str,
    target_column: str | None = None,
    target_answer: str = "auto",
    errors: str = "raise",
    aliases: AliasTable | None = None,
) -> tuple[pd.DataFrame, ImportReport]:
    """Attack records (``ATTACK_COLUMNS``) of one authors' CSV, and what happened on the way.

    ``target_answer``: ``same_row`` (X_T's answer is the row's own ``Src Pred./Src Conf.``),
    ``identity`` (aggregated over the target's real images, as above) or ``auto`` (``identity``
    when the target column is ``Tar``, else ``same_row``: the README rule).
    """
    path = Path(path)
    record = get_provider(provider)
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    if not path.is_file():
        raise AttackDataError(f"no such CSV file: {path}")
    target_column = target_column or default_target_column(path)
    if target_column not in ("Src", "Tar"):
        raise AttackDataError(f"{path}: target column must be 'Src' or 'Tar', got {target_column!r}")
    if target_answer == "auto":
        target_answer = "identity" if target_column == "Tar" else "same_row"
    if target_answer not in ("same_row", "identity"):
        raise ValueError(f"target_answer must be 'auto', 'same_row' or 'identity', got {target_answer!r}")
    aliases = aliases or default_aliases()
    scale = record.confidence_scale
    report = ImportReport(str(path), provider, dataset, target_column, target_answer)

    parsed, seen = [], set()
    for line, row in _read_rows(path, errors, report):
        try:
            values = _parse_row(row, scale)
            if not row["Filename"].strip() or not row[target_column].strip():
                raise ValueError(f"empty Filename or {target_column}")
            if row["Filename"] in seen:
                raise ValueError(f"duplicate Filename {row['Filename']!r}")
        except ValueError as e:
            _bad(path, line, str(e), errors, report)
            continue
        seen.add(row["Filename"])
        report.n_similarity_zero += int(values["similarity"] == 0.0)
        if values["similarity"] == 0.0:
            values["similarity"] = math.nan
        parsed.append(
            {
                **values,
                "filename": row["Filename"],
                "src": row["Src"].strip(),
                "target": row[target_column].strip(),
                "source": f"{path.name}:{line}",
            }
        )
    rows = pd.DataFrame(
        parsed,
        columns=[
            "fake_name",
            "fake_conf",
            "target_name",
            "target_conf",
            "similarity",
            "filename",
            "src",
            "target",
            "source",
        ],
    )
    top = rows[["fake_conf", "target_conf"]].max().max() if len(rows) else float("nan")
    if scale == 1.0 and top <= 1.0:
        raise AttackDataError(
            f"{path}: every confidence is <= 1, so this looks like a 0–1 (Azure) file, not {record.label} (0–100)"
        )

    if target_answer == "identity" and len(rows):
        real = pd.DataFrame(
            {
                "identity": rows["src"].map(aliases.canonical),
                "ref": rows["filename"].map(lambda f: os.path.dirname(f.replace("\\", "/"))),
                "name": rows["target_name"],
                "conf": rows["target_conf"],
            }
        ).drop_duplicates(["identity", "ref"])
        answers = vote_answers(real, aliases)
        keys = rows["target"].map(aliases.canonical)
        missing = sorted(set(rows.loc[~keys.isin(answers.index), "target"]))
        report.targets_without_real_image = missing
        rows["target_name"] = keys.map(answers["target_name"]).fillna("")
        rows["target_conf"] = keys.map(answers["target_conf"])

    records = rows.assign(
        provider=provider,
        dataset=dataset,
        image_key=rows["filename"].map(lambda f: image_key(f, dataset)),
    )[ATTACK_COLUMNS]
    records = validate_attack_records(records, where=str(path))
    report.n_imported = len(records)
    report.n_targets = records["target"].map(aliases.canonical).nunique()
    return records, report
