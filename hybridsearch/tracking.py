"""Everything MLflow: one experiment per study, a parent run per invocation, a nested run per trial."""

from __future__ import annotations

import contextlib
import io
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from hybridsearch import interrupt
from hybridsearch.errors import TrackingError, first_line

# MLflow run status for each final Optuna trial state.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "databricks"))


def _artifact_uri(location: str | None, tracking_uri: str) -> str | None:
    """Local paths become file URIs; a remote server chooses its own unless given a URI."""
    if not location:
        return None
    if "://" in location or location.startswith("mlflow-artifacts:"):
        return location
    return None if _is_remote(tracking_uri) else Path(location).resolve().as_uri()


def _check_server(uri: str, timeout_s: float = 10.0) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when the server is down."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read()
    except (OSError, ValueError) as err:
        raise TrackingError(f"tracking.uri: no MLflow server answers at {uri}: {err}") from None


class Tracker:
    """MLflow bookkeeping of one study invocation. A Ctrl-C waits for the end of each write
    (:func:`hybridsearch.interrupt.deferred`).

    Args:
        uri: tracking URI (``sqlite:///...`` or ``http://host:port``).
        experiment: experiment name; the study's name.
        artifact_location: where a new experiment keeps artifacts (a local path or URI).
    """

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None) -> None:
        self.uri = uri
        if _is_remote(uri):
            _check_server(uri)
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(uri)
        try:
            self.experiment_id = self._experiment(experiment, _artifact_uri(artifact_location, uri))
        except Exception as err:  # MLflow raises many kinds; all mean the same to a user
            raise TrackingError(f"tracking.uri: cannot use MLflow at {uri}: {first_line(err)}") from None
        self.parent_run_id: str | None = None

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id  # another machine made it first

    @interrupt.deferred()
    def start_parent(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        self.parent_run_id = run.info.run_id
        self.client.log_batch(self.parent_run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
        return self.parent_run_id

    @interrupt.deferred()
    def end_parent(self, status: str = "FINISHED") -> None:
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status=status)

    @interrupt.deferred()
    def start_trial(self, number: int, params: Mapping[str, Any]) -> str:
        tags = {MLFLOW_RUN_NAME: f"trial-{number}", "trial_number": str(number), "state": "RUNNING"}
        if self.parent_run_id:
            tags[MLFLOW_PARENT_RUN_ID] = self.parent_run_id
        run = self.client.create_run(self.experiment_id, tags=tags)
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run.info.run_id

    @interrupt.deferred()
    def end_trial(
        self, run_id: str, state: str, *, attrs: Mapping[str, Any] | None = None, reason: str | None = None
    ) -> None:
        tags = {"state": state, **{k: str(v) for k, v in (attrs or {}).items()}}
        if reason:
            tags["fail_reason"] = reason[:5000]
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.set_terminated(run_id, status=RUN_STATUS.get(state, "FAILED"))

    @interrupt.deferred()
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    @interrupt.deferred()
    def log_artifact(self, run_id: str, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), folder)

    @interrupt.deferred()
    def register_model(self, module: Any, name: str, example: Any) -> str | None:
        """Log the final model to the parent run and register it as ``name``; returns its version.

        It loads back with ``mlflow.pytorch.load_model(f"models:/{name}/{version}")``.
        """
        import mlflow
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        with torch.no_grad():
            output = module(torch.as_tensor(example)).numpy()
        mlflow.set_tracking_uri(self.uri)
        # MLflow prints "Successfully registered model" and "Created version" to stderr, between the
        # progress bar and the printout; the printout names the version instead.
        with mlflow.start_run(run_id=self.parent_run_id), contextlib.redirect_stderr(io.StringIO()):
            info = mlflow.pytorch.log_model(
                module,
                name="model",
                registered_model_name=name,
                signature=infer_signature(example, output),
                input_example=example,
                serialization_format="pickle",  # the module itself, with predict(), not an exported graph
                # Given, so MLflow does not spend seconds inferring them.
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "lightning", "hybridsearch"],
            )
        return None if info.registered_model_version is None else str(info.registered_model_version)

    @interrupt.deferred()
    def log_folder(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def download(self, run_id: str, artifact_path: str, folder: Path) -> Path:
        """Fetch an artifact of a run (say, a checkpoint written on another machine) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, artifact_path, str(folder)))
