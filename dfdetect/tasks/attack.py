"""Send fake and real face images to a celebrity-recognition API and cache every answer:

    python scripts/attack.py attack.provider={aws,azure,naver} attack.pairs_csv=<csv> [--dry-run]
    python scripts/attack.py attack.provider=aws data=<name> attack.max_cost=20

Resumable (a rerun sends only what the cache lacks), rate-limited, cost-guarded; keys only from
the environment. Then: python evaluate.py ... 'rescore.sources=[{cache: <cache>, provider: aws,
dataset: <name>}]'. See docs/attack_clients.md.
"""

import sys

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="attack.yaml")
def run(cfg: DictConfig) -> None:
    from dfdetect.run.attack import attack_from_config

    code = attack_from_config(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    # a literal --dry-run (not Hydra syntax) becomes the override attack.dry_run=true
    sys.argv = ["attack.dry_run=true" if arg == "--dry-run" else arg for arg in sys.argv]
    run()
