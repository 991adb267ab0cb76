"""What a study command prints at the end: trial counts, the best architecture, its scores, where to look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybridsearch.results._dashboard import dashboard_commands
from hybridsearch.results._summary import Metrics, Summary


def _scores(metrics: Metrics) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def printout(summary: Summary) -> str:
    """The final printout: best architecture, its scores, and how to look at the study."""
    s, t = summary, summary.trials
    lines = [f"\nstudy {s.study!r}: {t['complete']} complete, {t['pruned']} pruned, {t['fail']} failed"]
    lines += [f"  failed x{n}: {reason}" for reason, n in s.failures.items()]
    if s.best_trial is None:
        lines.append("no trial completed yet: no best model")
    else:
        params = dict(s.best_params)
        topology = params.pop("topology")
        single = s.single_test_metrics or s.test_metrics
        lines += [
            f"best trial #{s.best_trial}: {topology}",
            "  " + " ".join(f"{k}={_fmt(v)}" for k, v in params.items()),
            f"  validation {s.metric} {s.best_value:.4f} | test {_scores(single)}",
        ]
        if s.refit:
            lines[-1] += f" (refit on train + validation, {s.refit_epochs} epochs)"
            lines.append(f"  the search-time model itself: test {_scores(s.search_test_metrics)}")
        if s.pareto_front:
            others = [k for k in s.pareto_front[0] if k not in ("trial", s.metric, "topology")]
            lines.append(
                f"  Pareto front of {s.metric} and {', '.join(others)}: "
                f"trials {', '.join(str(p['trial']) for p in s.pareto_front)} (summary.json, report)"
            )
        if s.baseline:
            lines.append(f"  seasonal-naive baseline on the same test windows: {_scores(s.baseline)}")
        if s.final == "ensemble":
            lines.append(
                f"final model: the top {len(s.ensemble['trials'])} trials averaged: test {_scores(s.test_metrics)}"
            )
        else:
            lines.append("final model: the best trial's")
        folder = str(Path(s.checkpoint).parent)
        lines.append(f"  load it: hybridsearch.load_best({folder!r})  (the best single model: ensemble=False)")
    if s.report:
        lines.append(f"report: {s.report}")
    lines.append("dashboards:")
    root = Path(s.checkpoint).parent.parent if s.checkpoint else "studies"
    lines += [f"  {c}" for c in dashboard_commands(s.storage, s.tracking_uri, root)]
    return "\n".join(lines)
