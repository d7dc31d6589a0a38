"""Damaged run directories and checkpoints, and resumes that must be refused.

Every case damages its own copy of one tiny finished toy run (2 epochs,
checkpoints epoch-1 and epoch-2, best/) and runs ``ft eval``, ``ft
predict``, ``ft export`` or ``ft run RECIPE --resume RUN_DIR`` on it. What a
command reads decides the right outcome: eval, predict and export use
``best/model.safetensors`` (the latest checkpoint's weights when there is no
best), so a damaged ``state.pt`` does not concern them (exit 0); a resume
reads the latest checkpoint whole, so any damage to it is an error naming
the file (exit 2).
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import struct
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import save_file

from corpus_base import BROKEN, EMPTY, MISSING, Case, Workspace, all_of, unchanged

Damage = Callable[[Path, Workspace], None]
NOT_A_RUN = ("not an ft run", "not a run", "recipe.toml", "no run")
NO_RESUME = ("no checkpoint", "nothing to resume", "cannot resume", "no run")
WEIGHTS_BROKEN = BROKEN + ("header", "safetensors")


# -- damages --------------------------------------------------------------------------------


def latest(run: Path) -> Path:
    """The checkpoint folder ``checkpoints/latest.json`` names (before any damage)."""
    return run / "checkpoints" / json.loads((run / "checkpoints" / "latest.json").read_text())["checkpoint"]


def garble(path: Path) -> None:
    """Same length, seeded random bytes."""
    path.write_bytes(random.Random(0).randbytes(path.stat().st_size))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def header_too_large(path: Path) -> None:
    """A safetensors header length of 2**40 bytes: safetensors says "header too large"."""
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", 2**40)
    path.write_bytes(bytes(data))


def in_latest(name: str, how: Callable[[Path], None]) -> Damage:
    def damage(run: Path, ws: Workspace) -> None:
        ws.names["file"] = name
        how(latest(run) / name)

    return damage


def in_best(how: Callable[[Path], None]) -> Damage:
    def damage(run: Path, ws: Workspace) -> None:
        ws.names["file"] = "model.safetensors"
        how(run / "best" / "model.safetensors")

    return damage


def remove(path: Path) -> None:
    path.unlink()


def no_weights_anywhere(run: Path, ws: Workspace) -> None:
    for path in [run / "best" / "model.safetensors", *run.glob("checkpoints/*/model.safetensors")]:
        path.unlink()


def write_file(relative: str, content: str | bytes) -> Damage:
    def damage(run: Path, ws: Workspace) -> None:
        ws.names["file"] = Path(relative).name
        path = run / relative
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return damage


def other_models_weights(run: Path, ws: Workspace) -> None:
    """best/ holds a different model's weights (one tensor named foo)."""
    save_file({"foo": torch.zeros(3)}, str(run / "best" / "model.safetensors"))


def unknown_backbone(run: Path, ws: Workspace) -> None:
    """The run's recipe names a backbone no plugin provides (its plugin was uninstalled)."""
    path = run / "recipe.toml"
    path.write_text(path.read_text().replace('name = "toy_mlp"', 'name = "gone_mlp"'))


def drop(relative: str) -> Damage:
    def damage(run: Path, ws: Workspace) -> None:
        target = run / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    return damage


# -- commands ----------------------------------------------------------------------------------

def _argv(command: str, ws: Workspace, run: Path) -> list[str]:
    if command == "eval":
        return ["eval", str(run)]
    if command == "predict":
        return ["predict", str(run), "1,2,3,4,5,6,7,8"]
    if command == "export":
        return ["export", str(run), str(ws.path("exported"))]
    return ["run", str(ws.run().recipe), "--resume", str(run)]  # not --quiet: the final metrics are shown


def export_left_nothing(ws: Workspace) -> str | None:
    out = ws.path("exported")
    left = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    return f"a failed export left files behind: {left}" if left else None


#: what an intact run gives per command (the words of exit-0 cases)
DONE = {"eval": ("accuracy",), "predict": ("class_",), "export": ("export",), "resume": ("test_accuracy",)}


def damaged(cid: str, damage: Damage, command: str, exit: int, words: tuple = ()) -> Case:
    """Damage a copy of the finished run, then run ``command`` on it."""
    def build(ws: Workspace) -> list[str]:
        run = ws.run_copy()
        damage(run, ws)
        return _argv(command, ws, run)

    after = export_left_nothing if command == "export" and exit else None
    return Case(f"run-{cid}-{command}", build, exit, words or DONE[command], after=after, needs_run=True)


