"""predict.py on Ray: each file's face pipeline (decode, detect, crop in memory) is one CPU task
running the local runner's ``prepare_file``; the prepared clips stream back to the driver, which
scores them with the same predictor and writes the same outputs as a local run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dfdetect.distributed.cluster import RayOptions, ray_session
from dfdetect.distributed.tasks import run_tasks
from dfdetect.predict import pool
from dfdetect.predict.inputs import InputItem
from dfdetect.predict.prepared import PreparedFile

_INIT: dict[str, Any] = {}


def _prepare_task(shared: tuple, item: InputItem) -> PreparedFile:
    if _INIT.get("shared") != shared:  # a worker process serves many files (and runs)
        pool._init_worker(*shared)
        _INIT["shared"] = shared
    return pool._prepare(item)


def prepare_on_ray(
    predictor, items: Iterable[InputItem], options: RayOptions, threads: int = 1
) -> Iterator[PreparedFile]:
    """The prepared files of ``items`` in completion order, as ``pool.prepare_stream`` gives them; a
    file whose worker keeps dying gets ``unknown`` with an ``error: ...`` reason."""
    shared = (predictor.detector_spec, predictor.prepare_options(), threads)
    with ray_session(options) as ray:
        yield from run_tasks(ray, _prepare_task, shared, list(items), options, pool._died)
