"""Score a checkpoint:  python evaluate.py ckpt_path=<checkpoint> data=<name> [split=test] (alias of ``dfdetect evaluate``)."""

import os
from pathlib import Path

os.environ.setdefault("DFDETECT_ROOT", str(Path(__file__).resolve().parent))

from dfdetect.cli import alias  # noqa: E402

if __name__ == "__main__":
    alias("evaluate")