def matrix(cid: str, damage: Damage, outcomes: dict[str, int], words: tuple) -> list[Case]:
    """One case per command: ``outcomes`` command -> exit code; exit 2 cases
    must say ``words``, exit 0 cases what an intact run says."""
    return [damaged(cid, damage, command, exit, words if exit else ()) for command, exit in outcomes.items()]


SERVE = ("eval", "predict", "export")
REFUSE_ALL = dict.fromkeys((*SERVE, "resume"), 2)
ONLY_RESUME_REFUSES = {**dict.fromkeys(SERVE, 0), "resume": 2}

# -- resumes with a changed recipe, and runs into a folder that holds a run ----------------------


def changed_resume(cid: str, change: Callable[[dict, Workspace], None], words: tuple) -> Case:
    """``ft run`` of the run's recipe with one thing changed, ``--resume`` on a copy of the run."""
    def build(ws: Workspace) -> list[str]:
        run = ws.run_copy()
        ws.state["latest"] = (run / "checkpoints" / "latest.json", (run / "checkpoints" / "latest.json").read_bytes())
        recipe = copy.deepcopy(ws.run().recipe_dict)
        change(recipe, ws)
        return ["run", ws.recipe(recipe, "toy.toml"), "--resume", str(run), "--quiet"]

    return Case(f"run-resume-changed-{cid}", build, 2, words, after=unchanged("latest"), needs_run=True)


def other_data(recipe: dict, ws: Workspace) -> None:
    lines = Path(recipe["data"]["csv"]).read_text().splitlines()
    first = lines[0].split(",")
    lines[0] = ",".join([str(float(first[0]) + 1.0), *first[1:]])
    recipe["data"]["csv"] = str(ws.write("blobs2.csv", "\n".join(lines) + "\n"))


def setter(section: str, key: str, value) -> Callable[[dict, Workspace], None]:
    def change(recipe: dict, ws: Workspace) -> None:
        recipe.setdefault(section, {})[key] = value

    return change


def fresh_into(damage: Damage | None) -> Callable[[Workspace], list[str]]:
    """A fresh ``ft run`` (no --resume) whose output.dir is a copy of the finished run."""
    def build(ws: Workspace) -> list[str]:
        run = ws.run_copy()
        if damage is not None:
            damage(run, ws)
        ws.state["summary"] = (run / "summary.json", (run / "summary.json").read_bytes())
        ws.state["best"] = (run / "best" / "model.safetensors", (run / "best" / "model.safetensors").read_bytes())
        recipe = copy.deepcopy(ws.run().recipe_dict)
        recipe["output"] = {"dir": str(run)}
        return ["run", ws.recipe(recipe, "toy.toml"), "--quiet"]

    return build


def not_a_run(command: str, make: Callable[[Workspace], Path], words: tuple, cid: str) -> Case:
    def build(ws: Workspace) -> list[str]:
        path = make(ws)
        if command == "resume":
            return ["run", str(ws.run().recipe), "--resume", str(path), "--quiet"]
        return _argv(command, ws, path)

    return Case(f"run-{cid}-{command}", build, 2, words, needs_run=command == "resume")


def _empty_dir(ws: Workspace) -> Path:
    ws.path("somewhere").mkdir()
    return ws.path("somewhere")


def _missing_dir(ws: Workspace) -> Path:
    return ws.path("nowhere")


def _a_file(ws: Workspace) -> Path:
    return ws.write("notes.txt", "not a run\n")


def _export_into(make: Callable[[Workspace], None]) -> Callable[[Workspace], list[str]]:
    def build(ws: Workspace) -> list[str]:
        run = ws.run_copy()
        make(ws)
        return ["export", str(run), str(ws.path("exported"))]

    return build


