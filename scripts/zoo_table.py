"""Train every detector of the zoo on one dataset and tabulate val/test AUC and accuracy.

Each entry is one ``python train.py`` (or ``evaluate.py``) command with a bounded CPU budget
(``trainer.max_epochs`` and ``trainer.max_time``); its run dir is ``<out>/<entry>``. The script is
resumable: an entry whose ``metrics.json`` exists is not run again (``--redo NAME`` forces it).
It ends by writing ``<out>/results.md`` and ``<out>/results.csv`` with the command of every row.

python scripts/zoo_table.py [--data ffpp_mini] [--out logs/zoo/ffpp_mini] [--only meso4 xception] [--list]
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

from dfdetect.utils.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]
MESONET_WEIGHTS = ROOT.parent / "shared" / "weights" / "mesonet"

# frame nets see the first frame of each clip (data.num_frames=1: 16 frames per video), clip nets
# all five; every run stops at its epoch count or its wall-clock budget, whichever comes first
FRAME = ["data.num_frames=1"]
ENTRIES: dict[str, dict] = {
    "mesoinception4_df_zero_shot": {
        "script": "evaluate.py",
        "args": ["model=mesoinception4", f"model.net.weights={MESONET_WEIGHTS / 'MesoInception_DF.h5'}"],
    },
    "meso4_df_zero_shot": {
        "script": "evaluate.py",
        "args": ["model=meso4", f"model.net.weights={MESONET_WEIGHTS / 'Meso4_DF.h5'}"],
    },
    # the authors' DF weights fine-tuned on the training split with a 10x smaller learning rate
    "mesoinception4_df_finetuned": {
        "args": [
            "model=mesoinception4",
            f"model.net.weights={MESONET_WEIGHTS / 'MesoInception_DF.h5'}",
            "model.optimizer.lr=1e-4",
            *FRAME,
            "trainer.max_epochs=6",
        ],
        "budget": "00:00:07:00",
    },
    "meso4_df_finetuned": {
        "args": [
            "model=meso4",
            f"model.net.weights={MESONET_WEIGHTS / 'Meso4_DF.h5'}",
            "model.optimizer.lr=1e-4",
            *FRAME,
            "trainer.max_epochs=6",
        ],
        "budget": "00:00:05:00",
    },
    "mesoinception4": {
        "args": ["model=mesoinception4", *FRAME, "trainer.max_epochs=12"],
        "budget": "00:00:07:00",
    },
    "meso4": {"args": ["model=meso4", *FRAME, "trainer.max_epochs=12"], "budget": "00:00:05:00"},
    "shallownet_v1": {
        "args": ["model=shallownet_v1", *FRAME, "trainer.max_epochs=10"],
        "budget": "00:00:04:00",
    },
    "shallownet_v2": {
        "args": ["model=shallownet_v2", *FRAME, "trainer.max_epochs=3", "trainer.limit_train_batches=8"],
        "budget": "00:00:05:00",
    },
    "shallownet_v3": {
        "args": ["model=shallownet_v3", *FRAME, "trainer.max_epochs=10"],
        "budget": "00:00:04:00",
    },
    "clrnet_lite": {"args": ["model=clrnet_lite", "trainer.max_epochs=6"], "budget": "00:00:08:00"},
    "xception": {
        "args": ["model=xception", *FRAME, "data.net_input_size=160", "trainer.max_epochs=4"],
        "budget": "00:00:08:00",
    },
    "abnet": {"args": ["model=abnet", "trainer.max_epochs=5"], "budget": "00:00:07:00"},
    "fakespotter": {"args": ["model=fakespotter", *FRAME, "trainer.max_epochs=5"], "budget": "00:00:05:00"},
    # both stages within the CPU budget: 2 base-classifier epochs, then 2 Siamese epochs
    "ftdetect": {
        "args": ["experiment=ftdetect", *FRAME, "model.siamese_start_epoch=2", "trainer.max_epochs=4"],
        "budget": "00:00:10:00",
    },
}
COLUMNS = ["val/auc", "val/acc", "test/auc", "test/acc", "test/video_auc", "test/video_acc"]


def command(name: str, data: str, run_dir: Path) -> list[str]:
    entry = ENTRIES[name]
    script = entry.get("script", "train.py")
    args = [f"data={data}", *entry["args"]]
    if "budget" in entry:
        args.append(f"trainer.max_time={entry['budget']}")
    return [sys.executable, str(ROOT / script), *args, f"hydra.run.dir={run_dir}"]


def shown(cmd: list[str]) -> str:
    """The command as a user types it (from the project root, without the run dir)."""
    parts = ["python", Path(cmd[1]).name, *(a for a in cmd[2:] if not a.startswith("hydra.run.dir="))]
    return shlex.join(parts).replace(str(ROOT.parent), "..")


def run_entry(name: str, data: str, out: Path) -> dict:
    run_dir = out / name
    cmd = command(name, data, run_dir)
    metrics_file = run_dir / "metrics.json"
    if not metrics_file.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(run_dir / "stdout.log", "w") as log:
            done = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        if done.returncode != 0 or not metrics_file.exists():
            return {"name": name, "status": f"failed (exit {done.returncode}, see {run_dir}/stdout.log)"}
        with atomic_path(run_dir / "wall_seconds.txt") as tmp:
            Path(tmp).write_text(f"{time.perf_counter() - start:.1f}\n")
    metrics = json.loads(metrics_file.read_text())
    wall = run_dir / "wall_seconds.txt"
    row = {"name": name, "status": "ok", "epochs": metrics.get("epochs"), "command": shown(cmd)}
    row["wall_s"] = float(wall.read_text()) if wall.exists() else None
    row.update({c: metrics.get(c) for c in COLUMNS})
    return row


def _number(row: dict, key: str) -> str:
    value = row.get(key)
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


def write_tables(rows: list[dict], out: Path) -> None:
    frame = pd.DataFrame(rows)
    with atomic_path(out / "results.csv") as tmp:
        frame.to_csv(tmp, index=False)
    lines = [
        "| detector | epochs | wall s | val AUC | val acc | test AUC | test acc | test video AUC | command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['name']} | {row['status']} |  |  |  |  |  |  |  |")
            continue

        wall = "" if row["wall_s"] is None else f"{row['wall_s']:.0f}"
        epochs = "" if row["epochs"] is None else str(row["epochs"])
        lines.append(
            f"| {row['name']} | {epochs} | {wall} | {_number(row, 'val/auc')} | {_number(row, 'val/acc')} | {_number(row, 'test/auc')} "
            f"| {_number(row, 'test/acc')} | {_number(row, 'test/video_auc')} | `{row['command']}` |"
        )
    with atomic_path(out / "results.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="ffpp_mini")
    parser.add_argument("--out", default=None, help="default logs/zoo/<data>")
    parser.add_argument("--only", nargs="*", default=None, help="entries to run (default: all)")
    parser.add_argument("--redo", nargs="*", default=[], help="entries to run again")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    out = Path(args.out or ROOT / "logs" / "zoo" / args.data).resolve()
    names = args.only or list(ENTRIES)
    unknown = sorted((set(names) | set(args.redo)) - set(ENTRIES))
    if unknown:
        parser.error(f"unknown entries {unknown}; known: {sorted(ENTRIES)}")
    if args.list:
        for name in names:
            print(f"{name}: {shown(command(name, args.data, out / name))}")
        return
    for name in args.redo:
        (out / name / "metrics.json").unlink(missing_ok=True)
    # the table keeps every entry finished earlier (run_entry only reads those), in ENTRIES order
    rows = {n: run_entry(n, args.data, out) for n in ENTRIES if (out / n / "metrics.json").exists()}
    for name in tqdm(names, desc=f"zoo on {args.data}", unit="run"):
        rows[name] = run_entry(name, args.data, out)
        write_tables([rows[n] for n in ENTRIES if n in rows], out)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
