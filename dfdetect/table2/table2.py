"""Table 2 of the paper: attack success rates before → after each defense, written as md/csv/tex,
and an audit of the paper's own Table 2 against ``before × (1 − accuracy)``.

A Table 2 frame has the columns of ``shared/data/paper/table2.csv`` (``table2_columns()``), one
row per dataset × defense, all values in percent: ``accuracy_pct`` and, for each attack (targeted =
TA, non-targeted = NA) and provider, ``<attack>_<column>_before_pct`` and ``..._after_pct``, where
``<column>`` is the provider's ``table2_column`` in the registry (aws, ms = Azure, nav = Naver;
the paper's printed table has these three, ``PAPER_COLUMNS``). A provider without results is NaN
and printed as "–".

Printed tables (md, tex) also say what the numbers rest on: a per-image cell whose images joined no
detector score reads "no detector scores for these images" (never a bare "–"), and an accuracy
measured on (``accuracy_on``) is named in the Acc. column, with a warning under the table when it
is not the attacked one: the formula rows then apply another dataset's accuracy.
"""

from __future__ import annotations

import math
import os
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd

from dfdetect.measure.registry import providers
from dfdetect.utils.io import atomic_path

ATTACKS = {"targeted": "TA", "nontargeted": "NA"}
ATTACK_TITLES = {"targeted": "Targeted attack", "nontargeted": "Non-targeted attack"}
LEADING_COLUMNS = ["dataset", "defense", "accuracy_pct"]
NO_SCORES = "no detector scores for these images"
# the provider columns of the paper's printed Table 2, whose cells the audit below reads
PAPER_COLUMNS = ("aws", "ms", "nav")


def _cells(columns) -> list[str]:
    """``<attack>_<column>`` for each attack and provider column (attack names hold no ``_``)."""
    return [f"{attack}_{column}" for attack in ATTACKS for column in columns]


def _frame_columns(cells: list[str]) -> list[str]:
    return LEADING_COLUMNS + [f"{c}_{w}_pct" for c in cells for w in ("before", "after")]


PAPER_CELLS = _cells(PAPER_COLUMNS)


def provider_columns() -> dict[str, str]:
    """``{provider: Table 2 column}`` of the registered providers that have one, in registry order."""
    return {p.name: p.table2_column for p in providers() if p.table2_column}


def cells() -> list[str]:
    """The cells of our Table 2: each attack for each provider column."""
    return _cells(provider_columns().values())


def table2_columns() -> list[str]:
    return _frame_columns(cells())


def _column_title(cell: str) -> str:
    column = cell.split("_", 1)[1]
    return next(p.label for p in providers() if p.table2_column == column)


def same_dataset(a: str, b: str) -> bool:
    """Dataset names compared as users write them: ``CelebFOM`` = ``celebfom`` = ``celeb-fom``."""
    return re.sub(r"[\W_]+", "", str(a)).casefold() == re.sub(r"[\W_]+", "", str(b)).casefold()


def accuracy_elsewhere(dataset: str, accuracy_on: str | None) -> bool:
    """True when ``accuracy_on`` (dataset names, comma-separated) is given and lacks ``dataset``."""
    if not accuracy_on:
        return False
    return not any(same_dataset(dataset, name) for name in str(accuracy_on).split(","))


