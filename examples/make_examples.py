"""Writes the tiny example files of the README's "Your own data" section (the tests read them too).

python examples/make_examples.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).parent / "data"


def gestures(n: int = 48, steps: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-channel series of three classes (a sine, a ramp, a bump), of 24 to 32 steps."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, steps)
    shapes = {"wave": np.sin(6 * t), "ramp": 2 * t - 1, "bump": np.exp(-((t - 0.5) ** 2) / 0.02)}
    labels = np.array(list(shapes))[np.arange(n) % 3]
    X = np.stack([np.stack([shapes[k], -shapes[k]]) for k in labels]) + 0.2 * rng.standard_normal((n, 2, steps))
    lengths = rng.integers(24, steps + 1, n)
    for i, length in enumerate(lengths):
        X[i, :, length:] = 0.0
    return X.astype(np.float32), labels, lengths


def main() -> None:
    OUT.mkdir(exist_ok=True)
    X, y, lengths = gestures()
    np.savez(OUT / "gestures.npz", X=X, y=y, lengths=lengths)

    # Wide: a row per series, one channel; empty trailing cells make a series shorter.
    first = X[:, 0, :].astype(object)
    for i, length in enumerate(lengths):
        first[i, length:] = None
    wide = pd.DataFrame(first, columns=[f"t{j}" for j in range(X.shape[2])]).astype(float)
    wide.insert(0, "label", y)
    wide.to_csv(OUT / "wide.csv", index=False, float_format="%.5f")
    wide.to_parquet(OUT / "wide.parquet", index=False)

    # Long: a row per series and step, a column per channel.
    rows = [
        {"id": f"s{i}", "time": j, "x": X[i, 0, j], "y": X[i, 1, j], "label": y[i]}
        for i in range(len(X))
        for j in range(lengths[i])
    ]
    pd.DataFrame(rows).to_csv(OUT / "long.csv", index=False, float_format="%.5f")

    # UCR/UEA .ts, univariate and equal length.
    with (OUT / "gestures.ts").open("w") as f:
        f.write("@problemName gestures\n@timeStamps false\n@missing false\n@univariate true\n")
        f.write(f"@equalLength true\n@seriesLength 24\n@classLabel true {' '.join(sorted(set(y)))}\n@data\n")
        for i in range(len(X)):
            f.write(",".join(f"{v:.5f}" for v in X[i, 0, :24]) + f":{y[i]}\n")

    # Forecasting: a monthly series with trend and season, and a second channel.
    months = pd.date_range("2015-01-01", periods=96, freq="MS")
    k = np.arange(96)
    sales = 100 + 0.8 * k + 15 * np.sin(2 * np.pi * k / 12) + np.random.default_rng(1).normal(0, 3, 96)
    price = 10 + 0.05 * k
    pd.DataFrame({"time": months.strftime("%Y-%m"), "sales": sales.round(2), "price": price.round(2)}).to_csv(
        OUT / "sales.csv", index=False
    )


if __name__ == "__main__":
    main()
