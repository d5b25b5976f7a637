"""``dfdetect <task> [args]``: the one command. Each task is a module of ``dfdetect.tasks`` (or
``dfdetect.bench`` for ``dfdetect bench <name>``) with a ``main()`` that reads ``sys.argv``: Hydra
tasks take overrides (``dfdetect train model=meso4``, ``--help`` shows the task's config groups
and composed config, ``--config-dir <dir>`` adds your own configs), the others take flags."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    module: str
    summary: str
    hydra: bool = True
    prepend: tuple[str, ...] = ()  # arguments placed before the user's


TASKS: dict[str, Task] = {
    "train": Task(
        "dfdetect.tasks.train", "train a detector or a defense ensemble (DD1-DD3), or the purifier"
    ),
    "evaluate": Task(
        "dfdetect.tasks.evaluate", "score a checkpoint on a split; metrics, predictions, calibration"
    ),
    "predict": Task("dfdetect.tasks.predict", "verdicts on your own videos, images, folders, globs or CSVs"),
    "serve": Task(
        "dfdetect.tasks.serve", "the deepfake gate as an HTTP service in front of a recognition API"
    ),
    "preprocess": Task(
        "dfdetect.tasks.preprocess", "videos and stills -> a clip store of MTCNN-aligned face clips"
    ),
    "check-store": Task(
        "dfdetect.tasks.check_store", "check a clip store: files, manifest, splits", hydra=False
    ),
    "attack": Task(
        "dfdetect.tasks.attack", "measure celebrity-recognition APIs on fake/real pairs (paper 4.2)"
    ),
    "rescore": Task(
        "dfdetect.tasks.rescore", "Table 2 and the attack metrics from cached API answers", hydra=False
    ),
    "cloak": Task("dfdetect.tasks.cloak", "cloak face photos with Fawkes or LowKey (PuFace's attacks)"),
    "purify": Task("dfdetect.tasks.purify", "a trained purifier over a folder of face chips", hydra=False),
    "puface": Task(
        "dfdetect.tasks.puface", "PuFace: 'puface train' the purifier, 'puface evaluate' the table"
    ),
    "face-verify": Task(
        "dfdetect.tasks.face_verify", "verify dlib's face network on same/other pairs", hydra=False
    ),
    "export-litdata": Task(
        "dfdetect.tasks.export_litdata", "a clip store -> LitData chunks for streaming", hydra=False
    ),
    "contact-sheet": Task(
        "dfdetect.tasks.contact_sheet", "a picture of a store's clips, augmented", hydra=False
    ),
    "demo-report": Task(
        "dfdetect.tasks.demo_report", "the demo run's test AUC beside a colour-only baseline", hydra=False
    ),
    "zoo-table": Task(
        "dfdetect.tasks.zoo_table", "the k-fold cross-validation table of the detector zoo", hydra=False
    ),
    "sweep": Task("dfdetect.tasks.sweep", "an Optuna hyperparameter search over train"),
    "bench": Task("dfdetect.bench", "benchmarks: 'dfdetect bench <name>' (dfdetect bench --help lists them)"),
}

BENCHMARKS: dict[str, str] = {
    "predict": "verdicts per second against a DFDC-winner-style pipeline and the decode bound",
    "preprocess": "store-making speed and box agreement against per-frame MTCNN",
    "ray": "preprocessing on Ray against the local runner (overhead) and on 1 vs 2 CPUs (scaling)",
    "serve": "the gate's throughput and p99, batched against unbatched",
    "cloak": "batched cloaking against one image at a time",
    "convlstm": "the ConvLSTM kernels against the naive layer",
    "dataloading": "clips per second against a DeepfakeBench-style loader",
    "face-embedding": "our dlib ResNet against dlib itself",
    "face-boxes": "face boxes tracked across clips against per-frame full-resolution MTCNN",
    "training": "training steps per second against a plain PyTorch loop",
}

# `puface train` is the train task on the purifier's experiment; `puface [evaluate]` the evaluation; `puface lfw` the LFW protocol (#26)
PUFACE_WORDS = ("train", "evaluate", "lfw")


def usage() -> str:
    width = max(map(len, TASKS))
    lines = ["usage: dfdetect <task> [hydra overrides | flags]   (dfdetect <task> --help)", "", "tasks:"]
    lines += [f"  {name:<{width}}  {task.summary}" for name, task in TASKS.items()]
    lines += ["", "outputs go under the current directory (logs/, checkpoints/, data/)"]
    return "\n".join(lines)


def bench_usage() -> str:
    width = max(map(len, BENCHMARKS))
    lines = ["usage: dfdetect bench <name> [flags]   (dfdetect bench <name> --help)", "", "benchmarks:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in BENCHMARKS.items()]
    return "\n".join(lines)


def run_module(module: str, prog: str, args: list[str]) -> int:
    """Import ``module`` and run its ``main()`` as the program ``python -m <module> <args>``: that is
    also what a process started by re-running this one sees (Lightning's DDP launcher runs
    ``python -m <__main__.__spec__.name> <sys.argv[1:]>``), so each task module runs as a script."""
    main_module = sys.modules["__main__"]
    entry = importlib.import_module(module).main
    saved = sys.argv, getattr(main_module, "__spec__", None)
    sys.argv = [prog, *args]
    main_module.__spec__ = importlib.util.find_spec(module)
    try:
        result = entry()
    finally:
        sys.argv, main_module.__spec__ = saved
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in TASKS:
        print(f"dfdetect: error: unknown task {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if name == "bench":
        if not rest or rest[0] in ("-h", "--help"):
            print(bench_usage())
            return 0
        if rest[0] not in BENCHMARKS:
            print(f"dfdetect bench: error: unknown benchmark {rest[0]!r}\n\n{bench_usage()}", file=sys.stderr)
            return 2
        module = "dfdetect.bench." + rest[0].replace("-", "_")
        return run_module(module, f"dfdetect bench {rest[0]}", rest[1:])
    if name == "puface":
        word = rest[0] if rest and rest[0] in PUFACE_WORDS else "evaluate"
        rest = rest[1:] if rest and rest[0] in PUFACE_WORDS else rest
        if word == "evaluate":
            return run_module(TASKS["puface"].module, "dfdetect puface evaluate", rest)
        if word == "lfw":
            return run_module("dfdetect.tasks.puface_lfw", "dfdetect puface lfw", rest)
        chosen = any(arg.lstrip("+").startswith("experiment=") for arg in rest)
        return run_module(
            TASKS["train"].module,
            "dfdetect puface train",
            [*([] if chosen else ["experiment=puface"]), *rest],
        )
    task = TASKS[name]
    return run_module(task.module, f"dfdetect {name}", [*task.prepend, *rest])


def alias(task: str, args: list[str] | None = None) -> None:
    """The old spellings (``python train.py ...``, ``python scripts/x.py ...``): run ``task``."""
    sys.exit(main([*task.split(), *(sys.argv[1:] if args is None else args)]))


if __name__ == "__main__":
    sys.exit(main())
