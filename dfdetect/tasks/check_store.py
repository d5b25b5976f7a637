"""Decode every frame of a clip store, in parallel, and list the bad ones (path and reason):

    python scripts/check_store.py <store> [--workers 2] [--report bad_frames.csv] [--no-progress]

A frame is bad when it is missing, empty, truncated (a JPEG without its end-of-image marker, a PNG
without its IEND chunk) or cannot be decoded: exactly what training refuses (data.on_bad_frame=fail)
or leaves out (data.on_bad_frame=skip). Exit status 0 when every frame decodes, 1 when some do not,
2 when there is no store. ``--report`` writes a CSV: path, reason, n_clips, clip_ids.
"""

from __future__ import annotations

import argparse
import sys

from dfdetect.data.manifest import ManifestError, StoreNotFoundError
from dfdetect.data.store_check import check_store


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("store", help="clip store folder (manifest.parquet + frames)")
    parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: CPUs)")
    parser.add_argument("--report", default=None, help="write the bad frames to this CSV file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args()
    try:
        result = check_store(args.store, workers=args.workers, progress=not args.no_progress)
    except (StoreNotFoundError, ManifestError) as err:
        print(f"check_store: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(result.lines()), flush=True)
    if args.report:
        print(f"report: {result.write_report(args.report)}")
    return 1 if result.bad else 0


if __name__ == "__main__":
    sys.exit(main())
