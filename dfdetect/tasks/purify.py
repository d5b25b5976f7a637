"""Apply a trained PuFace purifier to a folder of face chips (docs/puface.md):

    python scripts/purify.py --ckpt <ckpt> --images <dir> --out <dir>
    python scripts/purify.py --ckpt <ckpt> --store <store> --out <dir>

``--images``: every image below the folder, resized to 150x150 (dlib's chip size; ``--size``),
written as PNG under the same relative path. ``--store``: the chips of an identity dataset made
from that clip store (its real clips; ``data/faces/...`` chips are cut first where missing), written
as ``<out>/<identity>/<chip>.png`` -- a folder that ``data=faces_folder`` reads with
``data.chipper=null``. Resumable: images already written are skipped. The checkpoint is loaded
safely (weights only, allowlisted config).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True, help="a purifier checkpoint (python train.py experiment=puface)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="a folder of face chips")
    src.add_argument("--store", help="a clip store (its real clips' chips)")
    ap.add_argument("--chips-dir", help="where the store's chips are kept (default: <store>_chips)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    from dfdetect.puface.cloak.runner import pick_device
    from dfdetect.puface.purifier.apply import purify_folder
    from dfdetect.puface.purifier.load import load_purifier
    from dfdetect.utils.errors import one_line_errors

    with one_line_errors("purify"):
        purifier = load_purifier(args.ckpt)
        device = pick_device(args.device)
        if args.images:
            out = purify_folder(purifier, args.images, args.out, args.batch, device, args.size)
        else:
            from dfdetect.puface.data.identity_chips import MTCNNChipper
            from dfdetect.puface.data.identity_datamodule import IdentityDataModule

            chips_dir = Path(args.chips_dir or f"{args.store.rstrip('/')}_chips")
            faces = IdentityDataModule(args.store, str(chips_dir), source="store", chipper=MTCNNChipper())
            faces.prepare()
            out = purify_folder(purifier, chips_dir, args.out, args.batch, device, args.size)
    print(
        f"purified {out['purified']} images ({out['skipped']} already there) -> {out['out']}", file=sys.stdout
    )


if __name__ == "__main__":
    main()
