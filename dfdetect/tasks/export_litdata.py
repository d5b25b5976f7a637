"""Export a clip store to LitData chunks, to stream with ``data.format=litdata``.

Splits are assigned here with the datamodule's grouped split rule and fixed in the export; pass the
split settings and filters you train with. Finished splits are kept when the same export is rerun.

python scripts/export_litdata.py --store data/stores/ffpp_mini --out data/litdata/ffpp_mini
python train.py data=ffpp_mini +data.format=litdata +data.litdata_uri=data/litdata/ffpp_mini
"""

from __future__ import annotations

import argparse
import json

from dfdetect.data.litdata_export import EXPORT_META, export_litdata


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", required=True, help="clip store folder (manifest.parquet + JPEG crops)")
    parser.add_argument(
        "--out", required=True, help="local output folder; upload it as is to stream from S3/GCS"
    )
    parser.add_argument("--split-fractions", type=float, nargs=3, default=(0.7, 0.15, 0.15))
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--group-column", default="group")
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--chunk-bytes", default="64MB")
    parser.add_argument("--overwrite", action="store_true", help="replace an export made with other settings")
    args = parser.parse_args()
    out = export_litdata(
        args.store,
        args.out,
        split_fractions=args.split_fractions,
        split_seed=args.split_seed,
        group_column=args.group_column,
        datasets=args.datasets,
        methods=args.methods,
        chunk_bytes=args.chunk_bytes,
        overwrite=args.overwrite,
    )
    print(f"exported to {out}: clips per split {json.loads((out / EXPORT_META).read_text())['clips']}")


if __name__ == "__main__":
    main()
