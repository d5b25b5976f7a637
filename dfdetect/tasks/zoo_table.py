"""Every detector of the zoo under grouped k-fold cross-validation on one dataset: pooled
out-of-fold video AUC with a 95 % bootstrap interval clustered by group.

Each entry is one ``python train.py`` (or ``evaluate.py``) command run once per fold with
``data.folds=<k> data.fold=<i>``; a trained entry's recipe, with its bounded CPU budget
(``trainer.max_epochs`` and ``trainer.max_time``), is its experiment config
``dfdetect/conf/experiment/zoo/<entry>.yaml`` (``experiment=zoo/<entry>``); its run dir is ``<out>/<entry>/fold<i>``. Over the k folds every video is
tested exactly once, by a model that never saw its group. The script is resumable: a fold whose
``predictions.parquet`` exists is not run again (``--redo NAME`` reruns an entry's folds).
Per entry it pools the folds' test predictions (a video's score is the mean P(fake) of its clips),
computes the video AUC and a percentile interval from 2,000 bootstrap draws of whole groups
(``dfdetect.run.crossval``), and writes ``<out>/results.md``, ``<out>/results.csv`` and
``<out>/oof_videos.csv``.

python scripts/zoo_table.py [--data ffpp_mini] [--folds 5] [--out logs/zoo/ffpp_mini_cv5] [--only meso4] [--list] [--by-method]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from dfdetect.data.manifest import read_manifest
from dfdetect.run.crossval import cluster_bootstrap_auc, fuse_fold, pool_folds
from dfdetect.scoring.roc import auc
from dfdetect.scoring.video import video_scores
from dfdetect.utils.io import atomic_path
from dfdetect.utils.paths import CONF_DIR, project_root, shared_dir

ROOT = project_root()
MESONET_WEIGHTS = shared_dir() / "weights" / "mesonet"

# one experiment config per trained entry, dfdetect/conf/experiment/zoo/<entry>.yaml: its recipe
# (model, frames, input size, epochs, batch limits, one core, the wall-clock budget of a fold)
ZOO_CONFIGS = CONF_DIR / "experiment" / "zoo"


def zoo_entries() -> dict[str, dict]:
    return {p.stem: {"args": [f"experiment=zoo/{p.stem}"]} for p in sorted(ZOO_CONFIGS.glob("*.yaml"))}


ENTRIES: dict[str, dict] = {
    **zoo_entries(),
    # the authors' released DF weights, no training: the same folds' test videos
    "mesoinception4_df_zero_shot": {
        "script": "evaluate.py",
        "args": [
            "model=mesoinception4",
            f"model.net.weights={MESONET_WEIGHTS / 'MesoInception_DF.h5'}",
            "data.num_frames=1",
            "calibration.enabled=false",
        ],
    },
    # DD1 over the paper's member CLRNet (here CLRNet-lite): each fold's own checkpoint as the gate,
    # so nothing is fitted on that fold's test videos
    "dd1_clrnet_lite": {
        "script": "evaluate.py",
        "args": ["ensemble=dd1", "calibration.enabled=false"],
        "members": ["clrnet_lite"],
    },
    # the paper's defenses over members that read different clips (ABNet: 2-s segments of the
    # 64-frame store): fused per video from each fold's own member runs (test scores; DD3 is fitted
    # on the members' validation scores of that fold), dfdetect/ensemble/late_fusion.py
    "dd1_clrnet_lite_videos": {"fusion": "dd1", "members": ["clrnet_lite"]},
    "dd2_clrnet_lite_abnet_ftdetect": {"fusion": "dd2", "members": ["clrnet_lite", "abnet", "ftdetect"]},
    "dd3_clrnet_lite_abnet_ftdetect": {"fusion": "dd3", "members": ["clrnet_lite", "abnet", "ftdetect"]},
}
# rows shown, not run: detectors and defenses waiting for other work
PENDING: dict[str, str] = {}
FINISHED = "predictions.parquet"


def member_checkpoint(out: Path, member: str, fold: int) -> str:
    """The best checkpoint of ``member``'s run of ``fold`` (``<member ckpt>`` before it exists)."""
    metrics = out / member / f"fold{fold}" / "metrics.json"
    if metrics.exists():
        return json.loads(metrics.read_text()).get("best_checkpoint") or f"<{member} ckpt>"
    return f"<{member} ckpt>"


def command(name: str, data: str, folds: int, fold: int, run_dir: Path) -> list[str]:
    entry = ENTRIES[name]
    if "fusion" in entry:  # no subprocess: run_fold fuses the members' finished runs
        return [
            sys.executable,
            str(ROOT / "scripts" / "zoo_table.py"),
            "--data",
            data,
            "--folds",
            str(folds),
            "--only",
            name,
        ]
    script = entry.get("script", "train.py")
    args = [f"data={data}", f"data.folds={folds}", f"data.fold={fold}", *entry["args"]]
    if "members" in entry:
        out = run_dir.parent.parent
        ckpts = ",".join(member_checkpoint(out, m, fold) for m in entry["members"])
        args.append(f"ensemble.members=[{ckpts}]")
    return [sys.executable, str(ROOT / script), *args, f"hydra.run.dir={run_dir}"]


