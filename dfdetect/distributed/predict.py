"""predict.py on Ray: each file's face pipeline (decode, detect, crop in memory) is one CPU task
running the local runner's ``prepare_file``; the prepared clips stream back to the driver, which
scores them with the same predictor and writes the same outputs as a local run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dfdetect.distributed.actors import on_actors
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


def _failed(item: InputItem, error: BaseException) -> PreparedFile:
    """``unknown``/``error`` naming the cause: the file's own exception (a task error wraps it) or
    the worker's death."""
    return pool._died(item, getattr(error, "cause", None) or error)


def prepare_on_ray(
    predictor, items: Iterable[InputItem], options: RayOptions, threads: int = 1
) -> Iterator[PreparedFile]:
    """The prepared files of ``items`` in completion order, as ``pool.prepare_stream`` gives them; a
    file whose worker keeps dying gets ``unknown`` with an ``error: ...`` reason."""
    shared = (predictor.detector_spec, predictor.prepare_options(), threads)
    with ray_session(options) as ray:
        yield from run_tasks(ray, _prepare_task, shared, list(items), options, _failed)


def _predictor(config: dict):
    """The predictor the driver would use, built in an actor from the composed predict config (a
    plain dict: the same model, calibration and threshold)."""
    from omegaconf import OmegaConf

    from dfdetect.models.lightning.checkpoint import trust_targets
    from dfdetect.predict.predictor import predictor_from_config

    cfg = OmegaConf.create(config)
    trust_targets(cfg.get("trusted_targets"))
    return predictor_from_config(cfg)


def score_on_actors(
    batches: Iterable[list[PreparedFile]], config: dict, options: RayOptions
) -> Iterator[tuple[list[PreparedFile], list]]:
    """(batch, its verdicts) in completion order, scored by ``options.actors`` actors (on ``cuda``
    where ``options.num_gpus_per_actor`` gives them GPUs), two batches in flight per actor.
    ``config``: the composed predict config as a plain dict."""
    if options.num_gpus_per_actor > 0:
        config = {**config, "predict": {**config["predict"], "device": "cuda"}}
    with ray_session(options) as ray:
        jobs = ((batch, (batch,)) for batch in batches)
        yield from on_actors(ray, _predictor, config, "score", jobs, options)
