"""Broken recipes: files that are not TOML, keys and values that are wrong,
plugin names that do not exist, bad overrides and output folders.

Every recipe here is the toy plugin's (tests/toy_plugin.py), so a case that
gets further than it should trains a tiny MLP for a second, not a real model.
"""

from __future__ import annotations

import os
from typing import Callable

from corpus_base import MISSING, Case, Workspace, no_run_dir_under, unchanged
from toy_plugin import toy_recipe

#: words of a "must be positive / at least N" message
POSITIVE = ("greater", "at least", ">=", "≥", "positive", "> 0", "minimum", "must be")
DELETE = object()

# Line numbers below are this text's: the syntax cases break one line of it.
BASE_TOML = """\
[task]
type = "classification"
[data]
format = "toy_blobs"
[backbone]
name = "toy_mlp"
[train]
epochs = 1
progress = false
"""


def _toy(ws: Workspace, changes: dict | None = None, *, root_output: bool = False) -> dict:
    """The toy recipe with ``changes`` (dotted key -> value, or DELETE)."""
    recipe = toy_recipe(ws.root, train={"epochs": 1, "progress": False})
    if root_output:  # runs go to <case>/runs/NAME-TIMESTAMP: a left-behind run directory is visible there
        recipe["output"] = {"root": str(ws.root / "runs")}
    for dotted, value in (changes or {}).items():
        *parents, key = dotted.split(".")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(key, None)
        else:
            node[key] = value
    return recipe


def edit(cid: str, changes: dict, words: tuple, *, sets: tuple[str, ...] = (), command: str = "validate",
         exit: int = 2, before_training: bool = True) -> Case:
    """The toy recipe with some keys changed (or removed), then ``ft COMMAND``;
    an ``ft run`` refused ``before_training`` leaves no run directory."""
    def build(ws: Workspace) -> list[str]:
        path = ws.recipe(_toy(ws, changes, root_output=command == "run"))
        return [command, path, *(f"--set={s}" for s in sets), *(["--quiet"] if command == "run" else [])]

    after = no_run_dir_under("runs") if command == "run" and before_training else None
    return Case(f"recipe-{cid}", build, exit, words, after=after)


def text(cid: str, content: str | bytes, words: tuple, name: str = "recipe.toml") -> Case:
    """A recipe file with exactly these bytes, then ``ft validate``."""
    def build(ws: Workspace) -> list[str]:
        ws.names["recipe"] = name
        return ["validate", str(ws.write(name, content))]

    return Case(f"recipe-{cid}", build, 2, words)


def broken_line(n: int, replacement: str) -> str:
    """BASE_TOML with line ``n`` (1-based) replaced."""
    lines = BASE_TOML.splitlines()
    lines[n - 1] = replacement
    return "\n".join(lines) + "\n"


def _not_found(ws: Workspace) -> list[str]:
    return ["validate", str(ws.path("nope.toml"))]


def _a_directory(ws: Workspace) -> list[str]:
    ws.path("recipes.toml").mkdir()
    return ["validate", str(ws.path("recipes.toml"))]


def _run_into(target: str, make: Callable[[Workspace], str]) -> Callable[[Workspace], list[str]]:
    """``ft run`` with output.dir (or output.root) pointing at something unusable."""
    key = target.split(".")[-1]

    def build(ws: Workspace) -> list[str]:
        value = make(ws)
        ws.names["target"] = os.path.basename(value.rstrip("/"))
        recipe = _toy(ws)
        recipe["output"] = {key: value}
        return ["run", ws.recipe(recipe), "--quiet"]

    return build


def _a_file(ws: Workspace) -> str:
    path = ws.write("taken", "not a folder\n")
    ws.state["file"] = (path, path.read_bytes())
    return str(path)


def _below_a_file(ws: Workspace) -> str:
    path = ws.write("taken", "not a folder\n")
    ws.state["file"] = (path, path.read_bytes())
    return str(path / "run")


def _read_only_dir(ws: Workspace) -> str:
    folder = ws.path("locked")
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder / "runs")


def _as_root() -> str | None:
    return "running as root: permissions do not stop root" if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _resume(output: str) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        recipe = _toy(ws)
        recipe["output"] = {"root": str(ws.root / "runs")} if output == "root" else {"dir": str(ws.root / "run")}
        return ["run", ws.recipe(recipe, "toy.toml"), "--resume", "--quiet"]

    return build


def _resume_missing_dir(ws: Workspace) -> list[str]:
    return ["run", ws.recipe(_toy(ws, root_output=True)), "--resume", str(ws.path("nowhere")), "--quiet"]


def _nproc_zero(ws: Workspace) -> list[str]:
    return ["run", ws.recipe(_toy(ws, root_output=True)), "--nproc-per-node", "0"]


def _show(ws: Workspace) -> list[str]:
    return ["show", ws.recipe(_toy(ws, {"train.epoch": 3}))]


NON_FINITE = ("nan", "inf", "finite", "diverge")
NO_RESUME = ("no earlier", "no previous", "no run", "nothing to resume", "no checkpoint", "not found", "no such")

