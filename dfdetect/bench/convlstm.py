"""Our ConvLSTM2d against the textbook cell, inside CLRNet-lite (or CLRNet): one training step each.

Both nets get the same weights (the naive one loads the fast one's state dict) and the same input;
dropout is off so both compute the same function. The script first checks that the logits and every
parameter gradient agree (in float64 by default; ``--check float32`` compares the timed nets
themselves, relative to the net's largest gradient, which is what the full CLRNet needs), then
times forward + backward, alternating the two nets so that load from other processes hits both
alike. Our cell uses dfdetect's CPU kernels where they build (``DFDETECT_CPU_KERNELS=0``: torch
ops; the header says which ran). It prints a table (wall-clock and process CPU seconds) and, as its
last line, ``ratio=<naive median / ours median>`` of the wall-clock times.

python scripts/benchmark_convlstm.py [--batch 16] [--frames 5] [--size 128] [--threads 1]
python scripts/benchmark_convlstm.py --net clrnet --batch 1 --size 112 --check float32 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dfdetect.models.layers.convlstm import cpu_kernels
from dfdetect.models.layers.convlstm.layer import ConvLSTM2d, NaiveConvLSTM2d
from dfdetect.models.nets.clrnet import CLRNet, CLRNetLite
from dfdetect.utils.host_memory import retain_freed_host_memory
from dfdetect.utils.io import write_json

NETS = {"clrnet_lite": CLRNetLite, "clrnet": CLRNet}


def build_pair(net: str, size: int, channels_last: bool, **kwargs) -> tuple[CLRNet, CLRNet]:
    ours = NETS[net](input_size=size, dropout=0.0, **kwargs).train()
    with torch.device("meta"):  # the naive net's own initialisation would be thrown away
        naive = NETS[net](input_size=size, dropout=0.0, cell=NaiveConvLSTM2d, **kwargs)
    naive.load_state_dict(ours.state_dict(), assign=True)
    naive.train()
    if channels_last:
        for model in (ours, naive):
            model.to(memory_format=torch.channels_last)
            model.channels_last = True
    return ours, naive


def training_step(net: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    net.zero_grad(set_to_none=True)
    logits = net(clips)
    F.binary_cross_entropy_with_logits(logits, labels).backward()
    return logits.detach()


def gradients_as_naive(ours: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our gradients under the naive net's parameter names (ConvLSTM kernels concatenated)."""
    grads = {}
    for name, module in ours.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, ConvLSTM2d):
            grads[prefix + "weight"] = torch.cat([module.weight_ih.grad, module.weight_hh.grad], dim=1)
            grads[prefix + "bias"] = module.bias.grad
        else:
            for pname, p in module.named_parameters(recurse=False):
                grads[prefix + pname] = p.grad
    return grads


def check_agreement(ours, naive, clips, labels, precision: str, tolerance: float) -> float:
    """Largest difference over the logits and all gradients, absolute in float64, in float32
    relative to the largest gradient of the net; raises past ``tolerance``."""
    if precision == "float64":
        ours, naive = copy.deepcopy(ours).double(), copy.deepcopy(naive).double()
        clips, labels = clips.double(), labels.double()
    logits_ours = training_step(ours, clips, labels)
    logits_naive = training_step(naive, clips, labels)
    grads_naive = {name: p.grad for name, p in naive.named_parameters()}
    scale = 1.0
    if precision == "float32":
        scale = max(g.abs().max().item() for g in grads_naive.values())
    worst = (logits_ours - logits_naive).abs().max().item()
    if worst > tolerance * max(scale, logits_naive.abs().max().item()):
        raise AssertionError(f"logits differ: {logits_ours.tolist()} vs {logits_naive.tolist()}")
    for name, grad in gradients_as_naive(ours).items():
        difference = (grad - grads_naive[name]).abs().max().item() / scale
        if difference > tolerance:
            raise AssertionError(f"gradient of {name} differs by {difference:.3g}")
        worst = max(worst, difference)
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--net", choices=sorted(NETS), default="clrnet_lite")
    parser.add_argument("--filters", type=int, default=None, help="initial filters (default: the net's)")
    parser.add_argument(
        "--batch", type=int, default=16, help="clips per step (the data configs train with 16)"
    )
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--channels-last", action="store_true", help="run both nets in channels-last layout")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--check", choices=["float64", "float32"], default="float64")
    parser.add_argument(
        "--tolerance", type=float, default=None, help="default 1e-9 (float64), 1e-3 (float32)"
    )
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc returning large freed blocks to the OS (train.py retains them by default)",
    )
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    retained = False if args.system_malloc else retain_freed_host_memory()
    torch.manual_seed(0)
    kwargs = {} if args.filters is None else {"filters": args.filters}
    ours, naive = build_pair(args.net, args.size, args.channels_last, **kwargs)
    clips = torch.rand(args.batch, args.frames, 3, args.size, args.size)
    labels = (torch.arange(args.batch) % 2).float()
    tolerance = args.tolerance or (1e-9 if args.check == "float64" else 1e-3)
    worst = check_agreement(ours, naive, clips, labels, args.check, tolerance)

    nets = {"ours": ours, "naive": naive}
    wall: dict[str, list[float]] = {name: [] for name in nets}
    cpu: dict[str, list[float]] = {name: [] for name in nets}
    for repeat in tqdm(range(args.warmup + args.repeats), desc="forward+backward", unit="round"):
        for name, net in nets.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            training_step(net, clips, labels)
            if repeat >= args.warmup:
                wall[name].append(time.perf_counter() - start_wall)
                cpu[name].append(time.process_time() - start_cpu)

    median = {name: statistics.median(values) for name, values in wall.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    ratio = median["naive"] / median["ours"]
    layout = "channels-last" if args.channels_last else "NCHW"
    kernels_used = cpu_kernels.for_tensor(clips) is not None
    print(
        f"{args.net} ({sum(p.numel() for p in ours.parameters()):,} parameters), clips ({args.batch}, "
        f"{args.frames}, 3, {args.size}, {args.size}), {layout}, {torch.get_num_threads()} threads, "
        f"{args.repeats} repeats after {args.warmup} warm-up, host memory "
        f"{'retained' if retained else 'returned to the OS'}, gate arithmetic "
        f"{'in dfdetect CPU kernels' if kernels_used else 'in torch ops'}"
    )
    kind = "absolute, float64" if args.check == "float64" else "relative, float32"
    print(f"outputs and gradients agree: max difference {worst:.3g} ({kind})")
    print(f"{'cell':<8}{'median s':>10}{'min s':>10}{'max s':>10}{'median CPU s':>14}")
    for name, values in wall.items():
        print(
            f"{name:<8}{median[name]:>10.3f}{min(values):>10.3f}{max(values):>10.3f}{median_cpu[name]:>14.3f}"
        )
    print(f"CPU-time ratio {median_cpu['naive'] / median_cpu['ours']:.2f}")
    if args.json:
        write_json(
            args.json,
            {
                "args": vars(args),
                "wall": wall,
                "cpu": cpu,
                "max_diff": worst,
                "ratio": ratio,
                "cpu_kernels": kernels_used,
            },
        )
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
