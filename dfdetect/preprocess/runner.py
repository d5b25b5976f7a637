"""Run the face pipeline over every source file of a dataset into a clip store: skips what is
finished, spreads files over worker processes, shows progress, rebuilds the tables, summarises."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dfdetect.data.manifest import MANIFEST_NAME, write_manifest
from dfdetect.preprocess.adapters.base import SourceItem
from dfdetect.preprocess.media import MAX_IMAGE_PIXELS
from dfdetect.preprocess.pipeline import FAILED, OK, SKIPPED, process_item
from dfdetect.preprocess.settings import ClipSettings, fingerprint
from dfdetect.preprocess.store import ClipStoreWriter
from dfdetect.preprocess.tables import build_tables
from dfdetect.utils.io import atomic_path, write_json

log = logging.getLogger(__name__)

STATUS_NAME = "status.parquet"
SUMMARY_NAME = "summary.json"
# A detector spec: a Hydra config with _target_ (instantiated in each worker) or a picklable factory.
DetectorSpec = Mapping[str, Any] | Callable[[], Any]
# Another place to run the files (dfdetect/distributed, runner=ray): called with the files to do, their
# signatures, the workers' init arguments and ``done``, which it calls once per file with ``work_file``'s result.
Dispatch = Callable[[Sequence[SourceItem], dict[str, dict], tuple, Callable[[dict], None]], None]


@dataclass
class RunSummary:
    store: str
    files: int
    ok: int
    skipped: int
    failed: int
    already_done: int
    processed: int
    clips: int
    frames: int
    frames_this_run: int
    seconds: float
    frames_per_second: float
    face_rate: float
    problems: list[dict] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"preprocess: {self.files} source files -> {self.store}",
            f"  ok {self.ok}  skipped {self.skipped}  failed {self.failed}"
            f"  (this run processed {self.processed}, {self.already_done} were already done)",
            f"  clips {self.clips}, frames {self.frames}; this run {self.frames_this_run} frames in "
            f"{self.seconds:.1f} s = {self.frames_per_second:.1f} frames/s",
            f"  face found in {100 * self.face_rate:.1f}% of sampled frames",
        ]
        for p in self.problems[:20]:
            out.append(f"  {p['status']:8s} {p['source']}: {p['reason']}")
        if len(self.problems) > 20:
            out.append(f"  ... {len(self.problems) - 20} more in {STATUS_NAME}")
        return out


def file_signature(path: str) -> dict:
    try:
        st = os.stat(path)
    except OSError:
        return {"missing": True}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def build_detector(spec: DetectorSpec):
    if callable(spec):
        return spec()
    import hydra

    return hydra.utils.instantiate(dict(spec))


_STATE: dict[str, Any] = {}


def pool_context(spec: DetectorSpec):
    """Workers fork from a server that has imported this module and the detector's (torch, for
    MTCNN) once, instead of each importing them again."""
    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    ctx = get_context("forkserver")
    target = spec.get("_target_", "") if isinstance(spec, Mapping) else ""
    ctx.set_forkserver_preload(
        ["dfdetect.preprocess.runner", *([target.rsplit(".", 1)[0]] if "." in target else [])]
    )
    return ctx


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    try:
        return "\tZ" not in status.read_text().split("State:", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return True


def _watch_run(run_pid: int) -> None:
    """A worker whose run was killed exits instead of working on (its parent may be the fork server,
    which itself lives as long as any worker does)."""
    while _alive(run_pid):
        time.sleep(0.5)
    os._exit(3)


def _init_worker(
    spec: DetectorSpec,
    settings: ClipSettings,
    store_root: str,
    threads: int,
    max_pixels: int | None,
    run_pid: int | None,
):
    import cv2

    if run_pid is not None:
        threading.Thread(target=_watch_run, args=(run_pid,), daemon=True).start()
    _STATE.update(
        detector=build_detector(spec),
        settings=settings,
        store=ClipStoreWriter(store_root),
        max_pixels=max_pixels,
    )
    cv2.setNumThreads(max(1, threads))
    if "torch" in sys.modules:  # only detectors that need torch import it
        sys.modules["torch"].set_num_threads(max(1, threads))


def init_worker_once(init_args: tuple) -> None:
    """Set this process up as a worker for ``init_args`` unless it already is one (processes that
    a cluster reuses across files and runs)."""
    if _STATE.get("init_args") != init_args:
        _init_worker(*init_args, None)
        _STATE["init_args"] = init_args


def work_file(item: SourceItem, signature: dict) -> dict:
    """One source file through the pipeline into the store (the worker's per-file job)."""
    return _work(item, signature)


def record_worker_died(store_root: str, item: SourceItem, signature: dict) -> dict:
    """Record ``item`` as failed because its worker process died (again); returns ``done``'s result."""
    store = ClipStoreWriter(store_root)
    store.commit(item.key, store.workspace(), _died_record(item, signature))
    return {"key": item.key, "status": FAILED, "frames": 0}


def _work(item: SourceItem, signature: dict) -> dict:
    store: ClipStoreWriter = _STATE["store"]
    workspace = store.workspace()
    result = process_item(
        Path(item.path),
        item.kind,
        _STATE["detector"],
        _STATE["settings"],
        workspace,
        store.rel_frames_dir(item.key),
        _STATE["max_pixels"],
    )
    record = {
        "key": item.key,
        "source": item.path,
        "signature": signature,
        "status": result.status,
        "reason": result.reason,
        "stats": result.stats,
        "clips": [asdict(c) for c in result.clips],
        "finished_at": time.time(),
    }
    store.commit(item.key, workspace, record)
    return {"key": item.key, "status": result.status, "frames": sum(len(c.paths) for c in result.clips)}


def _pool(workers: int, init_args: tuple) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=pool_context(init_args[0]),
        initializer=_init_worker,
        initargs=(*init_args, os.getpid()),
    )


