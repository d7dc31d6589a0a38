"""An ftkit run as an MLflow pyfunc model, logged "from code".

The ``mlflow`` logger saves this file with the model and the run's export
(:func:`ft.export_run`: LoRA merged, safetensors weights) as the artifact
``run``. MLflow runs this file when the model is loaded, so nothing is
unpickled; ``load_context`` rebuilds the model with :func:`ft.load_run`,
which needs ftkit and the plugins that built the run installed (or, for a
plugin registered in-process, registered again first)::

    model = mlflow.pyfunc.load_model("models:/m-...")
    model.predict(["photo.jpg"])            # raw inputs, as ``ft predict`` takes them

``predict`` takes a list of strings (file paths or texts, whatever the
run's data format reads), a pandas Series, or a DataFrame whose first
column holds them (the signature: one string column; MLflow hands any of
these over as a DataFrame); ``params={"top_k": N}`` asks for N predictions per
input (default 3). It returns a DataFrame, one row per input: ``label``
and ``score`` of the top prediction (for regression, the target's name and
value), and ``top``, the list of ``[label, score]`` pairs.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class FtRunModel(PythonModel):
    """The pyfunc face of a run exported by :func:`ft.export_run`."""

    def load_context(self, context: Any) -> None:
        import ft

        self.run = ft.load_run(context.artifacts["run"])
        self.data_format = ft.get_registry().get("ft_dataset_formats", self.run.recipe.data.name)
        if self.data_format.read_input is None:
            raise ft.FtError(f"data format {self.run.recipe.data.name!r} cannot read raw inputs, so this "
                             "model cannot predict from them", where=context.artifacts["run"])

    # the DataFrame hint: MLflow validates nothing by it and keeps the signature the logger gives
    # (a list[str] hint would replace that signature, and with it the top_k parameter)
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Predictions for ``model_input`` (see the module docstring)."""
        import torch
        from torch.utils.data import default_collate

        top_k = int((params or {}).get("top_k", 3))
        backbone = self.run.model.backbone
        # what ft.predict_run does, on the model load_context built once
        examples = [(self.data_format.read_input(raw, self.run.recipe.data.options, backbone), 0)
                    for raw in _strings(model_input)]
        inputs, _ = (backbone.collate() or default_collate)(examples)
        with torch.no_grad():
            outputs = self.run.model(inputs)
        rows = self.run.model.head.predict(outputs.float(), top_k=top_k)
        return pd.DataFrame({"label": [r[0][0] for r in rows], "score": [r[0][1] for r in rows],
                             "top": [[list(pair) for pair in r] for r in rows]})


def _strings(model_input: Any) -> list[str]:
    """The raw inputs: a DataFrame's first column, a Series, a list or one string."""
    if hasattr(model_input, "columns"):
        model_input = model_input[model_input.columns[0]]
    if isinstance(model_input, str):
        return [model_input]
    return [str(value) for value in list(model_input)]


mlflow.models.set_model(FtRunModel())