def table2_row(
    dataset: str, defense: str, after: pd.DataFrame, mode: str = "per_image", accuracy_on: str | None = None
) -> dict:
    """One Table 2 row from ``attack_metrics.after_defense`` output for one dataset.

    ``mode``: ``per_image`` (attack fooled the API and the detector passed the image) or
    ``formula`` (the paper's ``before × (1 − accuracy)``). ``accuracy_on``: the dataset(s) the
    accuracy was measured on, printed beside it (with a warning when it is not ``dataset``). Besides the Table 2 columns the
    row holds ``accuracy_on`` and, for a per-image cell whose images joined no detector score,
    ``<cell>_note`` (the printed tables show them; ``table2.csv`` keeps the paper's columns)."""
    if mode not in ("per_image", "formula"):
        raise ValueError(f"mode must be 'per_image' or 'formula', got {mode!r}")
    rows = after[after["dataset"] == dataset]
    if rows.empty:
        raise ValueError(f"no attack results for dataset {dataset!r} (have {sorted(set(after['dataset']))})")
    if rows["accuracy"].nunique() != 1:
        raise ValueError(f"dataset {dataset!r}: one accuracy per defense expected")
    out = {"dataset": dataset, "defense": defense, "accuracy_pct": 100.0 * rows["accuracy"].iloc[0]}
    out["accuracy_on"] = accuracy_on
    for c in cells():
        out[f"{c}_before_pct"] = out[f"{c}_after_pct"] = math.nan
    for provider, column in provider_columns().items():
        found = rows[rows["provider"] == provider]
        if found.empty:
            continue
        unjoined = mode == "per_image" and "n_joined" in found and int(found["n_joined"].iloc[0]) == 0
        for attack, metric in ATTACKS.items():
            out[f"{attack}_{column}_before_pct"] = 100.0 * found[f"{metric}_before"].iloc[0]
            out[f"{attack}_{column}_after_pct"] = 100.0 * found[f"{metric}_after_{mode}"].iloc[0]
            if unjoined:
                out[f"{attack}_{column}_note"] = NO_SCORES
    return out


