"""A detector ready to give verdicts on files: the face pipeline in memory (``prepare``, CPU work
that worker processes can do) and one batched model pass over the clips of many files
(``score``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dfdetect.predict.inputs import InputItem, kind_of
from dfdetect.predict.model import DetectorRequest, ScoredDetector, load_scored_detector
from dfdetect.predict.prepared import PreparedFile, prepare_file
from dfdetect.predict.verdict import AGGREGATIONS, ConfidentRule, FileVerdict, decide, file_score
from dfdetect.preprocess.runner import DetectorSpec, build_detector
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.scoring.temperature import scaled_probs

# On the CPU a model call over a few frames keeps its activations in cache: MesoInception4 scores
# 80 frames at 240 px in 0.78 s in passes of 5-10 frames against 1.38 s in one pass (1 thread);
# timm 2.7x, xception 1.4x, meso4 1.5x faster at 8 frames than at 80 (docs/benchmarks.md, predict).
CPU_BATCH_FRAMES = 8


def clip_settings(cfg: DictConfig) -> ClipSettings:
    """The face pipeline's settings: ``sampling`` and ``face`` as in dfdetect/conf/preprocess.yaml."""
    values = {
        **OmegaConf.to_container(cfg.sampling, resolve=True),
        **OmegaConf.to_container(cfg.face, resolve=True),
    }
    return ClipSettings.from_mapping(values)


