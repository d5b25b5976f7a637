"""Training throughput (clips/s, forward + backward + optimizer step) of every detector on CPU,
in four variants: fp32, channels_last, bf16 autocast, bf16 autocast + channels_last.

Each net is built from its Hydra model config (``dfdetect/conf/model/<name>.yaml``, the ``channels_last`` key
overridden per variant) at one working resolution (``--size``, via ``data.net_input_size``); the
full CLRNet is left out (too big for CPU) in favour of CLRNet-lite. All variants of a net share the
baseline's weights and the same random uint8 clips; the loss is BCE on the module's logits.
Rounds alternate the variants so that load from other processes hits them alike; clips/s is the
median over the rounds. ``max|dlogit|`` is the largest difference of the variant's eval-mode
logits from fp32's on the same clips (how far the faster variant moves the numbers).

Last line: ``ratio=<geometric mean over nets of (best variant clips/s / fp32 clips/s)>``.

python scripts/benchmark_training.py [--nets meso4 xception] [--batch 2] [--size 128] [--steps 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from tqdm import tqdm

from dfdetect.models.nets import list_nets
from dfdetect.utils.config import register_resolvers
from dfdetect.utils.paths import CONF_DIR, project_root

ROOT = project_root()
TOO_BIG_FOR_CPU = {"clrnet"}
VARIANTS = {  # name: (channels_last, bf16 autocast)
    "fp32": (False, False),
    "channels_last": (True, False),
    "bf16": (False, True),
    "bf16+channels_last": (True, True),
}


def model_config(name: str, size: int):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train.yaml", overrides=[f"model={name}", f"data.net_input_size={size}"]).model


def train_step(module, optimizer, clips, labels, bf16: bool) -> None:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = module(clips)
    F.binary_cross_entropy_with_logits(logits.float(), labels).backward()
    optimizer.step()


def clips_per_second(module, optimizer, clips, labels, bf16: bool, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        train_step(module, optimizer, clips, labels, bf16)
    return steps * len(clips) / (time.perf_counter() - start)


@torch.no_grad()
def eval_logits(module, clips, bf16: bool) -> torch.Tensor:
    module.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = module(clips).float()
    module.train()
    return out


def benchmark_net(name: str, args) -> dict[str, dict]:
    generator = torch.Generator().manual_seed(args.seed)
    clips = torch.randint(0, 256, (args.batch, args.frames, 3, args.size, args.size), generator=generator)
    clips = clips.to(torch.uint8)
    labels = (torch.arange(args.batch) % 2).float()
    modules, reference, cfg = {}, None, model_config(name, args.size)
    for variant, (channels_last, bf16) in VARIANTS.items():
        cfg.channels_last = channels_last
        module = hydra.utils.instantiate(cfg)
        if reference is None:
            reference = {k: v.clone() for k, v in module.state_dict().items()}
        module.load_state_dict(reference)
        module.train()
        optimizer = module.configure_optimizers()["optimizer"]
        modules[variant] = (module, optimizer, bf16)
    base_logits = eval_logits(modules["fp32"][0], clips, False)
    results = {
        v: {"dlogit": (eval_logits(m, clips, bf16) - base_logits).abs().max().item(), "rates": []}
        for v, (m, _, bf16) in modules.items()
    }
    for variant, (module, optimizer, bf16) in list(modules.items()):  # warm-up: allocator, oneDNN kernels
        try:
            train_step(module, optimizer, clips, labels, bf16)
        except RuntimeError as err:  # e.g. a custom autograd function that autocast does not reach
            results[variant].update(clips_per_s=math.nan, error=str(err).splitlines()[0][:80])
            del modules[variant]
    for _ in range(args.rounds):
        for variant, (module, optimizer, bf16) in modules.items():
            results[variant]["rates"].append(
                clips_per_second(module, optimizer, clips, labels, bf16, args.steps)
            )
    for r in results.values():
        if "error" not in r:
            r["clips_per_s"] = statistics.median(r["rates"])
    return results


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    nets = [n for n in list_nets() if n not in TOO_BIG_FOR_CPU]
    parser.add_argument("--nets", nargs="*", default=nets, choices=list_nets())
    parser.add_argument("--batch", type=int, default=2, help="clips per step")
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=128, help="working resolution of every net")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    register_resolvers()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(
        f"batch {args.batch} x {args.frames} frames at {args.size}px, {args.steps} steps x {args.rounds} rounds, "
        f"{torch.get_num_threads()} threads; load average before: {load_average()}"
    )
    speedups = []
    header = f"{'net':<16}{'variant':<20}{'clips/s':>10}{'vs fp32':>9}{'max|dlogit|':>13}"
    rows = []
    for name in tqdm(args.nets, desc="nets"):
        results = benchmark_net(name, args)
        base = results["fp32"]["clips_per_s"]
        for variant, r in results.items():
            rows.append(
                f"{name:<16}{variant:<20}{r['clips_per_s']:>10.2f}{r['clips_per_s'] / base:>9.2f}{r['dlogit']:>13.2e}"
                + (f"  fails: {r['error']}" if "error" in r else "")
            )
        best = max((v for v in results if "error" not in results[v]), key=lambda v: results[v]["clips_per_s"])
        rows.append(f"{name:<16}{'-> fastest: ' + best:<40}")
        speedups.append(results[best]["clips_per_s"] / base)
    print(f"load average after: {load_average()}")
    print(header, *rows, sep="\n")
    print(f"ratio={math.exp(statistics.fmean(math.log(s) for s in speedups)):.3f}")


if __name__ == "__main__":
    main()
