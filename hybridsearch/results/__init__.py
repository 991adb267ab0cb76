"""After the search: the final model and its test scores, ``summary.json``, the dashboards and the printout.

- :mod:`._summary`: :class:`Summary`, the typed record that ``summary.json`` holds;
- :mod:`._final`: :func:`summarize` builds the final model and scores it on test;
- :mod:`._dashboard`: the optuna-dashboard note and the commands that open the study;
- :mod:`._printout`: what the command prints at the end.
"""

from hybridsearch.results._dashboard import dashboard_commands, dashboard_note
from hybridsearch.results._final import reference_baselines, summarize
from hybridsearch.results._printout import printout, reference_line
from hybridsearch.results._summary import Summary

__all__ = [
    "Summary",
    "dashboard_commands",
    "dashboard_note",
    "printout",
    "reference_baselines",
    "reference_line",
    "summarize",
]
