"""The deepfake gate as a service:  python serve.py model=<name> model.net.weights=<file> [serve.port=8000]
(or ckpt_path=<checkpoint>, or ensemble=<dd1|dd2|dd3>); docs/serving.md."""

import hydra
from omegaconf import DictConfig

from dfdetect.utils.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://dfdetect.conf", config_name="serve.yaml")
def main(cfg: DictConfig) -> None:
    from dfdetect.serve.server import serve
    from dfdetect.utils.errors import one_line_errors

    with one_line_errors("serve"):
        serve(cfg)


if __name__ == "__main__":
    main()
