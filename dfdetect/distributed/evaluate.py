"""evaluate.py on Ray (runner=ray): a split's clips read and decoded in CPU tasks, one task per
batch of the local DataLoader (the same clips, the same ``data.on_bad_frame`` rule), scored by the
detector in Ray actors (``ray.actors``; 0: on the driver's CPU); the driver feeds the logits to the
module's own metrics, so predictions and metrics are those of the local test loop."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import IterableDataset, default_collate
from tqdm import tqdm

from dfdetect.data.frames import BadFrameError
from dfdetect.distributed.actors import on_actors
from dfdetect.distributed.cluster import RayOptions
from dfdetect.distributed.tasks import run_tasks, task_submitter
from dfdetect.models.lightning import DetectorModule
from dfdetect.utils.errors import UserError

log = logging.getLogger(__name__)

STAGE = "test"  # the module's stage whose metrics a scored split goes to, as in the local run


def _load_batch(dataset, indices: list[int]) -> dict:
    """The DataLoader's batch of these clips, with the clips left out for a bad frame."""
    batch = default_collate(dataset.__getitems__(indices))
    batch["skipped"] = dict(dataset.skipped.reasons)
    batch["size"] = len(indices)
    return batch


class ClipScorer:
    """The detector's logits for a batch, as the test loop computes them (eval mode, no autograd);
    the batch comes back with them, without its pixels."""

    def __init__(self, model: DetectorModule, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.device = torch.device(device)

    @classmethod
    def from_config(cls, config: dict) -> ClipScorer:
        from dfdetect.models.lightning.checkpoint import trust_targets
        from dfdetect.predict.model import DetectorRequest, scored_model

        cfg = OmegaConf.create(config)
        trust_targets(cfg.get("trusted_targets"))
        return cls(scored_model(DetectorRequest.from_config(cfg)), cfg.device)

    @torch.inference_mode()
    def score(self, batch: dict) -> dict:
        clips = batch.pop("clip").to(self.device)
        return {**batch, "logits": self.model(clips).cpu()}


def detector_config(cfg: DictConfig, options: RayOptions) -> dict:
    """What an actor needs to load the run's detector, as plain data."""
    if str(cfg.trainer.get("precision", "32-true")) not in ("32-true", "32"):
        log.warning(
            "runner=ray scores in float32: trainer.precision=%s is runner=local's", cfg.trainer.precision
        )
    keys = ("ckpt_path", "model", "ensemble", "trusted_targets")
    plain = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k in keys
        if (v := cfg.get(k)) is not None
    }
    return {**plain, "device": "cuda" if options.num_gpus_per_actor > 0 else "cpu"}


def check_scorable(model: DetectorModule) -> None:
    own = type(model)
    if (
        own._eval_step is not DetectorModule._eval_step
        or own.on_test_epoch_start is not DetectorModule.on_test_epoch_start
    ):
        raise UserError(
            f"runner=ray scores a clip by the detector's forward pass; {own.__name__} scores in its own test loop (use runner=local)"
        )


def ray_scorer(
    ray, model: DetectorModule, datamodule, options: RayOptions, config: dict
) -> Callable[[str], dict]:
    """``score(split)``: scores the split on the cluster ``ray`` is connected to, leaves its
    predictions in ``model.predictions["test"]`` and returns its metrics (``test/auc`` ...), as the
    local test loop does. ``config``: :func:`detector_config`."""
    check_scorable(model)

    def score(split: str) -> dict[str, float]:
        loader = datamodule.dataloader(split)
        dataset = loader.dataset
        if isinstance(dataset, IterableDataset):
            raise UserError(
                "runner=ray reads a clip store (data.format=store); a LitData stream is read by runner=local"
            )
        n, size = len(dataset), loader.batch_size
        chunks = [list(range(i, min(i + size, n))) for i in range(0, n, size)]

        def failed(chunk: list[int], error: BaseException):
            cause = getattr(error, "cause", None)
            if isinstance(cause, UserError):  # a bad frame under on_bad_frame=fail: the local message
                raise cause from None
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise UserError(
                f"runner=ray: clips {chunk[0]}-{chunk[-1]} of the {split} split could not be scored: {reason}"
            ) from None

        if options.actors > 0:
            submit = task_submitter(ray, _load_batch, dataset, options)
            jobs = ((chunk, (submit(chunk),)) for chunk in chunks)
            found = on_actors(
                ray, ClipScorer.from_config, config, "score", jobs, options, options.window(ray), failed
            )
            scored = (batch for _, batch in found)
        else:
            scorer = ClipScorer(model, "cpu")
            scored = map(scorer.score, run_tasks(ray, _load_batch, dataset, chunks, options, failed))
        with tqdm(total=n, desc=f"evaluate {split} (runner=ray)", unit="clip") as bar:
            for batch in scored:
                for index, (clip_id, reason) in batch["skipped"].items():
                    dataset.skipped.record(index, clip_id, BadFrameError(reason))
                model.update_eval_metrics(STAGE, batch, batch["logits"])
                bar.update(batch["size"])
        model.predictions[STAGE], values = model.eval_results(STAGE)
        return values

    return score