class Predictor:
    def __init__(
        self,
        scored: ScoredDetector,
        detector: DetectorSpec,
        settings: ClipSettings,
        aggregation: str = "mean",
        confident: Mapping[str, Any] | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        cpu_batch_frames: int | None = CPU_BATCH_FRAMES,
        max_pixels: int | None = None,
        max_bytes: int | None = None,
        image_size: int | None = None,
        max_faces: int = 1,
    ):
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"predict.aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        self.model = scored.module.eval().to(device)
        self.identity = scored.identity
        self.decision = scored.decision
        self.detector_spec = detector
        self.settings = settings
        self.aggregation = aggregation
        self.confident = ConfidentRule(**(confident or {}))
        self.batch_size = max(1, int(batch_size))
        self.device = torch.device(device)
        self.cpu_batch_frames = None if cpu_batch_frames is None else max(1, int(cpu_batch_frames))
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.image_size = image_size
        self.max_faces = max(1, int(max_faces))
        self._detector = None

    @classmethod
    def from_config(cls, cfg: DictConfig) -> Predictor:
        return predictor_from_config(cfg)

    @property
    def detector(self):
        if self._detector is None:
            self._detector = build_detector(self.detector_spec)
        return self._detector

    def prepare_options(self) -> dict:
        """What ``prepare_file`` needs besides the detector (sent once to each worker process)."""
        return {
            "settings": self.settings,
            "max_pixels": self.max_pixels,
            "max_bytes": self.max_bytes,
            "image_size": self.image_size,
            "max_faces": self.max_faces,
        }

    def prepare(self, path: str | Path | InputItem, kind: str | None = None) -> PreparedFile:
        item = path if isinstance(path, InputItem) else InputItem(str(path), kind or kind_of(path))
        return prepare_file(item, self.detector, **self.prepare_options())

    @property
    def small_passes(self) -> bool:
        """Whether model passes are sized for the CPU's cache (``cpu_batch_frames`` on the CPU)."""
        return self.device.type == "cpu" and self.cpu_batch_frames is not None

    def clips_per_pass(self, clip_length: int) -> int:
        """Clips per model call: ``batch_size``, and with small passes at most ``cpu_batch_frames``
        frames (at least one clip)."""
        if not self.small_passes:
            return self.batch_size
        return max(1, min(self.batch_size, self.cpu_batch_frames // max(1, clip_length)))

    @torch.inference_mode()
    def clip_probs(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """P(fake) of uint8 ``(T, H, W, 3)`` clips, batched by clip length, in input order."""
        out = np.empty(len(clips), dtype=np.float64)
        by_length: dict[int, list[int]] = {}
        for i, clip in enumerate(clips):
            by_length.setdefault(clip.shape[0], []).append(i)
        for length, indices in by_length.items():
            per_pass = self.clips_per_pass(length)
            for k in range(0, len(indices), per_pass):
                chunk = indices[k : k + per_pass]
                batch = torch.from_numpy(np.stack([clips[i] for i in chunk])).permute(0, 1, 4, 2, 3)
                logits = self.model(batch.contiguous().to(self.device))
                out[chunk] = torch.sigmoid(logits.float()).cpu().numpy()
        return out

    def score(self, prepared: Sequence[PreparedFile]) -> list[FileVerdict]:
        """Verdicts for prepared files, their clips scored in batched model passes: together on a
        GPU; on the CPU file by file, so that a file's scores do not depend on which files share
        its batch (a pass's size changes its results in the last float bits)."""
        t0 = time.perf_counter()
        groups = [[c.frames for c in p.clips] for p in prepared if p.scorable and p.clips]
        if not self.small_passes:
            groups = [[frames for group in groups for frames in group]]
        probs = np.concatenate([self.clip_probs(g) for g in groups]) if groups else np.empty(0)
        if len(probs) and self.decision.temperature != 1.0:
            probs = scaled_probs(probs, self.decision.temperature)
        seconds = (time.perf_counter() - t0) / max(1, len(probs))
        verdicts, k = [], 0
        for p in prepared:
            n = len(p.clips) if p.scorable else 0
            verdicts.append(self._verdict(p, probs[k : k + n], seconds * n))
            k += n
        return verdicts

    def _verdict(self, p: PreparedFile, probs: np.ndarray, score_seconds: float) -> FileVerdict:
        tracks: dict[int, dict] = {}
        for clip, prob in zip(p.clips if p.scorable else [], probs, strict=True):
            if not np.isfinite(prob):  # the detector abstained (ABNet: an identity it has no references of)
                continue
            track = tracks.setdefault(clip.track, {"track": clip.track, "p_fake": None, "clips": []})
            track["clips"].append(
                {
                    "start": clip.start,
                    "frame_indices": clip.frame_indices,
                    "boxes": clip.boxes,
                    "p_fake": float(prob),
                }
            )
        p_fake = file_score(list(tracks.values()), self.aggregation, self.confident) if tracks else None
        reason = p.reason or (
            "" if tracks else f"abstained: the detector gave none of {len(probs)} clips a score"
        )
        return FileVerdict(
            path=p.path,
            kind=p.kind,
            verdict=decide(p_fake, self.decision.threshold),
            p_fake=p_fake,
            threshold=self.decision.threshold,
            n_faces=len(tracks) if tracks else p.n_faces,
            n_clips=sum(len(t["clips"]) for t in tracks.values()),
            reason=reason,
            model=self.identity.tag,
            label=p.label,
            note=p.note,
            tracks=list(tracks.values()),
            timings={"prepare": round(p.seconds, 4), "score": round(score_seconds, 4)},
        )

    def predict_path(self, path: str | Path, kind: str | None = None) -> FileVerdict:
        return self.score([self.prepare(path, kind)])[0]

    def info(self) -> dict:
        import dfdetect

        return {
            "model": self.identity.as_dict() | {"tag": self.identity.tag},
            "threshold": self.decision.threshold,
            "threshold_source": self.decision.source,
            "temperature": self.decision.temperature,
            "aggregation": self.aggregation,
            "max_faces": self.max_faces,
            "face_pipeline": {k: v for k, v in vars(self.settings).items()},
            "versions": {"dfdetect": getattr(dfdetect, "__version__", "0"), "torch": torch.__version__},
        }


def predictor_from_config(cfg: DictConfig) -> Predictor:
    """The entry's predictor: ``cfg``: ckpt_path | model | ensemble, threshold, calibration (read
    once into a ``DetectorRequest``), detector, face, sampling and predict.* (dfdetect/conf/predict.yaml)."""
    options = cfg.predict
    return Predictor(
        scored=load_scored_detector(DetectorRequest.from_config(cfg)),
        detector=OmegaConf.to_container(cfg.detector, resolve=True),
        settings=clip_settings(cfg),
        aggregation=options.aggregation,
        confident=OmegaConf.to_container(options.confident, resolve=True)
        if options.get("confident")
        else None,
        batch_size=options.batch_size,
        device=options.device,
        cpu_batch_frames=options.get("cpu_batch_frames", CPU_BATCH_FRAMES),
        max_pixels=options.get("max_image_pixels"),
        max_bytes=options.get("max_bytes"),
        image_size=options.get("image_size"),
        max_faces=options.get("max_faces", 1),
    )
