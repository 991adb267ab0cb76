"""A study's report: a self-contained HTML page and PNG images, attached to MLflow and the dashboard.

    python -m hybridsearch.report studies/<name> [-o studies/<name>/report]

Optimisation history; parameter importances; validation score by topology (which hybrid wins
here?); score against parameter count; and the final model's confusion matrix (classification)
or forecasts beside the truth and the seasonal-naive baseline (forecasting).
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hybridsearch.config import data_config
from hybridsearch.data import prepare
from hybridsearch.errors import DataError, command_line
from hybridsearch.layout import StudyLayout
from hybridsearch.module import load_best
from hybridsearch.ranking import primary
from hybridsearch.results import Summary

if TYPE_CHECKING:
    from hybridsearch.session import Session

COLOURS = {
    "feature_extractor": "#4c72b0",
    "parallel": "#dd8452",
    "cascade": "#55a868",
    "conv_gated": "#c44e52",
    "lstm": "#8172b3",
    "fcn": "#937860",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def history(trials: list, metric: str, maximize: bool, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    for topology in sorted({t.params.get("topology") for t in done}):
        mine = [t for t in done if t.params.get("topology") == topology]
        ax.scatter(
            [t.number for t in mine], [primary(t) for t in mine], s=14, label=topology, color=COLOURS.get(topology)
        )
    best, line = None, []
    for t in done:
        if best is None or (primary(t) > best if maximize else primary(t) < best):
            best = primary(t)
        line.append((t.number, best))
    if line:
        ax.step(*zip(*line, strict=True), where="post", color="black", lw=1, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("optimisation history")
    ax.legend(fontsize=7)
    return _save(fig, path)


def pareto(study: optuna.Study, names: list[str], path: Path) -> Path:
    """The first two objectives of every complete trial, the Pareto front drawn through them."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    ax.scatter([t.values[1] for t in done], [t.values[0] for t in done], s=12, color="#bbbbbb", label="trials")
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    ax.plot([t.values[1] for t in front], [t.values[0] for t in front], "o-", color="#c44e52", label="Pareto front")
    if names[1] == "n_params":
        ax.set_xscale("log")
    ax.set_xlabel(names[1])
    ax.set_ylabel(names[0])
    ax.set_title("Pareto front")
    ax.legend(fontsize=7)
    return _save(fig, path)


def importances(study: optuna.Study, path: Path) -> Path | None:
    plt = _pyplot()
    try:
        with warnings.catch_warnings():  # "few trials in a regime" is expected of a small study
            warnings.simplefilter("ignore")
            values = optuna.importance.get_param_importances(study, target=primary)
    except (RuntimeError, ValueError):  # too few trials, or no parameter shared by them
        return None
    if not values:
        return None
    names = list(values)[:15][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(names) + 1.2))
    ax.barh(names, [values[n] for n in names], color="#4c72b0")
    ax.set_xlabel("importance")
    ax.set_title("parameter importances")
    return _save(fig, path)


def by_topology(trials: list, metric: str, path: Path) -> Path:
    plt = _pyplot()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    topologies = sorted({t.params.get("topology") for t in done})
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    groups = [[primary(t) for t in done if t.params.get("topology") == name] for name in topologies]
    if groups:
        ax.boxplot(groups, showfliers=False)
        ax.set_xticks(range(1, len(topologies) + 1), topologies)
    for i, values in enumerate(groups, start=1):
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(values))
        ax.scatter(i + jitter, values, s=10, color=COLOURS.get(topologies[i - 1]), zorder=3)
    pruned = {
        name: sum(t.params.get("topology") == name for t in trials if t.state == TrialState.PRUNED)
        for name in topologies
    }
    ax.set_xlabel("topology (pruned trials: " + ", ".join(f"{k} {v}" for k, v in pruned.items()) + ")")
    ax.set_ylabel(metric)
    ax.set_title("validation score by topology")
    return _save(fig, path)


def by_size(trials: list, metric: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    done = [t for t in trials if t.state == TrialState.COMPLETE and "n_params" in t.user_attrs]
    for topology in sorted({t.params.get("topology") for t in done}):
        mine = [t for t in done if t.params.get("topology") == topology]
        ax.scatter(
            [t.user_attrs["n_params"] for t in mine],
            [primary(t) for t in mine],
            s=14,
            label=topology,
            color=COLOURS.get(topology),
        )
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric)
    ax.set_title("score against model size")
    ax.legend(fontsize=7)
    return _save(fig, path)


def confusion(classes: list, truth: np.ndarray, predicted: np.ndarray, path: Path) -> Path:
    plt = _pyplot()
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t], index[p]] += 1
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * len(classes), 1.0 + 0.5 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                matrix[i, j],
                ha="center",
                va="center",
                fontsize=8,
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
            )
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=45)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test confusion matrix (accuracy {np.mean(truth == predicted):.3f})")
    return _save(fig, path)


