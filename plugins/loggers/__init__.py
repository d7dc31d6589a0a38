"""Built-in experiment loggers: ``tensorboard`` and ``mlflow``.

A recipe turns them on with ``[log] backends = ["tensorboard", "mlflow"]``
(or ``ft run --log tensorboard``) and configures them in
``[log.tensorboard]`` / ``[log.mlflow]``; docs/tracking.md says what each
records and where. A bare ``ft.Trainer`` takes the classes as callbacks::

    from ft.plugins.loggers import TensorBoardLogger
    Trainer(model, train, val, callbacks=[TensorBoardLogger("tb")])

Both register even when their library is missing (``pip install
"ftkit[tensorboard]"`` / ``"ftkit[mlflow]"``): turning one on is then an
error naming the extra, before anything trains. Nothing heavy is imported
here. A logger plugin of your own registers the same way: CONTRIBUTING.md,
"A logger plugin".
"""

from __future__ import annotations

import ft
from ft.specs import LoggerSpec

from .mlflow_logger import MlflowLogger, MlflowOptions
from .tensorboard_logger import TensorBoardLogger, TensorBoardOptions


@ft.hookimpl
def ft_loggers() -> list[LoggerSpec]:
    return [
        LoggerSpec("tensorboard", TensorBoardLogger.from_options, TensorBoardOptions,
                   description="curves, hparams and the model card as TensorBoard event files "
                               "(<run_dir>/tensorboard)"),
        LoggerSpec("mlflow", MlflowLogger.from_options, MlflowOptions,
                   description="params, metrics, run files and the model (pyfunc) in an MLflow store "
                               "(default sqlite:///<output.root>/mlflow.db)"),
    ]


__all__ = ["TensorBoardLogger", "TensorBoardOptions", "MlflowLogger", "MlflowOptions", "ft_loggers"]
