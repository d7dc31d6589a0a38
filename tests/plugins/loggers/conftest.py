"""Fixtures for the logger tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _empty_mlflow_db(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, made once: creating one runs MLflow's
    schema migrations (~10 s here), which the default-store test pays itself."""
    mlflow = pytest.importorskip("mlflow")
    path = tmp_path_factory.mktemp("mlflow") / "empty.db"
    mlflow.MlflowClient("sqlite:///" + str(path)).search_experiments()
    return path


@pytest.fixture
def sqlite_store(_empty_mlflow_db):
    """``sqlite_store(path)``: an empty MLflow store at ``path`` (a copy of
    the one made once), as its tracking URI."""

    def make(path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_empty_mlflow_db, path)
        return "sqlite:///" + str(path)

    return make
