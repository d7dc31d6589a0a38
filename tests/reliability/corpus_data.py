"""What the data cases share: the smallest valid recipe per domain and the
way a data case runs (``ft validate``, or for a sample ``ft run``, which must
stop before any model is built and leave no run directory behind)."""

from __future__ import annotations

from typing import Callable

from corpus_base import Case, Word, Workspace, no_run_dir_under

#: the cheapest valid backbone per domain (a data case must never build it)
BACKBONES = {
    "nlp": {"name": "minilm"},
    "vision": {"name": "timm", "model": "test_convnext", "weights": "random", "image_size": 32},
    "speech": {"name": "logmel_cnn", "channels": [8]},
    "rec": {"name": "mf", "dim": 8},
}
DOMAINS = {
    "text_csv": "nlp", "text_tsv": "nlp", "text_jsonl": "nlp",
    "interactions_csv": "rec", "grouplens": "rec", "recbole_atomic": "rec",
    "audio_folder": "speech", "audio_manifest": "speech",
    "image_folder": "vision", "image_csv": "vision", "idx": "vision",
}
#: task -> head
HEADS = {"classification": "linear", "regression": "linear", "ranking": "ranking", "rating": "rating"}

#: a maker writes the data into the workspace and returns the recipe's [data] options
Maker = Callable[[Workspace], dict]


def data_recipe(ws: Workspace, fmt: str, data: dict, task: str | None = None) -> dict:
    """A small recipe over ``data`` in format ``fmt``; runs go to ``<case>/runs``."""
    domain = DOMAINS[fmt]
    task = task or ("ranking" if domain == "rec" else "classification")
    return {
        "task": {"type": task},
        "data": {"format": fmt, **data},
        "backbone": dict(BACKBONES[domain]),
        "head": {"type": HEADS[task]},
        "freeze": {"strategy": "full"},
        "train": {"epochs": 1, "batch_size": 4, "progress": False, "num_workers": 0},
        "output": {"root": str(ws.root / "runs")},
    }


def data_case(fmt: str, cid: str, make: Maker, words: tuple[Word, ...], *, run: bool = False, exit: int = 2,
              task: str | None = None) -> Case:
    """``ft validate`` (or ``ft run``) of a recipe over the data ``make`` writes."""
    def build(ws: Workspace) -> list[str]:
        path = ws.recipe(data_recipe(ws, fmt, make(ws), task))
        return ["run", path, "--quiet"] if run else ["validate", path]

    return Case(f"data-{fmt}-{cid}" + ("-run" if run else ""), build, exit, words,
                after=no_run_dir_under("runs") if run else None)


def file_option(name: str, content: str | bytes | None, key: str = "path") -> Maker:
    """``data.<key>`` = the file ``name`` with ``content`` (None: not written;
    a trailing "/" makes a folder of that name instead)."""
    def make(ws: Workspace) -> dict:
        ws.names["file"] = name.rstrip("/")
        if name.endswith("/"):
            ws.path(name).mkdir(parents=True)
        elif content is not None:
            ws.write(name, content)
        return {key: str(ws.path(name.rstrip("/")))}

    return make


def with_options(make: Maker, **options) -> Maker:
    """``make`` plus more [data] options."""
    def wrapped(ws: Workspace) -> dict:
        return {**make(ws), **options}

    return wrapped