def forecasts(truth: np.ndarray, predicted: np.ndarray, naive: np.ndarray, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    horizon = truth.shape[-1]
    starts = range(0, len(truth), horizon)  # non-overlapping test windows, first target channel
    for k, i in enumerate(starts):
        x = np.arange(i, i + horizon)
        ax.plot(x, truth[i, 0], color="black", lw=1.2, label="truth" if k == 0 else None)
        ax.plot(x, predicted[i, 0], color="#dd8452", label="best model" if k == 0 else None)
        ax.plot(x, naive[i, 0], color="#999999", ls="--", label="seasonal naive" if k == 0 else None)
    ax.set_xlabel("test step")
    ax.set_title("forecasts on the test part")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def write_report(study_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` and its PNG images for the study in ``study_dir``; return the HTML path."""
    layout = StudyLayout.at(study_dir)
    if not layout.summary.exists() or not layout.config.exists():
        raise DataError(f"{layout.folder}: not a study folder (no summary.json and config.yaml)")
    summary = Summary.load(layout.summary)
    cfg = OmegaConf.load(layout.config)
    out = Path(out) if out else layout.report
    out.mkdir(parents=True, exist_ok=True)
    study = optuna.load_study(study_name=summary.study, storage=summary.storage)
    trials = study.get_trials(deepcopy=False)
    metric, maximize = summary.metric, summary.direction == "maximize"
    images = [
        history(trials, metric, maximize, out / "history.png"),
        importances(study, out / "importances.png"),
        by_topology(trials, metric, out / "topologies.png"),
        by_size(trials, metric, out / "size.png"),
    ]
    if len(study.directions) > 1:
        images.append(pareto(study, study.metric_names or [metric, "objective 2"], out / "pareto.png"))
    if summary.best_params and summary.final:  # a final model was built
        data = prepare(data_config(cfg.data), seed=cfg.study.seed or 0).for_trial(summary.best_params)
        model = load_best(layout.folder)
        predicted = model.predict(data.test.X, data.test.lengths)
        if data.task.classifies:
            truth = np.asarray(data.classes, dtype=object)[data.test.y].astype(predicted.dtype)
            images.append(confusion(data.classes, truth, predicted, out / "confusion.png"))
        elif data.forecast is not None:
            naive = data.forecast.seasonal_naive(data.seq_len)
            images.append(forecasts(data.test.y, predicted, naive, out / "forecasts.png"))
    page = out / "report.html"
    page.write_text(_html(summary, [i for i in images if i is not None]))
    return page


def attach_report(session: Session) -> Path:
    """Write the study's report; attach its images to the MLflow parent run and the dashboard."""
    layout = session.layout
    page = write_report(layout.folder)
    if session.tracker.parent_run_id:
        session.tracker.log_folder(session.tracker.parent_run_id, page.parent, "report")
    layout.dashboard_artifacts.mkdir(parents=True, exist_ok=True)
    store = optuna.artifacts.FileSystemArtifactStore(str(layout.dashboard_artifacts))
    for image in sorted(page.parent.glob("*.png")):
        optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=str(image), study_or_trial=session.study, mimetype="image/png"
        )
    return page


def _html(summary: Summary, images: list[Path]) -> str:
    def cell(value: Any) -> str:
        return html.escape(f"{value:.4g}" if isinstance(value, float) else str(value))

    rows = [
        ("study", summary.study),
        ("data", summary.data),
        ("metric", summary.metric),
        ("best trial", summary.best_trial),
        ("best trial's selection score (out of fold)", summary.best_value),
        ("final model", summary.final),
        ("final model's selection score", summary.selection_score),
        ("final model's test scores", json.dumps(summary.test_metrics)),
        ("optimism (selection - test)", json.dumps(summary.optimism)),
        ("ensemble", json.dumps({k: v for k, v in (summary.ensemble or {}).items() if k in ("trials", "weights")})),
        ("reference baselines", json.dumps(summary.baselines)),
        ("trials", json.dumps(summary.trials)),
    ]
    params = "".join(f"<tr><td>{cell(k)}</td><td>{cell(v)}</td></tr>" for k, v in (summary.best_params or {}).items())
    figures = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{p.stem}</figcaption></figure>"
        for p in images
    )
    table = "".join(f"<tr><th>{cell(k)}</th><td>{cell(v)}</td></tr>" for k, v in rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hybridsearch: {html.escape(summary.study)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:left}}
figure{{display:inline-block;margin:8px}}img{{max-width:460px}}</style></head>
<body><h1>Study {html.escape(summary.study)}</h1><table>{table}</table>
<h2>Best architecture</h2><table>{params}</table><h2>Plots</h2>{figures}
<script>/* for automated checks: how many plots the browser decoded */
addEventListener("load", () => {{ document.body.dataset.imagesLoaded =
  [...document.images].filter(i => i.complete && i.naturalWidth > 0).length; }});</script>
</body></html>
"""


@command_line
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hybridsearch.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study_dir", help="a study folder, studies/<name>")
    parser.add_argument("-o", "--out", help="folder for report.html and the images (default: <study_dir>/report)")
    args = parser.parse_args(argv)
    print(write_report(args.study_dir, args.out))


if __name__ == "__main__":
    main()
