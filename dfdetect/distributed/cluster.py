"""Joining or starting the Ray cluster a run works on, and the options of runner=ray
(dfdetect/conf/runner/ray.yaml)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

from dfdetect.utils.errors import UserError
from dfdetect.utils.optional import require

log = logging.getLogger(__name__)


def import_ray() -> ModuleType:
    return require("ray", "ray", "runner=ray")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    num_cpus: int | None = None
    cpus_per_task: float = 1
    max_retries: int = 3
    in_flight: int | None = None
    runtime_env: Mapping[str, Any] | None = None
    # predict: the detector in this many Ray actors (0: on the driver)
    actors: int = 0
    num_gpus_per_actor: float = 0
    num_cpus_per_actor: float = 1

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RayOptions:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"ray.{unknown[0]}: not an option of runner=ray (options: {sorted(known)})")
        return cls(**values)

    def window(self, ray: ModuleType) -> int:
        """Files in flight: ``in_flight``, else 2 per CPU of the cluster now."""
        if self.in_flight:
            return max(1, int(self.in_flight))
        cpus = ray.cluster_resources().get("CPU", 1)
        return max(1, int(2 * cpus / max(self.cpus_per_task, 1e-3)))


@contextmanager
def ray_session(options: RayOptions) -> Iterator[ModuleType]:
    """Ray, connected: to the cluster this process already joined, to ``options.address``, or to a
    local cluster (loopback only) that is stopped when the block ends."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    common: dict[str, Any] = {"runtime_env": dict(options.runtime_env) if options.runtime_env else None}
    if options.address:
        log.info("joining the Ray cluster at %s", options.address)
        ray.init(address=options.address, **common)
    else:
        ray.init(
            address="local",
            num_cpus=options.num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            **common,
        )
    try:
        yield ray
    finally:
        ray.shutdown()


def runner_options(cfg) -> RayOptions | None:
    """The composed config's runner: None for ``runner=local``, the Ray options for ``runner=ray``."""
    from omegaconf import OmegaConf

    name = cfg.get("runner") or "local"
    if name == "local":
        return None
    if name != "ray":
        raise UserError(f"runner={name}: not a runner (local, ray)")
    return RayOptions.from_mapping(OmegaConf.to_container(cfg.ray, resolve=True) if cfg.get("ray") else {})