def _died_record(item: SourceItem, signature: dict) -> dict:
    return {
        "key": item.key,
        "source": item.path,
        "signature": signature,
        "status": FAILED,
        "reason": f"{item.path}: the worker process died while processing it (crash or out of memory)",
        "stats": {},
        "clips": [],
        "finished_at": time.time(),
    }


def _run_pooled(todo, signatures, init_args, workers, done) -> None:
    """Run ``todo`` over ``workers`` processes. When a worker dies (a decoder crash, the kernel's
    out-of-memory killer), the files that may have been in its hands are retried one at a time in
    a pool of their own, the one that kills it again is recorded as failed, and the rest go on."""
    remaining = list(todo)
    while remaining:
        finished: set[str] = set()
        try:
            with _pool(min(workers, len(remaining)), init_args) as pool:
                futures = {pool.submit(_work, item, signatures[item.key]): item for item in remaining}
                for future in as_completed(futures):
                    done(future.result())
                    finished.add(futures[future].key)
            return
        except BrokenProcessPool:
            remaining = [it for it in remaining if it.key not in finished]
            log.warning("a worker process died; isolating the files it may have been processing")
        # in the workers' hands or queued for them when the pool broke: among the first
        # 2 * workers + 1 unfinished files, in submission order
        suspects, remaining = remaining[: 2 * workers + 1], remaining[2 * workers + 1 :]
        for item in suspects:
            try:
                with _pool(1, init_args) as pool:
                    done(pool.submit(_work, item, signatures[item.key]).result())
            except BrokenProcessPool:
                done(record_worker_died(init_args[2], item, signatures[item.key]))


def _run_items(
    todo: Sequence[SourceItem],
    signatures: dict[str, dict],
    init_args: tuple,
    workers: int,
    progress: bool,
    dispatch: Dispatch | None = None,
) -> list[dict]:
    """``dispatch`` runs the files elsewhere (a cluster); else ``workers=0`` works in this process
    (debugging, tests), otherwise in worker processes."""
    results: list[dict] = []
    bar = tqdm(total=len(todo), desc="preprocess", unit="file", disable=not progress, file=sys.stderr)
    counts: Counter = Counter()

    def done(res: dict) -> None:
        results.append(res)
        counts[res["status"]] += 1
        bar.set_postfix(ok=counts[OK], skipped=counts[SKIPPED], failed=counts[FAILED], refresh=False)
        bar.update()

    try:
        if dispatch is not None:
            dispatch(todo, signatures, init_args, done)
        elif workers <= 0:
            _init_worker(*init_args, None)
            for item in todo:
                done(_work(item, signatures[item.key]))
        else:
            _run_pooled(todo, signatures, init_args, workers, done)
    finally:
        bar.close()
    return results


def run_preprocess(
    items: Sequence[SourceItem],
    store_dir: str | os.PathLike,
    settings: ClipSettings,
    detector: DetectorSpec,
    workers: int = 2,
    threads_per_worker: int = 1,
    retry_failed: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    max_image_pixels: int | None = MAX_IMAGE_PIXELS,
    dispatch: Dispatch | None = None,
) -> RunSummary:
    """``max_image_pixels``: stills and video frames over this many pixels are skipped unread
    (None: no cap); files skipped so by an earlier run are redone when they now fit. ``dispatch``:
    run the files there instead of in ``workers`` local processes (runner=ray)."""
    t0 = time.perf_counter()
    store = ClipStoreWriter(store_dir)
    detector_desc = {"factory": repr(detector)} if callable(detector) else dict(detector)
    store.open(
        fingerprint(settings, detector_desc),
        {"clips": asdict(settings), "detector": detector_desc},
        overwrite,
    )
    signatures = {it.key: file_signature(it.path) for it in items}
    todo = [
        it for it in items if not store.is_done(it.key, signatures[it.key], retry_failed, max_image_pixels)
    ]
    log.info("%d source files, %d already done, %d to process", len(items), len(items) - len(todo), len(todo))
    init_args = (detector, settings, str(store.root), threads_per_worker, max_image_pixels)
    results = _run_items(todo, signatures, init_args, workers, progress, dispatch) if todo else []

    manifest, status = build_tables(items, store)
    if len(manifest):
        write_manifest(manifest, store.root)
    else:
        (store.root / MANIFEST_NAME).unlink(missing_ok=True)
    with atomic_path(store.root / STATUS_NAME) as tmp:
        status.to_parquet(tmp, index=False)
    seconds = time.perf_counter() - t0
    frames_run = sum(r["frames"] for r in results)
    sampled = int(status["frames_sampled"].sum())
    problems = status[(status["status"] != OK) | (status["reason"] != "")]
    summary = RunSummary(
        store=str(store.root),
        files=len(items),
        ok=int((status["status"] == OK).sum()),
        skipped=int((status["status"] == SKIPPED).sum()),
        failed=int((status["status"] == FAILED).sum()),
        already_done=len(items) - len(todo),
        processed=len(results),
        clips=len(manifest),
        frames=int(manifest["paths"].map(len).sum()) if len(manifest) else 0,
        frames_this_run=frames_run,
        seconds=round(seconds, 2),
        frames_per_second=round(frames_run / seconds, 2) if seconds > 0 else 0.0,
        face_rate=round(int(status["frames_with_face"].sum()) / sampled, 4) if sampled else 0.0,
        problems=problems[["source", "status", "reason"]].to_dict("records"),
    )
    write_json(store.root / SUMMARY_NAME, asdict(summary))
    return summary
