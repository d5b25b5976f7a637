"""Face verification with dlib's face-recognition ResNet (ported to PyTorch) on real faces.

python scripts/face_verify.py --videos ../shared/data/ffpp_c40_mini/original --frames 8
python scripts/face_verify.py --store data/ffpp --frames 8

Faces: evenly spaced frames of each video (identity from the file name: ``actors/08`` for
``actors/08__kitchen_pan.mp4``, ``youtube/183`` for ``youtube/183.mp4``) or the real clips of a clip
store (its ``identity`` column); MTCNN landmarks, dlib's 150x150 chips, 128-d descriptors. Pairs:
different identities = different person; same identity = same person when at least --min-gap
seconds apart or from two videos. Prints ROC AUC, EER and accuracy at dlib's distance 0.6 as a
Markdown table (all pairs, and same-person pairs across videos only); --json writes them.
Details: docs/face_recognition.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from dfdetect.models.nets.dlib_face import dlib_resnet
from dfdetect.preprocess.mtcnn_detector import MTCNNDetector
from dfdetect.run.face_verify import faces_from_store, faces_from_videos, format_results, list_videos, verify


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", type=Path, help="folder of real videos (searched recursively)")
    source.add_argument("--store", type=Path, help="clip store whose real clips are used")
    parser.add_argument("--frames", type=int, default=8, help="faces per video (default 8)")
    parser.add_argument("--min-gap", type=float, default=2.0, help="seconds between same-video faces")
    parser.add_argument("--weights", default="installed", help="dlib .dat path (default: installed)")
    parser.add_argument("--min-face", type=float, default=40, help="MTCNN smallest face, pixels")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the metrics here")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        net = dlib_resnet(args.weights).eval()
        detector = MTCNNDetector(min_face_size=args.min_face)
        if args.videos is not None:
            videos = list_videos(args.videos)
            if not videos:
                raise ValueError(f"{args.videos}: no videos")
            samples = faces_from_videos(videos, detector, args.frames)
        else:
            samples = faces_from_store(args.store, detector, args.frames)
        results = verify(samples, net, args.min_gap)
    except (ValueError, OSError, ImportError) as e:  # bad input, unreadable file, weights not installed
        parser.exit(2, f"face_verify: error: {e}\n")
    print(format_results(results, len(samples), len({s.identity for s in samples})))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