def shown(cmd: list[str]) -> str:
    """The command as a user types it (from the project root, without the run dir)."""
    parts = ["python", Path(cmd[1]).relative_to(ROOT).as_posix()]
    parts += [a for a in cmd[2:] if not a.startswith("hydra.run.dir=")]
    return shlex.join(parts).replace(str(ROOT.parent), "..")


def run_fold(name: str, data: str, folds: int, fold: int, out: Path) -> str:
    """Run one fold unless finished; returns ``ok`` or why not."""
    run_dir = out / name / f"fold{fold}"
    if (run_dir / FINISHED).exists():
        return "ok"
    entry = ENTRIES[name]
    if "fusion" in entry:
        member_dirs = {m: out / m / f"fold{fold}" for m in entry["members"]}
        missing = [m for m, d in member_dirs.items() if not (d / FINISHED).exists()]
        if missing:
            return f"skipped (no finished run of {missing} for fold {fold} yet)"
        start = time.perf_counter()
        fuse_fold(entry["fusion"], member_dirs, run_dir)
        with atomic_path(run_dir / "wall_seconds.txt") as tmp:
            Path(tmp).write_text(f"{time.perf_counter() - start:.1f}\n")
        return "ok"
    missing = [m for m in entry.get("members", []) if "<" in member_checkpoint(out, m, fold)]
    if missing:
        return f"skipped (no checkpoint of {missing} for fold {fold} yet)"
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(run_dir / "stdout.log", "w") as log:
        cmd = command(name, data, folds, fold, run_dir)
        done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    if done.returncode != 0 or not (run_dir / FINISHED).exists():
        return f"failed (exit {done.returncode}, see {run_dir}/stdout.log)"
    with atomic_path(run_dir / "wall_seconds.txt") as tmp:
        Path(tmp).write_text(f"{time.perf_counter() - start:.1f}\n")
    return "ok"


def summarise(
    name: str, out: Path, folds: int, groups: dict[str, str], data: str
) -> tuple[dict, pd.DataFrame | None]:
    """One table row from the finished folds of an entry, and its out-of-fold video scores."""
    dirs = {i: out / name / f"fold{i}" for i in range(folds)}
    done = {i: d for i, d in dirs.items() if (d / FINISHED).exists()}
    row = {
        "name": name,
        "folds": f"{len(done)}/{folds}",
        "command": shown(command(name, data, folds, 0, out)),
    }
    row["command"] = row["command"].replace("data.fold=0", "data.fold=<i>")
    for member in ENTRIES[name].get("members", []):
        row["command"] = row["command"].replace(member_checkpoint(out, member, 0), f"<{member} ckpt>")
    if not done:
        return {**row, "status": "not run"}, None
    epochs, wall, fold_aucs = [], 0.0, []
    for d in done.values():
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        epochs.append(metrics.get("epochs"))
        fold_aucs.append(metrics.get("test/video_auc", float("nan")))
        wall += float((d / "wall_seconds.txt").read_text()) if (d / "wall_seconds.txt").exists() else 0.0
    clips = pool_folds({i: pd.read_parquet(d / FINISHED) for i, d in done.items()}, groups)
    videos = video_scores(clips)
    interval = cluster_bootstrap_auc(videos)
    row.update(
        status="ok" if len(done) == folds else "partial",
        epochs="/".join(str(e) for e in epochs) if any(e is not None for e in epochs) else "–",
        wall_s=round(wall),
        videos=len(videos),
        groups=videos["group"].nunique(),
        video_auc=interval["auc"],
        ci_low=interval["low"],
        ci_high=interval["high"],
        # a fused defense scores videos, not clips
        clip_auc=None
        if "fusion" in ENTRIES[name]
        else auc(clips["prob"].to_numpy(), clips["label"].to_numpy()),
        fold_auc_mean=float(pd.Series(fold_aucs, dtype=float).mean()),
        fold_auc_min=float(pd.Series(fold_aucs, dtype=float).min()),
        fold_auc_max=float(pd.Series(fold_aucs, dtype=float).max()),
    )
    return row, videos.reset_index().assign(entry=name)