def _half_up(value: float, decimals: int) -> str:
    """Round half up at ``decimals`` after removing float noise below 1e-9 (0.9250000000000007 → 0.925)."""
    return str(
        Decimal(repr(float(round(value, 9)))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    )


def format_pct(value: float) -> str:
    """Three significant digits as the paper prints them: 0.60, 1.16, 10.2, 99.9 (no % sign),
    rounded half up."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for decimals, limit in ((2, 10), (1, 100)):
        text = _half_up(value, decimals)
        if float(text) < limit:
            return text
    return _half_up(value, 0)


def _frame(rows, extra: bool = False) -> pd.DataFrame:
    """The Table 2 columns of ``rows``; ``extra=True`` keeps ``accuracy_on`` and the cell notes."""
    df = pd.DataFrame(list(rows))
    columns = table2_columns()
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"Table 2 rows miss columns {missing}")
    if extra:
        columns = columns + [c for c in df.columns if c == "accuracy_on" or c.endswith("_note")]
    return df[columns]


def _text(row, column: str) -> str:
    value = row.get(column)
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _cell(row, cell: str) -> str:
    before, after = row[f"{cell}_before_pct"], row[f"{cell}_after_pct"]
    if pd.isna(before) and pd.isna(after):
        return "–"
    note = _text(row, f"{cell}_note")
    if note and pd.isna(after):
        return f"{format_pct(before)}% → {note}"
    return f"{format_pct(before)}% → {format_pct(after)}%"


def _accuracy(row) -> str:
    text = f"{format_pct(row['accuracy_pct'])}%"
    on = _text(row, "accuracy_on")
    return f"{text} (on {on})" if on else text


def table_notes(df: pd.DataFrame) -> list[str]:
    """What the reader must know about the numbers: datasets whose accuracy comes from another
    dataset, and per-image cells with no detector score."""
    notes, elsewhere, unscored = [], {}, {}
    for _, row in df.iterrows():
        on = _text(row, "accuracy_on")
        if accuracy_elsewhere(row["dataset"], on):
            elsewhere.setdefault((on, format_pct(row["accuracy_pct"])), {})[row["dataset"]] = None
        for c in cells():
            if _text(row, f"{c}_note") and pd.isna(row[f"{c}_after_pct"]):
                unscored.setdefault(row["dataset"], {})[_column_title(c)] = None
    for (on, acc), datasets in elsewhere.items():
        names = ", ".join(datasets)
        notes.append(
            f"Warning: the accuracy {acc}% was measured on {on}, not on {names}: the before × (1 − acc.)"
            f" rows of {names} apply another dataset's accuracy and do not measure this defense there."
        )
    for dataset, providers_ in unscored.items():
        notes.append(
            f"{dataset} ({', '.join(providers_)}), per image: {NO_SCORES} (none joined a prediction)."
        )
    return notes


def to_markdown(df: pd.DataFrame, notes=()) -> str:
    head = ["Dataset", "Defense", "Acc."] + [
        f"{ATTACK_TITLES[c.split('_')[0]].split()[0]} {_column_title(c)}" for c in cells()
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    previous = None
    for _, row in df.iterrows():
        dataset = row["dataset"] if row["dataset"] != previous else ""
        previous = row["dataset"]
        values = [dataset, row["defense"], _accuracy(row)] + [_cell(row, c) for c in cells()]
        lines.append("| " + " | ".join(values) + " |")
    all_notes = table_notes(df) + list(notes)
    if all_notes:
        lines += [""] + [f"* {note}" for note in all_notes]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for char in ("\\", "&", "%", "_", "#", "$"):
        text = text.replace(char, "\\" + char)
    return text


def to_latex(df: pd.DataFrame, notes=()) -> str:
    def cell(row, c):
        text = _cell(row, c)
        return "--" if text == "–" else text.replace("%", "\\%").replace(" → ", "$\\rightarrow$")

    all_cells = cells()
    n = len(all_cells) // len(ATTACKS)  # provider columns per attack
    lines = [
        "\\begin{tabular}{llr" + "c" * len(all_cells) + "}",
        "\\toprule",
        f" & & & \\multicolumn{{{n}}}{{c}}{{Targeted attack}} & \\multicolumn{{{n}}}{{c}}{{Non-targeted attack}} \\\\",
        f"\\cmidrule(lr){{4-{3 + n}}} \\cmidrule(lr){{{4 + n}-{3 + 2 * n}}}",
        "Dataset & Defense & Acc. & " + " & ".join(_column_title(c) for c in all_cells) + " \\\\",
        "\\midrule",
    ]
    previous = None
    for _, row in df.iterrows():
        dataset = _tex_escape(row["dataset"]) if row["dataset"] != previous else ""
        if previous is not None and row["dataset"] != previous:
            lines.append("\\midrule")
        previous = row["dataset"]
        values = [dataset, _tex_escape(row["defense"]), _tex_escape(_accuracy(row))]
        lines.append(" & ".join(values + [cell(row, c) for c in all_cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"% {note}" for note in table_notes(df) + list(notes)]
    return "\n".join(lines) + "\n"


def write_table2(rows, out_dir: str | os.PathLike, notes=()) -> dict[str, Path]:
    """Write ``table2.csv`` (full precision, percent), ``table2.md`` and ``table2.tex`` (printed as in
    the paper: ``11.3% → 1.16%``, with the notes of ``table_notes`` and ``notes`` under the table).
    ``rows``: dicts from ``table2_row`` or a Table 2 frame."""
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    printed = _frame(records, extra=True)
    out_dir = Path(out_dir)
    paths = {kind: out_dir / f"table2.{kind}" for kind in ("csv", "md", "tex")}
    with atomic_path(paths["csv"]) as tmp:
        _frame(records).to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(to_markdown(printed, notes), encoding="utf-8")
    with atomic_path(paths["tex"]) as tmp:
        tmp.write_text(to_latex(printed, notes), encoding="utf-8")
    return paths


# ------------------------------------------------------------------------ audit of the paper's table
def read_printed_table2(path: str | os.PathLike) -> pd.DataFrame:
    """The paper's Table 2 with every value kept as the printed string."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = _frame_columns(PAPER_CELLS)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    return df[columns]


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def _half_ulp(text: str) -> Decimal:
    return Decimal(5).scaleb(-_decimals(text) - 1)


def round_like(value: float, printed: str) -> str:
    """``value`` rounded half up to the number of decimals of ``printed``."""
    return _half_up(value, _decimals(printed))


def audit_formula(printed: pd.DataFrame) -> pd.DataFrame:
    """Check each printed after-value against ``before × (1 − accuracy)``.

    Exact decimal arithmetic on the printed strings; ``formula_printed`` is that value rounded half
    up to the printed number of decimals. Verdicts: ``match`` (formula_printed equals the printed
    string), ``unrounded`` (no match, but some before-value and accuracy that round to the printed
    ones give a value that rounds to the printed after-value: the paper may have used unrounded
    inputs) and ``departs`` (no inputs consistent with the printed ones reproduce it).
    ``implied_factor`` = after / before, to compare with ``one_minus_acc``; ``implied_before`` =
    after / (1 − accuracy)."""
    rows = []
    for _, r in printed.iterrows():
        acc_text = r["accuracy_pct"]
        acc = Decimal(acc_text)
        for cell in PAPER_CELLS:
            b_text, a_text = r[f"{cell}_before_pct"], r[f"{cell}_after_pct"]
            before, after = Decimal(b_text), Decimal(a_text)
            exact = before * (1 - acc / 100)
            quantum = Decimal(1).scaleb(-_decimals(a_text))
            formula_printed = str(exact.quantize(quantum, rounding=ROUND_HALF_UP))
            hb, ha, hA = _half_ulp(b_text), _half_ulp(acc_text), _half_ulp(a_text)
            lo = (before - hb) * (1 - (acc + ha) / 100)
            hi = (before + hb) * (1 - (acc - ha) / 100)
            if formula_printed == a_text:
                verdict = "match"
            elif hi >= after - hA and lo < after + hA:
                verdict = "unrounded"
            else:
                verdict = "departs"
            rows.append(
                {
                    "dataset": r["dataset"],
                    "defense": r["defense"],
                    "cell": cell,
                    "accuracy_pct": acc_text,
                    "before_pct": b_text,
                    "printed_after_pct": a_text,
                    "formula_exact": float(exact),
                    "formula_printed": formula_printed,
                    "consistent_range": (float(lo), float(hi)),
                    "verdict": verdict,
                    "implied_factor": float(after / before) if before else math.nan,
                    "one_minus_acc": float(1 - acc / 100),
                    "implied_before": float(after / (1 - acc / 100)) if acc != 100 else math.nan,
                }
            )
    return pd.DataFrame(rows)


def implied_accuracy_range(printed: pd.DataFrame) -> pd.DataFrame:
    """Per row, the accuracies (percent) for which every cell with a non-zero before-value rounds to
    its printed after-value (before-values free within their rounding interval); NaN bounds when
    no single accuracy explains the whole row."""
    rows = []
    for _, r in printed.iterrows():
        lo, hi = Decimal(0), Decimal(100)
        for cell in PAPER_CELLS:
            b_text, a_text = r[f"{cell}_before_pct"], r[f"{cell}_after_pct"]
            before, after = Decimal(b_text), Decimal(a_text)
            if before == 0:
                continue
            hb, hA = _half_ulp(b_text), _half_ulp(a_text)
            lo = max(lo, 100 * (1 - (after + hA) / (before - hb)))
            hi = min(hi, 100 * (1 - max(after - hA, Decimal(0)) / (before + hb)))
        ok = lo <= hi
        rows.append(
            {
                "dataset": r["dataset"],
                "defense": r["defense"],
                "printed_accuracy_pct": r["accuracy_pct"],
                "implied_accuracy_lo": float(lo) if ok else math.nan,
                "implied_accuracy_hi": float(hi) if ok else math.nan,
            }
        )
    return pd.DataFrame(rows)
