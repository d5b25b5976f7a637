"""Re-derive the paper's attack metrics from the authors' cached API results (tariq2022 CSVs).

python scripts/rescore.py --tariq2022 ../shared/data/api_results/tariq2022/Results_FOM.csv \
    --provider azure --dataset CelebFOM --out results/attack

writes <out>/attack_metrics.csv with columns provider,dataset,n_fake,TA,NA,DHF,DHC,DHS,SIC
(fractions in [0, 1]). Rows of other provider × dataset pairs already in that file are kept, so
several runs into one --out build one table. Options add bootstrap confidence intervals clustered
by target celebrity (attack_metrics_ci.csv), the paper's Fig. 4 denominators
(attack_metrics_fig4.csv) and a Fig. 4-style chart of the whole table (fig4.png).
Scoring rules: shared/data/README.md; details: docs/attack_metrics.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from dfdetect.measure.names import default_aliases
from dfdetect.measure.records import AttackDataError
from dfdetect.measure.registry import get_provider
from dfdetect.table2.metrics import METRICS, bootstrap_ci, compute_attack_metrics, fig4_convention
from dfdetect.table2.plots import plot_attack_metrics
from dfdetect.table2.tariq2022 import AUTHORS_PROVIDERS, read_tariq2022
from dfdetect.utils.io import atomic_path

OUTPUT_COLUMNS = ["provider", "dataset", "n_fake", *METRICS]
KEY = ["provider", "dataset"]


def read_table(path: Path) -> pd.DataFrame:
    """Read one of our CSVs; the metric name "NA" must stay a string, not become NaN."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def merge_into(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Replace the rows of ``new``'s provider × dataset pairs in the CSV at ``path`` (if any)."""
    if path.is_file():
        old = read_table(path)
        keep = ~old.set_index(KEY).index.isin(new.set_index(KEY).index)
        new = pd.concat([old[keep], new], ignore_index=True)
    with atomic_path(path) as tmp:
        new.to_csv(tmp, index=False)
    return new


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tariq2022", required=True, type=Path, help="one of the authors' result CSVs")
    scales = ", ".join(f"{p}: 0–{100 / get_provider(p).confidence_scale:g}" for p in AUTHORS_PROVIDERS)
    parser.add_argument("--provider", required=True, choices=AUTHORS_PROVIDERS, help=scales)
    parser.add_argument("--dataset", required=True, help="dataset name to report, e.g. CelebFOM")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--target-column", choices=["Src", "Tar"], help="default: Tar for Results_celebDF.csv"
    )
    parser.add_argument(
        "--target-answer",
        choices=["auto", "same_row", "identity"],
        default="auto",
        help="where X_T's answer comes from (default: the README rule)",
    )
    parser.add_argument("--beta", type=float, default=90.0, help="DHC confidence threshold (0–100)")
    parser.add_argument("--gamma", type=float, default=80.0, help="DHS similarity threshold (0–100)")
    parser.add_argument("--aliases", type=Path, help="extra alias,canonical CSV of celebrity names")
    parser.add_argument("--skip-bad-rows", action="store_true", help="list malformed rows and go on")
    parser.add_argument(
        "--bootstrap", type=int, default=0, metavar="N", help="N bootstrap replicates for CIs"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--fig4", action="store_true", help="also write the Fig. 4 denominators")
    parser.add_argument("--plot", action="store_true", help="draw fig4.png from the whole attack_metrics.csv")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        aliases = default_aliases(args.aliases)
        records, report = read_tariq2022(
            args.tariq2022,
            args.provider,
            args.dataset,
            target_column=args.target_column,
            target_answer=args.target_answer,
            errors="skip" if args.skip_bad_rows else "raise",
            aliases=aliases,
        )
    except (AttackDataError, ValueError, OSError) as e:
        parser.exit(2, f"rescore: error: {e}\n")
    print(report.summary())
    if records.empty:
        parser.exit(2, f"rescore: error: {args.tariq2022}: no rows to score\n")

    metrics = compute_attack_metrics(records, args.beta, args.gamma, aliases)
    args.out.mkdir(parents=True, exist_ok=True)
    table = merge_into(args.out / "attack_metrics.csv", metrics[OUTPUT_COLUMNS])
    print(metrics[OUTPUT_COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    ci = None
    if args.bootstrap:
        ci = bootstrap_ci(
            records, args.bootstrap, seed=args.seed, beta=args.beta, gamma=args.gamma, aliases=aliases
        )
        merge_into(args.out / "attack_metrics_ci.csv", ci)
    if args.fig4:
        merge_into(args.out / "attack_metrics_fig4.csv", fig4_convention(metrics))
    if args.plot:
        ci_path = args.out / "attack_metrics_ci.csv"
        all_ci = read_table(ci_path) if ci_path.is_file() else ci
        print(f"wrote {plot_attack_metrics(table, args.out / 'fig4.png', ci=all_ci)}")
    print(f"wrote {args.out / 'attack_metrics.csv'} ({len(table)} provider × dataset rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
