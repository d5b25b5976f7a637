"""Preprocessing on Ray against the local runner, on the same ffpp_mini videos:

    python scripts/benchmark_ray.py [--videos 60] [--cpus 2] [--rounds 3] [--clips 16] [--max-frames 0]

Per round, in turn (the order rotates between rounds so that a change of load on a shared machine
favours none): the local runner with ``--cpus`` worker processes; runner=ray on a local cluster of
``--cpus`` CPUs (overhead); runner=ray on 1 CPU and on 2 CPUs (scaling). Every run writes a fresh
store with the store pipeline's default detector and face settings (``--clips`` clips of 5 frames per
video, over the whole video unless ``--max-frames``); its wall time includes starting the worker
processes, not starting a Ray cluster (printed apart: a cluster serves many runs). Each Ray store's
manifest is checked against the local one. Prints medians with min-max, files per second, the load average before and after, the overhead of Ray against local at the same
CPUs, and as its last line ``ratio=<files/s of ray on 2 CPUs / files/s of ray on 1 CPU>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from dfdetect.bench.rounds import rotated
from dfdetect.data.manifest import read_manifest
from dfdetect.distributed.cluster import RayOptions, ray_session
from dfdetect.distributed.preprocess import ray_dispatch
from dfdetect.preprocess.adapters import scan
from dfdetect.preprocess.runner import run_preprocess
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.utils.paths import CONF_DIR, shared_dir

MINI = shared_dir() / "data" / "ffpp_c40_mini"


def settings(clips: int, max_frames: int) -> ClipSettings:
    cfg = OmegaConf.load(CONF_DIR / "preprocess" / "default.yaml")
    face = OmegaConf.load(CONF_DIR / "face_pipeline" / "default.yaml")
    values = {**OmegaConf.to_container(cfg.sampling), **OmegaConf.to_container(face.face)}
    values.update(clips_per_video=clips, max_frames=max_frames or None)
    return ClipSettings.from_mapping(values)


@contextmanager
def on_cores(cpus: int) -> Iterator[set[int]]:
    """Confine this process and everything it starts (worker processes, a Ray cluster) to ``cpus``
    of the cores it may use. Ray's ``num_cpus`` is a scheduling count, not a confinement: a 1-CPU
    cluster's worker still decodes on a second core (OpenCV's and the prefetch thread), so without
    this "1 CPU" on a 2-core machine is nearer 1.5. No-op where affinity cannot be set."""
    if not hasattr(os, "sched_getaffinity"):
        yield set()
        return
    before = os.sched_getaffinity(0)
    cores = set(sorted(before)[:cpus])
    os.sched_setaffinity(0, cores)
    try:
        yield cores
    finally:
        os.sched_setaffinity(0, before)


def one_run(name: str, cpus: int, items, clip_settings, detector, store: Path) -> tuple[float, float]:
    """(seconds of the run, seconds to start its Ray cluster, 0 for local). The run's time includes
    starting its worker processes (local) or Ray's workers (ray), not the cluster itself. The run
    and all it starts are confined to ``cpus`` cores (``on_cores``)."""
    shutil.rmtree(store, ignore_errors=True)
    options = RayOptions(num_cpus=cpus)
    with ExitStack() as stack:
        stack.enter_context(on_cores(cpus))
        t0 = time.perf_counter()
        if name == "ray":
            stack.enter_context(ray_session(options))
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = run_preprocess(
            items,
            store,
            clip_settings,
            detector,
            workers=cpus,
            progress=False,
            dispatch=ray_dispatch(options) if name == "ray" else None,
        )
        seconds = time.perf_counter() - t0
    if summary.processed != len(items):
        raise SystemExit(f"{name}: processed {summary.processed} of {len(items)} files")
    return seconds, startup


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=60, help="the first N ffpp_mini videos (by path)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local runner and of Ray (overhead)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clips", type=int, default=16, help="clips per video")
    parser.add_argument("--max-frames", type=int, default=0, help="only each video's first N frames (0: all)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    items = sorted(scan("ffpp_mini", str(MINI)), key=lambda it: it.key)[: args.videos]
    clip_settings = settings(args.clips, args.max_frames)
    detector = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "face_pipeline" / "default.yaml").detector)
    configs = [("local", args.cpus), ("ray", args.cpus)]
    configs += [("ray", c) for c in (1, 2) if ("ray", c) not in configs]
    print(
        f"{len(items)} ffpp_mini videos, {args.clips} clips each, {args.rounds} round(s); configs: "
        + ", ".join(f"{n} {c} CPU" for n, c in configs)
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    startups: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        reference = None
        for r in range(args.rounds):
            for name, cpus in rotated(configs, r):
                store = Path(tmp) / f"{name}{cpus}"
                seconds, startup = one_run(name, cpus, items, clip_settings, detector, store)
                times[(name, cpus)].append(seconds)
                if name == "ray":
                    startups.append(startup)
                manifest = read_manifest(store)
                if reference is None:
                    reference = manifest
                    store_bytes = sum(p.stat().st_size for p in (store / "frames").rglob("*.jpg"))
                else:
                    pd.testing.assert_frame_equal(manifest, reference)
                print(
                    f"round {r + 1}: {name} {cpus} CPU {seconds:.1f} s ({len(items) / seconds:.3f} files/s)",
                    flush=True,
                )
    print(f"store: {store_bytes / len(items) / 1e6:.2f} MB per file ({store_bytes / 1e6:.1f} MB in all)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("every run gave the same manifest")
    print(
        f"starting a local Ray cluster (not in the times below): median {statistics.median(startups):.1f} s"
    )
    med = {c: statistics.median(t) for c, t in times.items()}
    for (name, cpus), t in times.items():
        print(
            f"{name:5s} {cpus} CPU: median {med[(name, cpus)]:.1f} s (min {min(t):.1f}, max {max(t):.1f}), "
            f"{len(items) / med[(name, cpus)]:.3f} files/s, {len(items) / med[(name, cpus)] / cpus:.3f} files/s per CPU"
        )
    overhead = med[("ray", args.cpus)] / med[("local", args.cpus)] - 1
    print(f"overhead of ray against local at {args.cpus} CPUs: {100 * overhead:+.1f}% (goal <= 15%)")
    print(f"ratio={med[('ray', 1)] / med[('ray', 2)]:.3f}")


if __name__ == "__main__":
    main()