STATE = ("state.pt", BROKEN + EMPTY)
CASES: list[Case] = [
    *matrix("state-pt-garbled", in_latest("state.pt", garble), ONLY_RESUME_REFUSES, STATE),
    *matrix("state-pt-truncated", in_latest("state.pt", truncate), ONLY_RESUME_REFUSES, STATE),
    *matrix("state-pt-empty", in_latest("state.pt", empty), ONLY_RESUME_REFUSES, STATE),
    *matrix("state-json-garbled", in_latest("state.json", garble), {"resume": 2}, ("state.json", BROKEN)),
    *matrix("checkpoint-weights-header", in_latest("model.safetensors", header_too_large), ONLY_RESUME_REFUSES,
            ("model.safetensors", WEIGHTS_BROKEN)),
    *matrix("checkpoint-weights-missing", in_latest("model.safetensors", remove), ONLY_RESUME_REFUSES,
            ("model.safetensors", MISSING)),
    # a resumed run ends by loading its best weights: a damaged best/ stops it too
    *matrix("best-weights-header", in_best(header_too_large), REFUSE_ALL, ("model.safetensors", WEIGHTS_BROKEN)),
    *matrix("best-weights-truncated", in_best(truncate), dict.fromkeys(SERVE, 2),
            ("model.safetensors", WEIGHTS_BROKEN)),
    *matrix("best-weights-empty", in_best(empty), {"eval": 2}, ("model.safetensors", WEIGHTS_BROKEN + EMPTY)),
    *matrix("best-weights-of-another-model", other_models_weights, {"eval": 2, "predict": 2},
            ("model.safetensors", ("match", "missing", "unexpected", "different", "shape", "keys"))),
    *matrix("best-weights-missing", in_best(remove), dict.fromkeys(SERVE, 0), ()),
    *matrix("no-weights-anywhere", no_weights_anywhere, REFUSE_ALL, ("{run}", ("model", "weights"))),
    *matrix("latest-json-garbled", write_file("checkpoints/latest.json", "{not json"), ONLY_RESUME_REFUSES,
            ("latest.json", BROKEN)),
    *matrix("latest-json-names-missing-checkpoint",
            write_file("checkpoints/latest.json", '{"checkpoint": "epoch-9", "epoch": 9, "batch": 0}'),
            ONLY_RESUME_REFUSES, ("epoch-9", MISSING)),
    *matrix("latest-json-empty-object", write_file("checkpoints/latest.json", "{}"), {"resume": 2},
            ("latest.json", BROKEN + MISSING)),
    *matrix("no-checkpoints-folder", drop("checkpoints"), {"eval": 0, "resume": 2}, ("{run}", NO_RESUME)),
    *matrix("task-json-missing", drop("task.json"), {"eval": 2, "predict": 2}, ("task.json", MISSING)),
    *matrix("task-json-garbled", write_file("task.json", "{not json"), {"eval": 2}, ("task.json", BROKEN)),
    *matrix("data-json-garbled", write_file("data.json", "[1, 2"), {"predict": 2}, ("data.json", BROKEN)),
    *matrix("recipe-toml-garbled", write_file("recipe.toml", "[data\nformat = 'toy_blobs'\n"), {"eval": 2},
            ("recipe.toml", "line")),
    *matrix("recipe-names-unknown-backbone", unknown_backbone, {"eval": 2, "export": 2},
            ("backbone.name", "gone_mlp")),
    not_a_run("eval", _empty_dir, ("somewhere", NOT_A_RUN), "empty-folder"),
    not_a_run("predict", _empty_dir, ("somewhere", NOT_A_RUN), "empty-folder"),
    not_a_run("export", _empty_dir, ("somewhere", NOT_A_RUN), "empty-folder"),
    not_a_run("resume", _empty_dir, ("somewhere", NO_RESUME), "empty-folder"),
    not_a_run("eval", _missing_dir, ("nowhere", MISSING + NOT_A_RUN), "missing-folder"),
    not_a_run("eval", _a_file, ("notes.txt", NOT_A_RUN + ("folder", "directory")), "a-file"),
    Case("run-export-into-non-empty-folder", _export_into(lambda ws: ws.write("exported/keep.txt", "mine")), 2,
         ("exported", ("not empty", "exists")), needs_run=True),
    Case("run-export-onto-a-file", _export_into(lambda ws: ws.write("exported", "mine")), 2,
         ("exported", ("not a folder", "not a directory", "exists", "file")), needs_run=True),
    Case("run-predict-bad-input", lambda ws: ["predict", str(ws.run_copy()), "abc"], 2, ("abc",), needs_run=True),
    changed_resume("data-file", other_data, ("data.csv",)),
    changed_resume("task", setter("task", "type", "regression"), ("task.type",)),
    changed_resume("optim-lr", setter("optim", "lr", 0.05), ("optim.lr",)),
    changed_resume("backbone-option", setter("backbone", "width", 48), ("backbone.width",)),
    Case("run-fresh-into-a-finished-run", fresh_into(None), 2, ("output.dir", "--resume"),
         after=all_of(unchanged("summary"), unchanged("best")), needs_run=True),
    Case("run-fresh-into-a-run-with-garbled-latest-json",
         fresh_into(write_file("checkpoints/latest.json", "{not json")), 2,
         ("{run}", ("already holds", "holds a run", "latest.json")),
         after=all_of(unchanged("summary"), unchanged("best")), needs_run=True),
]
