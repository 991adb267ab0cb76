"""Probes of the ConvLSTM (``conv_gated``) for why it trails the other hybrids on
PickupGestureWiimoteZ: out-of-fold (CV) scores of recipe.py's three fixed ConvLSTM designs, with
one change at a time to :class:`hybridsearch.models.topologies.ConvGated`. Test splits are not read.

    python benchmarks/convlstm_probes.py [--probes as-is mean-readout forget-bias-1]
                                         [--datasets PickupGestureWiimoteZ] [--out benchmarks/results]

- ``as-is``: the model as shipped (the last valid state, averaged over its positions, feeds the head);
- ``mean-readout``: the state averaged over the valid steps instead of the last one;
- ``forget-bias-1``: the forget gate's bias starts at 1 (Keras' ``unit_forget_bias``, the default
  of the Keras ConvLSTM that literature code uses; Jozefowicz et al. 2015);
- ``bidirectional``: a second ConvLSTM reads each series' windows backwards, as the other hybrids'
  ``bidirectional`` LSTMs do; the head reads both last states (so a gesture's start is not
  only what survived the whole forward pass).

A probe is a patch of the model for this process only; a change worth keeping goes into the
model and the search space. Rows are appended to ``<out>/convlstm-probes.jsonl`` and reused; the
table goes to ``<out>/convlstm-probes.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from hybridsearch.models import topologies
from hybridsearch.models.blocks import Head, time_mask

ROOT = Path(__file__).resolve().parents[1]


def mean_readout() -> None:
    def forward(self, x, lengths=None):
        seq, n_valid = self.steps(x, lengths)
        B, N = seq.shape[:2]
        for layer in self.layers:
            seq = layer(seq, n_valid)
        steps = seq.mean(dim=-1)  # (B, N, H)
        mask = torch.ones(B, N, dtype=torch.bool) if n_valid is None else time_mask(n_valid, N)
        mask = mask[:, :, None].to(steps.dtype)
        return self.head((steps * mask).sum(1) / mask.sum(1).clamp_min(1))

    topologies.ConvGated.forward = forward


def forget_bias_1() -> None:
    init = topologies.ConvLSTMLayer.__init__

    def patched(self, in_channels, hidden, kernel, norm=True):
        init(self, in_channels, hidden, kernel, norm)
        with torch.no_grad():  # gates are i, f, o, g; with the norm, its bias is the gates' bias
            (self.input_norm if norm else self.input_conv).bias[hidden : 2 * hidden].fill_(1.0)

    topologies.ConvLSTMLayer.__init__ = patched


def flip_valid(seq: torch.Tensor, n_valid: torch.Tensor | None) -> torch.Tensor:
    """Reverse (B, N, ...) along N within each series' valid steps (padding stays at the end)."""
    B, N = seq.shape[:2]
    if n_valid is None:
        return seq.flip(1)
    t = torch.arange(N, device=seq.device)[None, :]
    idx = torch.where(t < n_valid[:, None], n_valid[:, None] - 1 - t, t)  # (B, N)
    return seq.gather(1, idx.view(B, N, *([1] * (seq.dim() - 2))).expand_as(seq))


def bidirectional() -> None:
    init = topologies.ConvGated.__init__

    @functools.wraps(init)  # the search space reads the constructor's parameters
    def patched(self, in_channels, n_outputs, seq_len, **kw):
        init(self, in_channels, n_outputs, seq_len, **kw)
        layers, hidden = len(self.layers), self.layers[0].hidden
        kernel, norm = self.layers[0].input_conv.kernel_size[0], not isinstance(self.layers[0].input_norm, nn.Identity)
        sizes = [self.layers[0].input_conv.in_channels] + [2 * hidden] * layers
        make = topologies.ConvLSTMLayer
        self.layers = nn.ModuleList(make(sizes[i], hidden, kernel, norm) for i in range(layers))
        self.backward_layers = nn.ModuleList(make(sizes[i], hidden, kernel, norm) for i in range(layers))
        self.head = Head(
            2 * hidden,
            self.head.out_shape if len(self.head.out_shape) > 1 else self.head.out_shape[0],
            kw.get("dropout", 0.0),
        )

    def forward(self, x, lengths=None):
        seq, n_valid = self.steps(x, lengths)
        for fwd, bwd in zip(self.layers, self.backward_layers, strict=True):
            back = flip_valid(bwd(flip_valid(seq, n_valid), n_valid), n_valid)
            last_back = back[:, 0]  # the backward pass ends at each series' first window
            seq = torch.cat([fwd(seq, n_valid), back], dim=2)  # (B, N, 2H, P)
        H = seq.shape[2] // 2
        last = torch.cat([seq[:, -1, :H], last_back], dim=1)  # (B, 2H, P)
        return self.head(last.mean(dim=-1))

    topologies.ConvGated.__init__ = patched
    topologies.ConvGated.forward = forward


PROBES = {
    "as-is": lambda: None,
    "mean-readout": mean_readout,
    "forget-bias-1": forget_bias_1,
    "bidirectional": bidirectional,
}


def table(rows: list[dict]) -> str:
    lines = [
        "| probe | dataset | OOF accuracy, mean (per design) | OOF log loss, mean (per design) | epochs | commit |",
        "|---|---|---|---|---|---|",
    ]
    for probe in PROBES:
        for dataset in sorted({r["dataset"] for r in rows}):
            got = [r for r in rows if r["probe"] == probe and r["dataset"] == dataset]
            if not got:
                continue
            acc = " / ".join(f"{r['oof_accuracy']:.2f}" for r in got)
            loss = " / ".join(f"{r['oof_log_loss']:.2f}" for r in got)
            lines.append(
                f"| {probe} | {dataset} | {statistics.mean(r['oof_accuracy'] for r in got):.3f} ({acc}) "
                f"| {statistics.mean(r['oof_log_loss'] for r in got):.3f} ({loss}) "
                f"| {' / '.join(str(r['epochs']) for r in got)} | {got[0]['commit']} |"
            )
    return "\n".join(lines)


def main() -> None:
    import recipe  # benchmarks/recipe.py: the fixed designs and the study's own objective

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", nargs="+", choices=list(PROBES), default=list(PROBES))
    ap.add_argument("--datasets", nargs="+", default=["PickupGestureWiimoteZ"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    log = args.out / "convlstm-probes.jsonl"
    rows = [json.loads(x) for x in log.read_text().splitlines() if x] if log.exists() else []
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    todo = [(p, d) for p in args.probes for d in args.datasets]
    todo = [(p, d) for p, d in todo if not any(r["probe"] == p and r["dataset"] == d for r in rows)]
    if len(todo) > 1:  # a probe patches the model for the whole process
        for p, d in todo:
            cmd = [sys.executable, __file__, "--probes", p, "--datasets", d, "--out", str(args.out)]
            subprocess.run(cmd, check=True)
    elif todo:
        probe, dataset = todo[0]
        PROBES[probe]()
        measured = recipe.measure(dataset, recipe.CONVLSTM, 0)
        new = [{**r, "probe": probe, "commit": commit.stdout.strip()} for r in measured]
        with log.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in new)
    rows = [json.loads(x) for x in log.read_text().splitlines() if x] if log.exists() else []
    text = (
        "Out-of-fold accuracy and log loss (5 folds of the training split, seed 0; test not read) of\n"
        "recipe.py's three fixed ConvLSTM designs (windows of 16, 32 and 8 steps), one change at a time\n"
        "(benchmarks/convlstm_probes.py). On 50 series one series is 2 points.\n\n" + table(rows) + "\n"
    )
    (args.out / "convlstm-probes.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
