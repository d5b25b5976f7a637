"""PuFace's protection evaluation in one command (docs/puface.md):

    python scripts/evaluate_puface.py ['users=[yt183,actor01]'] ['models=[linear,nn]']

Cloaks each user's training chips (resumable), trains the FR models on raw and defended training
sets and writes results.csv, table.md (ASR / normal accuracy per attack x model x defense),
sweep.csv, purifier_sweep.csv, grid_<attack>.png and purifier_strip.png into the run directory.
"""

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers
from dfdetect.utils.errors import one_line_errors

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="puface_eval.yaml")
def main(cfg: DictConfig) -> None:
    from dfdetect.puface.evaluation.eval_command import evaluate_from_config

    with one_line_errors("evaluate_puface"):
        out = evaluate_from_config(cfg)
    print("ASR % / normal accuracy % (mean over users)\n" + out["table"])
    if "sweep" in out:
        print("attacker's amplification sweep (linear probe)\n" + out["sweep"])
    if "purifier_sweep" in out:
        print("purifiers trained per k vs the real cloaks (linear probe)\n" + out["purifier_sweep"])
    print(f"results in {out['out']} ({out['seconds']} s)")


if __name__ == "__main__":
    main()
