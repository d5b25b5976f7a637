"""Verdicts on files:  python predict.py input=<video|image|folder|glob|csv> ckpt_path=<checkpoint> (alias of ``dfdetect predict``)."""

import os
from pathlib import Path

os.environ.setdefault("DFDETECT_ROOT", str(Path(__file__).resolve().parent))

from dfdetect.cli import alias  # noqa: E402

if __name__ == "__main__":
    alias("predict")
