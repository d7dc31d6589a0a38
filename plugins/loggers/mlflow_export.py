"""A finished run's model into MLflow, as a pyfunc model "from code".

:func:`log_model` exports the run (:func:`ft.export_run`: LoRA merged,
safetensors weights) and saves it with ``mlflow_model.py`` as the model's
code: what MLflow stores is that folder and that file, never a pickled
torch module, and loading the model rebuilds it with :func:`ft.load_run`.
It is done with ``MlflowClient``'s logged-model calls (what
``mlflow.pyfunc.log_model`` does through the process-wide active run and
tracking URI, which the logger never sets).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ft.errors import FtError

#: the file MLflow keeps as the model's code
MODEL_CODE = Path(__file__).with_name("mlflow_model.py")


def log_model(client: Any, run_id: str, run_dir: Path, summary: dict[str, Any], tracking_uri: str) -> str:
    """Log ``run_dir``'s model as the MLflow run ``run_id``'s output; its URI (``models:/ID``)."""
    import mlflow.pyfunc
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    import ft

    experiment_id = client.get_run(run_id).info.experiment_id
    logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id, model_type="ftkit")
    # raw inputs in (one string column: paths or texts), top_k as a parameter
    signature = ModelSignature(inputs=Schema([ColSpec("string")]),
                               params=ParamSchema([ParamSpec("top_k", "long", 3)]))
    try:
        with tempfile.TemporaryDirectory(prefix="ft-mlflow-") as tmp, _quiet_mlflow():
            export = ft.export_run(run_dir, Path(tmp) / "export")
            saved = Path(tmp) / "model"
            mlflow.pyfunc.save_model(
                str(saved), python_model=str(MODEL_CODE), artifacts={"run": str(export)}, signature=signature,
                pip_requirements=requirements(summary),
                mlflow_model=Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                                   run_id=run_id, model_id=logged.model_id))
            client.log_model_artifacts(logged.model_id, str(saved))
    except Exception as exc:
        client.finalize_logged_model(logged.model_id, "FAILED")
        raise FtError(f"could not log the model to MLflow: {type(exc).__name__}: {exc}",
                      where=f"logger 'mlflow' ({tracking_uri})",
                      hint="the run directory is complete; to log without the model set "
                           "[log.mlflow] log_model = false") from exc
    client.finalize_logged_model(logged.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return f"models:/{logged.model_id}"


def requirements(summary: dict[str, Any]) -> list[str]:
    """The model's pip requirements: ftkit and the plugin distributions
    the run's components came from (``summary["components"]``), pinned."""
    import ft

    pins = {"ftkit": ft.__version__}
    for component in summary.get("components") or []:
        dist, version = component.get("distribution", ""), component.get("version", "")
        if dist and version and not dist.startswith("("):  # "(in-process)": nothing to install
            pins[dist] = version
    return [f"{dist}=={version}" for dist, version in pins.items()]


@contextmanager
def _quiet_mlflow():
    """While the model is saved: no progress bar for copying the export, and
    no advice to give an input example (no one input suits every data format)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
