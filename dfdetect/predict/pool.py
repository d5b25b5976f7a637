"""The face pipeline of many files in worker processes (each with its own detector), a bounded
number of files in flight so that memory stays flat however large the input; results come back in
completion order. A file whose worker dies gets ``error: ...`` and the others go on."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dfdetect.predict.inputs import InputItem
from dfdetect.predict.prepared import PreparedFile, prepare_file
from dfdetect.preprocess.runner import DetectorSpec, build_detector, pool_context

_STATE: dict[str, Any] = {}


def _init_worker(spec: DetectorSpec, options: dict, threads: int) -> None:
    import cv2

    cv2.setNumThreads(max(1, threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, threads))
    _STATE.update(detector=build_detector(spec), options=options)


def _prepare(item: InputItem) -> PreparedFile:
    return prepare_file(item, _STATE["detector"], **_STATE["options"])


def _died(item: InputItem, error: BaseException) -> PreparedFile:
    return PreparedFile(item.path, item.kind, item.label, reason=f"error: {type(error).__name__}: {error}")


def prepare_in_workers(
    items: Iterable[InputItem], spec: DetectorSpec, options: dict, workers: int, threads: int = 1
) -> Iterator[PreparedFile]:
    pending = list(items)[::-1]
    in_flight: dict[Future, InputItem] = {}
    limit = 2 * workers

    def start_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=pool_context(spec),
            initializer=_init_worker,
            initargs=(spec, options, threads),
        )

    pool = start_pool()
    try:
        while pending or in_flight:
            while pending and len(in_flight) < limit:
                item = pending.pop()
                in_flight[pool.submit(_prepare, item)] = item
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                item = in_flight.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool as e:
                    broken = True
                    yield _died(item, e)
                except Exception as e:  # noqa: BLE001 - one file must not stop the run
                    yield _died(item, e)
            if broken:  # the other files in flight were lost with the pool: do them again
                pending.extend(in_flight.values())
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = start_pool()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def prepare_stream(
    predictor, items: Iterable[InputItem], workers: int, threads: int = 1
) -> Iterator[PreparedFile]:
    """``workers=0``: in this process, in input order."""
    if workers <= 0:
        for item in items:
            yield predictor.prepare(item)
        return
    yield from prepare_in_workers(
        items, predictor.detector_spec, predictor.prepare_options(), workers, threads
    )
