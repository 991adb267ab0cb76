"""What a study command prints at the end: trial counts, the best architecture, its scores, where to look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybridsearch.results._dashboard import dashboard_commands
from hybridsearch.results._summary import Metrics, Summary
from hybridsearch.tasks import test_key


def _scores(metrics: Metrics) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _how(s: Summary) -> str:
    return f"{s.cv_folds}-fold out of fold" if s.cv_folds > 1 else "validation split"


LABELS = {"minirocket": ("MiniRocket", "same folds"), "ets": ("AutoETS", "same windows")}


def reference_line(baselines: dict[str, Any]) -> str:
    """The reference's cross-validated score, printed before the search starts (its test score waits)."""
    return "\n".join(
        f"reference {LABELS[name][0]} ({LABELS[name][1]}): CV {_scores(scores['cv'])} ({scores['seconds']:.0f} s)"
        for name, scores in baselines.items()
    )


def _reference_lines(s: Summary) -> list[str]:
    """The reference baseline beside the search, and a plain word when it does better."""
    lines = []
    for name, scores in (s.baselines or {}).items():
        label, same = LABELS[name]
        lines.append(f"reference {label} ({same}): CV {_scores(scores['cv'])} | test {_scores(scores['test'])}")
        key = test_key(s.metric)
        cv = scores["cv"].get(key) if key else None
        if cv is not None and s.selection_score is not None:
            # Selection scores are in validation units of the same metric; rmse and mae are minimised.
            better = cv > s.selection_score if key == "accuracy" else cv < s.selection_score
            if better:
                lines.append(
                    f"  {label} scores better than the search on the {same} ({key} {cv:.4f} against "
                    f"{s.selection_score:.4f}): prefer it here, or search longer"
                )
    return lines


def printout(summary: Summary) -> str:
    """The final printout: best architecture, its scores, and how to look at the study."""
    s, t = summary, summary.trials
    lines = [f"\nstudy {s.study!r}: {t['complete']} complete, {t['pruned']} pruned, {t['fail']} failed"]
    lines += [f"  failed x{n}: {reason}" for reason, n in s.failures.items()]
    if s.topologies:
        lines.append(f"  {'topology':<18} {'trials':>6} {'pruned':>6} {'epochs':>7}  best {s.metric}")
        for name, row in s.topologies.items():
            best = "-" if row["best"] is None else f"{row['best']:.4f}"
            lines.append(f"  {name:<18} {row['trials']:>6} {row['pruned']:>6} {row['epochs']:>7}  {best}")
    if s.best_trial is None:
        lines.append("no trial completed yet: no best model")
    elif s.final_error:
        lines.append(
            f"best trial #{s.best_trial}: {s.best_params.get('topology')}, selection {s.metric} {s.best_value:.4f}"
        )
        lines.append(f"final model: not built: {s.final_error}")
    else:
        params = dict(s.best_params)
        topology = params.pop("topology")
        lines += [
            f"best trial #{s.best_trial}: {topology}",
            "  " + " ".join(f"{k}={_fmt(v)}" for k, v in params.items()),
            f"  selection {s.metric} {s.best_value:.4f} ({_how(s)}) | refit on train + validation "
            f"({s.refit_epochs} epochs): test {_scores(s.single_test_metrics)}",
        ]
        if s.pareto_front:
            others = [k for k in s.pareto_front[0] if k not in ("trial", s.metric, "topology")]
            lines.append(
                f"  Pareto front of {s.metric} and {', '.join(others)}: "
                f"trials {', '.join(str(p['trial']) for p in s.pareto_front)} (summary.json, report)"
            )
        if s.final == "ensemble":
            e = s.ensemble
            members = ", ".join(f"#{t} {w:.2f}" for t, w in zip(e["trials"], e["weights"], strict=True))
            what = f"{len(e['trials'])} trials weighted on out-of-fold predictions ({members})"
            if e.get("fit") == "bag":
                what = (
                    f"trial #{e['trials'][0]}'s" if len(e["trials"]) == 1 else what + ", each as"
                ) + f" {s.cv_folds} fold models averaged (bagged)"
            lines.append(
                f"final model: {what}: selection {s.metric} {s.selection_score:.4f} | test {_scores(s.test_metrics)}"
            )
        else:
            lines.append("final model: the best trial, refit")
        if s.optimism:
            lines.append(f"  optimism (selection - test): {s.optimism['metric']} {s.optimism['value']:+.4f}")
        if s.baseline:
            lines.append(f"  seasonal-naive baseline on the same test windows: {_scores(s.baseline)}")
        folder = str(Path(s.checkpoint).parent)
        lines.append(f"  load it: hybridsearch.load_best({folder!r})  (the best single model: ensemble=False)")
    lines += _reference_lines(s)
    if s.report:
        lines.append(f"report: {s.report}")
    lines.append("dashboards:")
    root = Path(s.checkpoint).parent.parent if s.checkpoint else "studies"
    lines += [f"  {c}" for c in dashboard_commands(s.storage, s.tracking_uri, root)]
    return "\n".join(lines)
