"""Prediction: verdicts for the files an input names -> predictions.csv, predictions.jsonl,
metrics.json (counts; AUC, accuracy and confusion when the input is labelled)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from dfdetect.distributed.cluster import runner_options
from dfdetect.models.lightning.checkpoint import trust_targets
from dfdetect.predict import Predictor
from dfdetect.predict.inputs import InputItem, list_inputs
from dfdetect.predict.model import checked_threshold
from dfdetect.predict.outputs import ScoreCache, append_line, write_csv
from dfdetect.predict.plots import contact_sheet, plot_file, thumbnail
from dfdetect.predict.pool import prepare_stream
from dfdetect.predict.prepared import PreparedFile
from dfdetect.predict.report import labelled_metrics, lines, summary
from dfdetect.predict.verdict import FileVerdict
from dfdetect.run.common import announce_run_dir, output_dir, save_composed_config
from dfdetect.utils.errors import UserError
from dfdetect.utils.io import write_json

log = logging.getLogger(__name__)


def _batches(prepared: Iterator[PreparedFile], clips_per_batch: int) -> Iterator[list[PreparedFile]]:
    """Files grouped so that one model pass sees about ``clips_per_batch`` clips."""
    batch, clips = [], 0
    for p in prepared:
        batch.append(p)
        clips += len(p.clips)
        if clips >= clips_per_batch:
            yield batch
            batch, clips = [], 0
    if batch:
        yield batch


def cache_fingerprint(predictor: Predictor) -> dict:
    info = predictor.info()
    return {
        "model": info["model"]["sha256"],
        "temperature": info["temperature"],
        "aggregation": info["aggregation"],
        "confident": vars(predictor.confident),
        "face_pipeline": info["face_pipeline"],
        "detector": predictor.detector_spec,
        "image_size": predictor.image_size,
        "max_faces": predictor.max_faces,
        "limits": [predictor.max_pixels, predictor.max_bytes],
    }


def predict(cfg: DictConfig) -> tuple[dict, list[FileVerdict], Path]:
    run_dir = output_dir(cfg)
    save_composed_config(cfg, run_dir)
    trust_targets(cfg.get("trusted_targets"))
    if OmegaConf.is_missing(cfg, "input"):
        raise UserError(
            "input= is required: a video, image, folder, glob or CSV "
            "(python predict.py input=<path> ckpt_path=<checkpoint>; --help for more)"
        )
    if cfg.get("threshold") is not None:
        checked_threshold(cfg.threshold)  # before any work
    items = list_inputs(cfg.input)
    predictor = Predictor.from_config(cfg)
    options = cfg.predict
    log.info(
        "model %s; threshold %.4f (%s)",
        predictor.identity.tag,
        predictor.decision.threshold,
        predictor.decision.source,
    )
    cache = ScoreCache(options.get("cache"), cache_fingerprint(predictor))
    order = {item.path: n for n, item in enumerate(items)}
    verdicts: dict[str, FileVerdict] = {}
    todo: list[InputItem] = []
    for item in items:
        cached = cache.get(item.path, predictor.decision.threshold)
        if cached is None:
            todo.append(item)
        else:
            cached.label = item.label
            verdicts[item.path] = cached
    if verdicts:
        log.info(
            "%d of %d files already scored by this model (cache %s)", len(verdicts), len(items), cache.path
        )
    jsonl = run_dir / "predictions.jsonl"
    jsonl.unlink(missing_ok=True)
    for verdict in verdicts.values():
        append_line(jsonl, verdict.record())
    bar = tqdm(
        total=len(items), initial=len(verdicts), desc="predict", unit="file", disable=not options.progress
    )
    ray_options = runner_options(cfg)
    if ray_options is None:
        stream = prepare_stream(predictor, todo, int(options.workers), int(options.threads_per_worker))
    else:
        from dfdetect.distributed.predict import prepare_on_ray

        stream = prepare_on_ray(predictor, todo, ray_options, int(options.threads_per_worker))
    plot = bool(options.get("plot"))
    thumbs = {}
    batches = _batches(stream, int(options.batch_size))
    if ray_options is not None and ray_options.actors > 0:
        from dfdetect.distributed.predict import score_on_actors

        plain = {
            k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in cfg
            if k != "hydra"
        }
        scored = score_on_actors(batches, plain, ray_options)
    else:
        scored = ((batch, predictor.score(batch)) for batch in batches)
    for batch, batch_verdicts in scored:
        for prepared, verdict in zip(batch, batch_verdicts, strict=True):
            if plot and verdict.p_fake is not None:
                plot_file(run_dir / "plots", prepared, verdict)
                thumbs[verdict.path] = thumbnail(prepared)
            verdicts[verdict.path] = verdict
            append_line(jsonl, verdict.record())
            cache.add(verdict)
            bar.update(1)
            bar.set_postfix_str(f"{Path(verdict.path).name}: {verdict.verdict}")
    bar.close()
    ordered = sorted(verdicts.values(), key=lambda v: order[v.path])
    write_csv(run_dir / "predictions.csv", ordered)
    stats = summary(ordered)
    stats["hidden_skipped"] = getattr(items, "hidden", 0)
    stats["cached"] = sum(1 for v in ordered if v.cached)
    metrics = labelled_metrics(ordered)
    result = {
        **stats,
        "labelled": metrics,
        "model": predictor.info()["model"],
        "threshold": predictor.decision.threshold,
        "threshold_source": predictor.decision.source,
        "temperature": predictor.decision.temperature,
        "input": str(cfg.input),
    }
    write_json(run_dir / "metrics.json", result)
    if plot:
        contact_sheet(run_dir / "contact_sheet.png", ordered, thumbs, int(options.get("plot_top", 8)))
    for line in lines(stats, metrics):
        print(line, flush=True)
    announce_run_dir(run_dir)
    if stats["verdicts"].get("unknown", 0) == len(ordered):
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(stats["unknown_reasons"].items()))
        raise UserError(
            f"no file could be scored ({len(ordered)} unknown: {reasons}); see {run_dir / 'predictions.csv'}"
        )
    return result, ordered, run_dir
