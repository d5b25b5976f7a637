"""Turn a dataset on disk into a clip store of MTCNN-aligned 240x240 face clips:

    python scripts/preprocess.py data=<name> [data.raw_dir=<raw data>] [data.store=<store>]

then ``python train.py data=<name> [data.store=<store>]``. Resumable: a rerun (also after a
kill) skips finished files. Exits non-zero when no file gave a clip, and on an error the user can
mend (a missing raw folder, settings that differ from the existing store's), reported as one line
(``HYDRA_FULL_ERROR=1`` shows the traceback). See docs/preprocessing.md.
"""

import sys

import hydra
from omegaconf import DictConfig

from dfdetect.run.preprocess import preprocess_from_config
from dfdetect.utils.config import register_resolvers
from dfdetect.utils.errors import one_line_errors

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="preprocess.yaml")
def main(cfg: DictConfig) -> None:
    with one_line_errors("preprocess"):
        summary = preprocess_from_config(cfg)
    print("\n".join(summary.lines()), flush=True)
    if summary.ok == 0:
        print("preprocess: no source file gave a clip; see status.parquet for the reasons", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