def _number(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


def write_tables(rows: list[dict], videos: list[pd.DataFrame], out: Path) -> None:
    with atomic_path(out / "results.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    if videos:
        with atomic_path(out / "oof_videos.csv") as tmp:
            pd.concat(videos, ignore_index=True).to_csv(tmp, index=False)
    lines = [
        "| detector | folds | epochs per fold | wall s | videos (groups) | OOF video AUC | 95 % CI (groups) "
        "| OOF clip AUC | per-fold video AUC, mean (min–max) | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if r["status"] not in ("ok", "partial"):
            shown_command = f"`{r['command']}`" if r.get("command") else ""
            lines.append(
                f"| {r['name']} | {r.get('folds', '')} | {r['status']} |  |  |  |  |  |  | {shown_command} |"
            )
            continue
        partial = "" if r["status"] == "ok" else " (partial)"
        lines.append(
            f"| {r['name']} | {r['folds']}{partial} | {r['epochs']} | {r['wall_s']} | {r['videos']} ({r['groups']}) "
            f"| {_number(r['video_auc'])} | {_number(r['ci_low'])}–{_number(r['ci_high'])} | {_number(r['clip_auc'])} "
            f"| {_number(r['fold_auc_mean'])} ({_number(r['fold_auc_min'])}–{_number(r['fold_auc_max'])}) "
            f"| `{r['command']}` |"
        )
    with atomic_path(out / "results.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def by_method_table(out: Path, manifest: pd.DataFrame, names: list[str]) -> str:
    """Per entry and manipulation method: pooled out-of-fold video AUC of that method's fake videos
    against every real video, with the 95 % group-bootstrap interval (from ``oof_videos.csv``)."""
    videos = pd.read_csv(out / "oof_videos.csv")
    methods = manifest.groupby("video_id")["method"].first()
    videos["method"] = videos["video_id"].map(methods)
    fakes = sorted(m for m in videos.loc[videos["label"] == 1, "method"].dropna().unique())
    lines = [
        "| detector | " + " | ".join(f"{m} vs real" for m in fakes) + " |",
        "| --- | " + " | ".join("---" for _ in fakes) + " |",
    ]
    for name in names:
        entry = videos[videos["entry"] == name]
        if entry.empty:
            continue
        cells = []
        for method in fakes:
            part = entry[(entry["label"] == 0) | (entry["method"] == method)]
            r = cluster_bootstrap_auc(part)
            cells.append(f"{r['auc']:.3f} ({r['low']:.3f}–{r['high']:.3f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="ffpp_mini")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--store", default=None, help="the data's clip store, for the groups (default data/stores/<data>)"
    )
    parser.add_argument("--out", default=None, help="default logs/zoo/<data>_cv<folds>")
    parser.add_argument("--only", nargs="*", default=None, help="entries to run (default: all)")
    parser.add_argument("--redo", nargs="*", default=[], help="entries whose folds run again")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    parser.add_argument("--table-only", action="store_true", help="tabulate the finished folds, run nothing")
    parser.add_argument(
        "--by-method", action="store_true", help="also write results_by_method.md (each fake method vs real)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out or ROOT / "logs" / "zoo" / f"{args.data}_cv{args.folds}").resolve()
    names = args.only if args.only is not None else list(ENTRIES)
    unknown = sorted((set(names) | set(args.redo)) - set(ENTRIES))
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {sorted(ENTRIES)}")
    if args.list:
        for name in names:
            for fold in range(args.folds):
                print(
                    f"{name} fold {fold}: {shown(command(name, args.data, args.folds, fold, out / name / f'fold{fold}'))}"
                )
        return
    for name in args.redo:
        for fold in range(args.folds):
            (out / name / f"fold{fold}" / FINISHED).unlink(missing_ok=True)
    store = Path(args.store or ROOT / "data" / "stores" / args.data)
    manifest = read_manifest(store)
    groups = dict(zip(manifest["video_id"], manifest["group"].astype(str), strict=True))

    def tabulate() -> None:
        rows, videos = [], []
        for name in ENTRIES:
            row, oof = summarise(name, out, args.folds, groups, args.data)
            rows.append(row)
            if oof is not None:
                videos.append(oof)
        rows += [{"name": n, "status": why} for n, why in PENDING.items()]
        write_tables(rows, videos, out)

    jobs = [] if args.table_only else [(n, f) for n in names for f in range(args.folds)]
    for name, fold in tqdm(jobs, desc=f"zoo on {args.data}, {args.folds} folds", unit="fold"):
        status = run_fold(name, args.data, args.folds, fold, out)
        if status != "ok":
            print(f"{name} fold {fold}: {status}", file=sys.stderr)
        tabulate()
    tabulate()
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.md'}, {out / 'results.csv'} and {out / 'oof_videos.csv'}")
    if args.by_method and (out / "oof_videos.csv").exists():
        table = by_method_table(out, manifest, names)
        with atomic_path(out / "results_by_method.md") as tmp:
            Path(tmp).write_text(table)
        print(table)
        print(f"wrote {out / 'results_by_method.md'}")


if __name__ == "__main__":
    main()
