"""``python -m dfdetect <task> ...`` = ``dfdetect <task> ...``."""

import sys

from dfdetect.cli import main

sys.exit(main())
