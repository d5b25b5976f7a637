"""PuFace measured on LFW (issue #26; docs/puface.md), resumable per (attack, user):

python scripts/evaluate_puface_lfw.py [roles.n_users=24] ['run_attacks=[fawkes_high,lowkey]']
"""

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers
from dfdetect.utils.errors import one_line_errors

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="puface_lfw.yaml")
def main(cfg: DictConfig) -> None:
    from dfdetect.puface.evaluation.lfw_command import lfw_from_config

    with one_line_errors("evaluate_puface_lfw"):
        out = lfw_from_config(cfg)
    print(f"ASR % / normal accuracy %, mean [95 % CI] over {out['users']} users\n" + out["table"])
    print("perturbation of the evaluated cloaks\n" + out["perturbation"])
    print(f"results in {out['out']} ({out['seconds']} s)")


if __name__ == "__main__":
    main()
