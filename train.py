"""Train a deepfake detector:  python train.py model=<name> data=<name> trainer=<name> (alias of ``dfdetect train``)."""

import os
from pathlib import Path

os.environ.setdefault("DFDETECT_ROOT", str(Path(__file__).resolve().parent))

from dfdetect.cli import alias  # noqa: E402

if __name__ == "__main__":
    alias("train")
