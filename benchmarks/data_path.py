"""How much of a training step is data path and how much is the model, before a GPU is at hand.

    python benchmarks/data_path.py [--data GunPoint] [--epochs 50] [--device cpu] [--out benchmarks/results]

Times one epoch of the default study's first design (LSTM-FCN, ``parallel``, batch 16) on the
training split, three ways: the data path alone (batches indexed on the device, as trials use
them; and, for comparison, a ``DataLoader`` over a ``TensorDataset`` copying each batch to the
device); the model's compute alone (forward, backward and optimiser step over batches made in
advance); and the whole epoch through Lightning. The fastest of ``--repeats`` runs of
``--epochs`` epochs each is kept.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def default_design() -> dict:
    import yaml

    study = yaml.safe_load((ROOT / "conf" / "study" / "timeseries.yaml").read_text())
    return dict(study["study"]["enqueue"][0])


def best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="GunPoint")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    import lightning as L
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

    from hybridsearch.config import DataConfig
    from hybridsearch.data import prepare
    from hybridsearch.module import HybridModule
    from hybridsearch.objective import module_for, synchronize

    torch.set_num_threads(2)
    device = torch.device(args.device)
    data = prepare(DataConfig(name=args.data))
    params = default_design()
    batch_size = int(params["batch_size"])
    train = data.train

    def device_batches() -> None:
        for _ in range(args.epochs):
            for _batch in data.batches("train", batch_size, shuffle=True, device=device):
                pass
        synchronize(device)

    dataset = TensorDataset(torch.from_numpy(train.X), torch.from_numpy(train.lengths), torch.from_numpy(train.y))
    loader = DataLoader(dataset, sampler=BatchSampler(RandomSampler(dataset), batch_size, False), batch_size=None)

    def loader_batches() -> None:
        for _ in range(args.epochs):
            for x, lengths, y in loader:
                x, lengths, y = x.to(device), lengths.to(device), y.to(device)
        synchronize(device)

    def build() -> HybridModule:
        torch.manual_seed(0)
        return module_for(params, data, max_epochs=100).to(device)  # 100: HybridModule's default schedule

    module = build()
    optimizer = torch.optim.AdamW(module.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    made = list(data.batches("train", batch_size, shuffle=True, device=device))

    def compute() -> None:
        module.train()
        for _ in range(args.epochs):
            for x, lengths, y in made:
                optimizer.zero_grad(set_to_none=True)
                module._loss(module(x, lengths), y).backward()
                optimizer.step()
        synchronize(device)

    def lightning_epochs() -> None:
        trainer = L.Trainer(
            max_epochs=args.epochs,
            accelerator=device.type,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
        )
        trainer.fit(build(), data.batches("train", batch_size, shuffle=True, device=device))

    steps = len(data.batches("train", batch_size, shuffle=True))
    figures = {
        "data path, batches indexed on the device": best_of(args.repeats, device_batches),
        "data path, DataLoader + copy per batch": best_of(args.repeats, loader_batches),
        "model compute (forward, backward, step)": best_of(args.repeats, compute),
        "whole epoch through Lightning": best_of(args.repeats, lightning_epochs),
    }
    lines = [
        f"{args.data}, default design (parallel / LSTM-FCN), batch {batch_size}, {steps} steps an epoch, "
        f"{args.device}, 2 threads; ms per epoch, best of {args.repeats} runs of {args.epochs} epochs",
    ]
    for name, seconds in figures.items():
        lines.append(f"{name:<42}: {1000 * seconds / args.epochs:8.3f} ms")
    compute_ms = figures["model compute (forward, backward, step)"]
    data_ms = figures["data path, batches indexed on the device"]
    lines.append(f"{'data path share of (data path + compute)':<42}: {100 * data_ms / (data_ms + compute_ms):8.2f} %")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"data-path-{args.data}-{args.device.replace(':', '')}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