CASES: list[Case] = [
    # -- the file itself --------------------------------------------------------
    Case("recipe-not-found", _not_found, 2, ("nope.toml", MISSING)),
    Case("recipe-is-a-directory", _a_directory, 2, ("recipes.toml", ("directory", "folder", "not a file"))),
    text("binary-file", bytes(range(256)) * 4, ("{recipe}", ("binary", "utf-8", "utf8", "not text", "encoding"))),
    text("latin-1-bytes", broken_line(2, "type = \"classification\"  # café crème").encode("latin-1"),
         ("{recipe}", ("utf-8", "utf8", "encoding"))),
    text("empty-file", "", ("backbone.name", "missing")),
    # -- TOML syntax: the message names the line --------------------------------------
    text("toml-unclosed-table", broken_line(5, "[backbone"), ("{recipe}", "line 5")),
    text("toml-bare-string", broken_line(4, "format = toy_blobs"), ("{recipe}", "line 4")),
    text("toml-unclosed-string", broken_line(6, 'name = "toy_mlp'), ("{recipe}", "line 6")),
    text("toml-duplicate-key", broken_line(9, "epochs = 2"), ("{recipe}", "line 9")),
    text("toml-duplicate-table", broken_line(9, "[train]"), ("{recipe}", "line 9")),
    text("toml-missing-equals", broken_line(8, "epochs 1"), ("{recipe}", "line 8")),
    text("toml-unclosed-array", BASE_TOML + "[optim]\nbetas = [0.9, 0.99\n", ("{recipe}", ("line", "end of"))),
    # -- unknown sections and keys (did you mean) -------------------------------------
    text("unknown-section", BASE_TOML + "[trian]\nepochs = 2\n", ("trian", "did you mean", "train")),
    edit("unknown-key-train", {"train.epoch": 3}, ("train.epoch", "epochs")),
    edit("unknown-key-plugin-section", {"data.n_trian": 10}, ("data.n_trian", "n_train")),
    edit("unknown-key-optim", {"optim.learning_rate": 0.1}, ("optim.learning_rate", ("unknown", "not a"))),
    text("top-level-value", "epochs = 3\n" + BASE_TOML, ("epochs", ("unknown", "table", "section"))),
    edit("section-not-a-table", {"optim": "adamw"}, ("optim", "table")),
    # -- wrong types --------------------------------------------------------------
    edit("string-for-int", {"train.batch_size": "big"}, ("train.batch_size", "big")),
    edit("string-for-float", {"optim.lr": "fast"}, ("optim.lr", "fast")),
    edit("string-for-bool", {"train.progress": "maybe"}, ("train.progress", "maybe")),
    edit("short-pair", {"optim.betas": [0.9]}, ("optim.betas",)),
    edit("unknown-choice-optimizer", {"optim.name": "adam"}, ("optim.name", "adamw")),
    edit("unknown-choice-precision", {"train.precision": "fp8"}, ("train.precision", "fp8")),
    edit("bool-for-epochs", {"train.epochs": True}, ("train.epochs", ("true", "bool"))),
    edit("bool-for-lr", {"optim.lr": True}, ("optim.lr", ("true", "bool"))),
    edit("bool-for-plugin-int", {"data.n_train": True}, ("data.n_train", ("true", "bool"))),
    edit("bool-for-batch-size-by-set", {}, ("train.batch_size", "--set"), sets=("train.batch_size=true",)),
    edit("selector-not-a-string", {"backbone.name": 3}, ("backbone.name", ("string", "str"))),
    # -- numbers out of range: inf, nan, negative, zero ----------------------------------
    edit("inf-lr", {"optim.lr": float("inf")}, ("optim.lr", "inf")),
    edit("nan-lr-by-set", {}, ("optim.lr", "nan", "--set"), sets=("optim.lr=nan",)),
    edit("inf-lr-by-set", {}, ("optim.lr", "inf", "--set"), sets=("optim.lr=inf",)),
    edit("inf-clip-grad-norm", {"train.clip_grad_norm": float("inf")}, ("train.clip_grad_norm", "inf")),
    edit("nan-time-limit", {"train.time_limit": float("nan")}, ("train.time_limit", "nan")),
    edit("nan-weight-decay", {"optim.weight_decay": float("nan")}, ("optim.weight_decay", "nan")),
    edit("inf-head-lr-mult", {"optim.head_lr_mult": float("inf")}, ("optim.head_lr_mult", "inf")),
    edit("inf-plugin-float", {"data.spread": float("inf")}, ("data.spread", "inf")),
    edit("beta-above-one", {"optim.betas": [0.9, 1.5]}, ("optim.betas", "1.5")),
    edit("negative-epochs", {"train.epochs": -1}, ("train.epochs", POSITIVE + ("-1",))),
    edit("zero-batch-size", {"train.batch_size": 0}, ("train.batch_size", POSITIVE)),
    edit("zero-lr", {"optim.lr": 0}, ("optim.lr", POSITIVE)),
    edit("zero-grad-accum", {"train.grad_accum": 0}, ("train.grad_accum", POSITIVE)),
    edit("negative-weight-decay", {"optim.weight_decay": -0.1}, ("optim.weight_decay", POSITIVE + ("-0.1",))),
    edit("negative-workers", {"train.num_workers": -2}, ("train.num_workers", "-2")),
    edit("warmup-ratio-above-one", {"optim.warmup_ratio": 1.5}, ("optim.warmup_ratio", "1.5")),
    edit("zero-keep-checkpoints", {"train.keep_checkpoints": 0}, ("train.keep_checkpoints", POSITIVE)),
    edit("plugin-option-out-of-range", {"data.n_classes": 1}, ("data.n_classes", POSITIVE + ("2",))),
    # -- names that no plugin registered -----------------------------------------------
    edit("unknown-backbone", {"backbone.name": "toy_mpl"}, ("backbone.name", "toy_mpl", "toy_mlp")),
    edit("unknown-data-format", {"data.format": "toy_blob"}, ("data.format", "toy_blob", "toy_blobs")),
    edit("unknown-head", {"head.type": "liner"}, ("head.type", "liner", "linear")),
    edit("unknown-freeze-strategy", {"freeze.strategy": "freeze_botom"}, ("freeze.strategy", "freeze_bottom")),
    edit("unknown-task-type", {"task.type": "clasification"}, ("task.type", "clasification")),
    edit("missing-backbone-name", {"backbone.name": DELETE}, ("backbone.name", "missing")),
    edit("missing-data-path-option", {"data.csv": "missing.csv"}, ("data.csv", "missing.csv")),
    # -- train.device -----------------------------------------------------------------
    edit("device-tpu9", {"train.device": "tpu9"}, ("train.device", "tpu9")),
    edit("device-cuda-x-run", {"train.device": "cuda:x"}, ("train.device", "cuda:x"), command="run"),
    # -- --set ------------------------------------------------------------------------
    edit("set-without-equals", {}, ("--set", "train.epochs"), sets=("train.epochs",)),
    edit("set-without-key", {}, ("--set", "=3"), sets=("=3",)),
    edit("set-too-deep", {}, ("a.b.c.d", "--set"), sets=("a.b.c.d=1",)),
    edit("set-below-a-value", {}, ("train.epochs.x", "--set"), sets=("train.epochs.x=1",)),
    edit("set-empty-key-part", {}, ("train..epochs", "--set"), sets=("train..epochs=1",)),
    edit("set-bad-value", {}, ("train.epochs", "abc", "--set"), sets=("train.epochs=abc",)),
    edit("set-empty-value", {}, ("optim.lr", "--set"), sets=("optim.lr=",)),
    edit("set-unknown-key", {}, ("train.epoch", "--set", "epochs"), sets=("train.epoch=3",)),
    # -- ft run: nothing starts (and no run directory is made) before the recipe is valid ---
    edit("unknown-key-run", {"train.epoch": 3}, ("train.epoch", "epochs"), command="run"),
    edit("inf-lr-run", {"optim.lr": float("inf")}, ("optim.lr", "inf"), command="run"),
    Case("recipe-show-unknown-key", _show, 2, ("train.epoch", "epochs")),
    Case("recipe-nproc-per-node-zero", _nproc_zero, 2, ("nproc",), after=no_run_dir_under("runs")),
    # -- a number only training reveals: a guard stops the run, naming what went non-finite ---
    edit("lr-so-high-the-loss-diverges", {}, ("loss", NON_FINITE), sets=("optim.lr=1e30",), command="run",
         before_training=False),
    # -- output folders and --resume -----------------------------------------------------
    Case("recipe-output-dir-is-a-file", _run_into("output.dir", _a_file), 2,
         ("output.dir", "{target}", ("not a folder", "not a directory", "is a file", "exists", "file")),
         after=unchanged("file")),
    Case("recipe-output-dir-below-a-file", _run_into("output.dir", _below_a_file), 2,
         ("output.dir", "taken", ("not a folder", "not a directory", "is a file", "file")),
         after=unchanged("file")),
    Case("recipe-output-root-is-a-file", _run_into("output.root", _a_file), 2,
         ("output.root", "{target}", ("not a folder", "not a directory", "is a file", "exists", "file")),
         after=unchanged("file")),
    Case("recipe-output-root-unwritable", _run_into("output.root", _read_only_dir), 2,
         ("output.root", ("permission", "writable", "read-only", "cannot write", "cannot create")),
         skip_if=_as_root),
    Case("recipe-resume-without-previous-run", _resume("root"), 2, ("toy", NO_RESUME),
         after=no_run_dir_under("runs")),
    Case("recipe-resume-output-dir-without-run", _resume("dir"), 2, ("output.dir", NO_RESUME)),
    Case("recipe-resume-run-dir-missing", _resume_missing_dir, 2, ("nowhere", MISSING + NO_RESUME),
         after=no_run_dir_under("runs")),
]
