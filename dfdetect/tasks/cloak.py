"""Cloak a user's face images with Fawkes or LowKey (docs/puface.md):

    python scripts/cloak.py cloak=fawkes_high data=ffpp_mini_faces user=yt183
    python scripts/cloak.py cloak=lowkey images=<dir> out=<dir>

Writes one lossless PNG chip per image into ``out`` and ``cloak.json`` (settings, target); a
rerun skips the chips already written. Images without a face are listed and left out.
"""

import sys

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers
from dfdetect.utils.errors import one_line_errors

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="cloak.yaml")
def main(cfg: DictConfig) -> None:
    from dfdetect.puface.cloak.command import cloak_from_config

    with one_line_errors("cloak"):
        summary = cloak_from_config(cfg)
    for path in summary["no_face"]:
        print(f"cloak: no face found in {path}; left out", file=sys.stderr)
    target = f", target {summary['target']}" if summary["target"] else ""
    print(
        f"cloaked {summary['cloaked']} images ({summary['skipped']} already there){target} -> {summary['out']}"
    )


if __name__ == "__main__":
    main()
