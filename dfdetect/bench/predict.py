"""Videos per second of predict.py against a DFDC-winner-style pipeline, same process, same videos,
same deepfake detector:

    python scripts/benchmark_predict.py [--videos 6] [--max-side 640] [--weights <MesoInception .h5>]
        [--threads 1] [--baseline-threads <cores>]

baseline (as the DFDC winners' predict_folder.py): 32 evenly spaced frames decoded one by one
(grab through the video, retrieve the wanted ones), facenet-pytorch's MTCNN on each frame at half
resolution (one call per frame), every face kept, each face crop scored by the detector.
ours: predict.py's predictor (16 clips of 5 frames, the MTCNN cascade on two keyframes per clip
with the tracked-face floor, after the first clip searched only near the face of the clip before,
decoding in a thread while the detector runs, crops in memory, one batched model pass per few
videos), with its face pipeline in this process (``--workers`` > 0: in worker processes; the videos
are timed one by one, so the overlap of several files in flight is not counted).
decode bound: decoding ours' sampled frames alone (no detection, no model).
Each pipeline runs at its own best torch thread count on this machine: the baseline on every core
(torch's default; 1 thread is slower); ours' face pipeline on one (predict.py's threads_per_worker;
the decoding thread takes the other core, and 2 torch threads were slower on 2 cores) and its model
pass on every core (``--score-threads``; predict.py scores in the main process at torch's default),
in passes of predict.cpu_batch_frames frames. The model is built as ``model=mesoinception4`` builds
it (channels_last, the config's default), for both pipelines.
The three alternate video by video (in a rotating order) over ``--rounds`` rounds; figures are
medians over rounds with min-max. Last lines: ``bound_ratio=<ours time / decode bound time>`` and
``ratio=<ours videos/s / baseline videos/s>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from facenet_pytorch import MTCNN
from omegaconf import OmegaConf

from dfdetect.bench.face_options import add_refine_arguments, refine_line, refine_settings
from dfdetect.bench.rounds import rotated
from dfdetect.models.lightning.checkpoint import build_detector
from dfdetect.predict.inputs import InputItem
from dfdetect.predict.model import DEFAULT_THRESHOLD, Decision, ModelIdentity, ScoredDetector
from dfdetect.predict.pool import prepare_stream
from dfdetect.predict.predictor import CPU_BATCH_FRAMES, Predictor
from dfdetect.preprocess.adapters.base import walk_media
from dfdetect.preprocess.align import crop_side
from dfdetect.preprocess.media import iter_frames, probe_video
from dfdetect.preprocess.sampling import plan_clip_starts
from dfdetect.preprocess.settings import ClipSettings
from dfdetect.utils.paths import CONF_DIR, project_root, shared_dir

ROOT = project_root()
MINI = shared_dir() / "data" / "ffpp_c40_mini"
WEIGHTS = shared_dir() / "weights" / "mesonet" / "MesoInception_DF.h5"
DETECTOR = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "face_pipeline" / "default.yaml").detector)


def evenly_spaced(n_frames: int, count: int = 32) -> list[int]:
    return sorted(set(np.linspace(0, n_frames - 1, count, dtype=int).tolist()))


def baseline(paths: list[Path], mtcnn: MTCNN, module, size: int) -> float:
    """Seconds for the DFDC-winner-style pipeline over ``paths``."""
    t0 = time.perf_counter()
    for path in paths:
        cap = cv2.VideoCapture(str(path))
        wanted = set(evenly_spaced(int(cap.get(cv2.CAP_PROP_FRAME_COUNT))))
        frames, index = [], 0
        while index <= max(wanted) and cap.grab():
            if index in wanted:
                ok, frame = cap.retrieve()
                if ok:
                    frames.append(frame)
            index += 1
        cap.release()
        crops = []
        for frame in frames:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            half = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2))
            boxes, _ = mtcnn.detect(half)
            for box in [] if boxes is None else boxes * 2:
                side = crop_side(box, 0.3)
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                x0, y0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
                crop = rgb[y0 : int(y0 + side), x0 : int(x0 + side)]
                if crop.size:
                    crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
        if crops:
            with torch.inference_mode():
                batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)[:, None].contiguous()
                batch = batch.to(next(module.parameters()).device)
                for k in range(0, len(batch), 32):
                    module(batch[k : k + 32])
    return time.perf_counter() - t0


def decode_bound(paths: list[Path], settings: ClipSettings) -> float:
    t0 = time.perf_counter()
    for path in paths:
        n = probe_video(path).n_frames
        starts = plan_clip_starts(n, settings.clips_per_video, settings.frames_per_clip, settings.spread)
        wanted = {i for s in starts for i in range(s, s + settings.frames_per_clip)}
        for _ in iter_frames(path, wanted):
            pass
    return time.perf_counter() - t0


def ours(paths: list[Path], predictor: Predictor, workers: int, score_threads: int) -> float:
    """Seconds for predict.py's predictor over ``paths``: the face pipeline at the caller's torch
    threads, each model pass at ``score_threads``."""
    prepare_threads = torch.get_num_threads()

    def score(batch: list) -> None:
        torch.set_num_threads(score_threads)
        predictor.score(batch)
        torch.set_num_threads(prepare_threads)

    t0 = time.perf_counter()
    batch = []
    for prepared in prepare_stream(predictor, [InputItem(str(p), "video") for p in paths], workers):
        batch.append(prepared)
        if sum(len(p.clips) for p in batch) >= predictor.batch_size:
            score(batch)
            batch = []
    if batch:
        score(batch)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--workers", type=int, default=0, help="ours: face pipeline processes (0: here)")
    parser.add_argument("--weights", default=str(WEIGHTS) if WEIGHTS.is_file() else None)
    parser.add_argument("--max-side", type=int, default=None, help="ours: detector.max_side (default: null)")
    parser.add_argument("--keyframes", type=int, default=2, help="ours: face.keyframes (default: 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: the models and both pipelines' MTCNN")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the videos (medians)")
    parser.add_argument(
        "--track-region",
        type=float,
        default=ClipSettings.track_region,
        help="ours: face.track_region (0: off)",
    )
    add_refine_arguments(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ours: torch threads (predict.yaml's threads_per_worker: 1; decoding has its own thread)",
    )
    parser.add_argument(
        "--score-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="ours: torch threads of the model pass (default: every core, as predict.py's main process)",
    )
    parser.add_argument(
        "--cpu-batch-frames",
        type=int,
        default=CPU_BATCH_FRAMES,
        help="ours: predict.cpu_batch_frames (0: batch_size clips per model call)",
    )
    parser.add_argument(
        "--baseline-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="baseline: torch threads (default: every core, torch's own default)",
    )
    args = parser.parse_args()
    if not MINI.is_dir():
        sys.exit(f"benchmark_predict: error: {MINI} not found (the shared FF++ subset)")
    paths = list(walk_media(MINI))[:: max(1, 60 // args.videos)][: args.videos]
    module = build_detector(
        {
            "_target_": "dfdetect.models.lightning.DetectorModule",
            "net": {
                "_target_": "dfdetect.models.nets.create_net",
                "name": "mesoinception4",
                "input_size": 256,
                "weights": args.weights,
            },
            "channels_last": True,
        }
    ).eval()
    settings = ClipSettings(
        keyframes=args.keyframes,
        track_region=args.track_region,
        **refine_settings(args),
    )
    predictor = Predictor(
        ScoredDetector(
            module,
            ModelIdentity("mesoinception4", "0" * 64, "weights"),
            Decision(DEFAULT_THRESHOLD, 1.0, "default"),
        ),
        {**DETECTOR, "max_side": args.max_side, "device": args.device},
        settings,
        image_size=240,
        device=args.device,
        cpu_batch_frames=args.cpu_batch_frames or None,
    )
    mtcnn = MTCNN(keep_all=True, device=args.device)
    ours(paths[:1], predictor, 0, args.score_threads)  # warm-up: imports, first model call
    times: dict[str, list[float]] = {"baseline": [], "ours": [], "bound": []}
    threads = {"baseline": args.baseline_threads, "bound": args.threads, "ours": args.threads}
    runs = {
        "baseline": lambda p: baseline([p], mtcnn, module, 240),
        "bound": lambda p: decode_bound([p], settings),
        "ours": lambda p: ours([p], predictor, args.workers, args.score_threads),
    }
    load = [os.getloadavg()[0]]
    cpu = dict.fromkeys(times, 0.0)  # process CPU seconds, all rounds (all threads)
    for r in range(args.rounds):
        per_round = dict.fromkeys(times, 0.0)
        for k, path in enumerate(paths):  # alternating video by video, in a rotating order
            for name in rotated(list(runs), k):
                torch.set_num_threads(threads[name])
                c0 = time.process_time()
                per_round[name] += runs[name](path)
                cpu[name] += time.process_time() - c0
        for name, seconds in per_round.items():
            times[name].append(seconds)
        load.append(os.getloadavg()[0])
        print(
            f"round {r + 1}/{args.rounds}: baseline {per_round['baseline']:.2f} s, ours {per_round['ours']:.2f} s, "
            f"decode bound {per_round['bound']:.2f} s (load {load[-1]:.2f})",
            flush=True,
        )
    n = len(paths)
    med = {name: float(np.median(v)) for name, v in times.items()}

    def line(label: str, name: str) -> str:
        v = times[name]
        return (
            f"{label:<30}{med[name]:7.2f} s (min {min(v):.2f}, max {max(v):.2f})  "
            f"{n / med[name]:6.3f} videos/s"
        )

    print(
        f"videos: {n} from {MINI} x {args.rounds} rounds (torch threads: baseline {args.baseline_threads}, "
        f"ours {args.threads}, its model passes {args.score_threads}; "
        f"predict.cpu_batch_frames={args.cpu_batch_frames or None}; "
        f"workers {args.workers}, cores {os.cpu_count()}, load average {min(load):.2f}-{max(load):.2f}; "
        f"ours: detector.max_side={args.max_side}, face.keyframes={args.keyframes}, "
        f"face.track_region={settings.track_region}, face.redetect_every={settings.redetect_every}, "
        f"{refine_line(settings)})"
    )
    print("medians over rounds of the time for all videos:")
    print(line("baseline (DFDC-winner style):", "baseline"))
    print(line("ours (predict.py):", "ours"))
    print(line("decode bound:", "bound"))
    print(
        "CPU seconds per video (steadier than wall time on a loaded machine): "
        + ", ".join(f"{name} {cpu[name] / (n * args.rounds):.2f}" for name in ("baseline", "ours", "bound"))
    )
    ratios = [b / o for b, o in zip(times["baseline"], times["ours"], strict=True)]
    print(f"ratio per round: min {min(ratios):.2f}, max {max(ratios):.2f}")
    print(f"bound_ratio={med['ours'] / med['bound']:.2f}")
    print(f"ratio={med['baseline'] / med['ours']:.2f}")


if __name__ == "__main__":
    main()
