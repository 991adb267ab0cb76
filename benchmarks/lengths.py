"""How much the lengths of unequal-length series say about their class, on a training split alone
(test is not read): why a model that masks padding is also given each series' length.

    python benchmarks/lengths.py [--data PickupGestureWiimoteZ] [--seeds 0 1 2]

Prints the leave-one-out accuracy of the nearest training series by log length alone, and
MiniRocket's 5-fold out-of-fold accuracy (stratified folds, one per seed) on the series as stored
(zero-padded, so its features see the length) against the series each stretched to one length by
linear interpolation (no length left to see).
"""

from __future__ import annotations

import argparse

import numpy as np

from hybridsearch.data.bundled import load_bundled


def stretched(X: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each series linearly interpolated from its true length to the padded length."""
    out = np.zeros_like(X)
    steps = X.shape[-1]
    for i, n in enumerate(lengths):
        at = np.linspace(0, n - 1, steps)
        for c in range(X.shape[1]):
            out[i, c] = np.interp(at, np.arange(n), X[i, c, :n])
    return out


def folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The fold of each series, each class dealt round-robin over the folds."""
    rng, fold, offset = np.random.default_rng(seed), np.empty(len(y), dtype=int), 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return fold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="PickupGestureWiimoteZ")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = ap.parse_args()
    from aeon.classification.convolution_based import MiniRocketClassifier

    s = load_bundled(args.data, "train")
    log = np.log(s.lengths)
    sizes = f"{len(s.y)} series, {len(np.unique(s.y))} classes"
    print(f"{args.data} (train): {sizes}, lengths {s.lengths.min()}-{s.lengths.max()}")
    distance = np.abs(log[:, None] - log[None, :]) + np.diag(np.full(len(log), np.inf))
    print(f"nearest series by log length, leave-one-out accuracy: {np.mean(s.y[distance.argmin(1)] == s.y):.3f}")
    inputs = {"zero-padded (as stored)": s.X, "stretched to one length": stretched(s.X, s.lengths)}
    for seed in args.seeds:
        fold = folds(s.y, 5, seed)
        for name, X in inputs.items():
            predicted = np.empty_like(s.y)
            for k in range(5):
                fit = MiniRocketClassifier(random_state=seed, n_jobs=1).fit(X[fold != k], s.y[fold != k])
                predicted[fold == k] = fit.predict(X[fold == k])
            print(f"seed {seed}: MiniRocket out-of-fold accuracy, {name}: {np.mean(predicted == s.y):.2f}")


if __name__ == "__main__":
    main()
