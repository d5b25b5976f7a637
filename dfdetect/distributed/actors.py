"""A model held in Ray actors: ``ray.actors`` of them, each with ``ray.num_gpus_per_actor`` GPUs
and ``ray.num_cpus_per_actor`` CPUs, built once per actor; jobs dealt to them round-robin, a
bounded number in flight, results handed back in completion order."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dfdetect.distributed.cluster import RayOptions


class _Holder:
    """A Ray actor holding ``build(config)``, built in the driver's working directory (so that
    relative paths in ``config`` mean what they mean to the driver)."""

    def __init__(self, build: Callable[[dict], Any], config: dict, cwd: str):
        if os.getcwd() != cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        self.held = build(config)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.held, method)(*args)


def on_actors(
    ray,
    build: Callable[[dict], Any],
    config: dict,
    method: str,
    jobs: Iterable[tuple[Any, tuple]],
    options: RayOptions,
    in_flight: int | None = None,
    on_error: Callable[[Any, BaseException], Any] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """``(key, held.method(*args))`` for each ``(key, args)`` of ``jobs``, in completion order.
    ``args`` may hold ObjectRefs of tasks still running: Ray hands their results to the actor
    without passing them through the driver. ``in_flight`` jobs at a time (at least two per
    actor); a job that fails gives ``on_error(key, error)`` as its result, or raises without it."""
    actor_class = ray.remote(_Holder).options(
        num_gpus=options.num_gpus_per_actor, num_cpus=options.num_cpus_per_actor, max_restarts=1
    )
    actors = [actor_class.remote(build, config, os.getcwd()) for _ in range(max(1, options.actors))]
    limit = max(in_flight or 0, 2 * len(actors))
    pending: dict[Any, Any] = {}
    jobs = iter(jobs)
    turn = 0
    while True:
        while len(pending) < limit and (job := next(jobs, None)) is not None:
            key, args = job
            pending[actors[turn % len(actors)].call.remote(method, *args)] = key
            turn += 1
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            key = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - the caller's rule decides
                if on_error is None:
                    raise
                result = on_error(key, e)
            yield key, result
