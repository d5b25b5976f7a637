"""Train PuFace's purifier (docs/puface.md):

    python scripts/train_purifier.py experiment=puface [purifier=autoencoder] [ckpt_path=<ckpt>]

The defender's cloaks are made first (resumable); checkpoints go to paths.checkpoint_dir (the
best on val/loss and last.ckpt). Apply the result with scripts/purify.py.
"""



import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers
from dfdetect.utils.errors import one_line_errors

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="puface.yaml")
def main(cfg: DictConfig) -> None:
    from dfdetect.puface.purifier.train import train_purifier

    with one_line_errors("train_purifier"):
        out = train_purifier(cfg)
    losses = ", ".join(f"{k}={v:.5f}" for k, v in sorted(out["metrics"].items()))
    print(f"purifier trained on {out['pairs']} pairs: {losses}\nbest: {out['best']}\nlast: {out['last']}")


if __name__ == "__main__":
    main()
