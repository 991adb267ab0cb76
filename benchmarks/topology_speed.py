"""Forward+backward milliseconds per batch for each topology at comparable parameter counts.

    python benchmarks/topology_speed.py [--batch 32] [--channels 3] [--steps 150] [--params 50000]

Each topology's width (conv channels and LSTM hidden size) is scaled until its parameter count
is closest to --params, then one training step (forward, loss, backward) is timed on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hybridsearch.models import TOPOLOGIES
from hybridsearch.search_space import count_parameters


def config(topology: str, width: int, fold: int = 4) -> dict:
    """A mid-sized configuration of each topology, scaled by one width."""
    conv = {"conv_channels": [width, width], "conv_kernel": [5, 3]}
    return {
        "feature_extractor": {**conv, "patch_len": 16, "pool": "max", "pool_size": 2, "lstm_hidden": width},
        "parallel": {**conv, "lstm_hidden": width, "fusion": "concat"},
        "cascade": {**conv, "pool": "max", "pool_size": 2, "lstm_hidden": width},
        "conv_gated": {"patch_len": 16, "patch_fold": fold, "gate_kernel": 3, "lstm_hidden": width // 2 or 1},
        "lstm": {"lstm_hidden": width},
        "fcn": conv,
    }[topology]


def sized(topology: str, channels: int, steps: int, target: int, fold: int = 4) -> tuple[torch.nn.Module, dict]:
    best = None
    for width in range(4, 400, 2):
        kwargs = config(topology, width, fold)
        model = TOPOLOGIES[topology](channels, 4, steps, **kwargs)
        gap = abs(count_parameters(model) - target)
        if best is None or gap < best[0]:
            best = (gap, model, kwargs)
    return best[1], best[2]


def time_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> float:
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        if i >= 3:  # warm-up excluded
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--params", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.channels, args.steps)
    y = torch.randint(0, 4, (args.batch,))
    print(
        f"batch {args.batch} x {args.channels} channels x {args.steps} steps, ~{args.params} parameters, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'topology':<18} {'params':>8} {'ms/batch':>9}  config")
    results = {}
    for topology in TOPOLOGIES:
        model, kwargs = sized(topology, args.channels, args.steps, args.params)
        ms = time_step(model, x, y, args.repeats)
        results[topology] = ms
        print(f"{topology:<18} {count_parameters(model):>8} {ms:>9.2f}  {kwargs}")
    model, kwargs = sized("conv_gated", args.channels, args.steps, args.params, fold=1)
    unfolded = time_step(model, x, y, args.repeats)
    print(f"{'conv_gated, fold 1':<18} {count_parameters(model):>8} {unfolded:>9.2f}  {kwargs}")
    print(
        f"conv_gated / cascade: {results['conv_gated'] / results['cascade']:.2f}x "
        f"(without folding: {unfolded / results['cascade']:.2f}x)"
    )


if __name__ == "__main__":
    main()
