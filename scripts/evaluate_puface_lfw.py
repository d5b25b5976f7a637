"""scripts/evaluate_puface.py (alias of ``dfdetect puface lfw``)."""

import os
from pathlib import Path

os.environ.setdefault("DFDETECT_ROOT", str(Path(__file__).resolve().parents[1]))

from dfdetect.cli import alias  # noqa: E402

if __name__ == "__main__":
    alias("puface lfw")
