"""The tiny finished run the run-directory cases damage copies of (built once)."""

from __future__ import annotations

import pytest
import tomli_w

import ft
import toy_plugin
from corpus_base import FinishedRun
from ft import _registry


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> FinishedRun:
    """A 2-epoch toy run on a CSV of 80 rows: checkpoints epoch-1 and
    epoch-2, best/, summary. Ask for it before the ``registry`` fixture: it
    loads its own registry and forgets it afterwards."""
    root = tmp_path_factory.mktemp("finished")
    x, y = toy_plugin.make_blobs(toy_plugin.BlobOptions(n_train=48, n_val=16, n_test=16), "classification")
    data = root / "blobs.csv"
    data.write_text("".join(",".join(f"{v:.5f}" for v in row) + f",{int(label)}\n"
                            for row, label in zip(x.tolist(), y.tolist())))
    recipe = toy_plugin.toy_recipe(root, data={"csv": str(data), "n_train": 48, "n_val": 16, "n_test": 16},
                                   train={"epochs": 2, "batch_size": 16, "progress": False})
    # output.root, not output.dir: a case resumes a copy elsewhere (--resume COPY) with this very recipe
    recipe["output"] = {"root": str(root / "runs")}
    path = root / "toy.toml"
    path.write_text(tomli_w.dumps(recipe))
    _registry.reset_registry()
    try:
        _registry.get_registry().register(toy_plugin, "toy")
        result = ft.run(path, quiet=True)
    finally:
        _registry.reset_registry()
    return FinishedRun(result.run_dir, path, recipe, data)
