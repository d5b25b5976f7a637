"""The deepfake gate as a service:  python serve.py model=<name> model.net.weights=<file> (alias of ``dfdetect serve``)."""

import os
from pathlib import Path

os.environ.setdefault("DFDETECT_ROOT", str(Path(__file__).resolve().parent))

from dfdetect.cli import alias  # noqa: E402

if __name__ == "__main__":
    alias("serve")
