"""``init_from``: start a backbone from an earlier run, matching table rows by ID.

IDs change between pretraining and fine-tuning (new users arrive, old ones
leave, the catalogue grows), so embedding rows cannot be copied by position.
For every ID table (users, items, side-feature tokens) the rows of IDs both
vocabularies know are copied by ID, rows of new IDs keep their fresh
initialisation, and rows of IDs the new data lacks are dropped. Every other
parameter (towers, encoder layers) must match in shape and is copied as is.
The run prints, per vocabulary, how many rows were carried, new and dropped.

A source is a run directory (its ``best/model.safetensors``, else its latest
checkpoint, and its ``data.json`` vocabularies) or a ``.safetensors`` file
with an ID-map JSON (``data.json`` of a run, or ``{"vocab": {...},
"features": {...}}``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ft.checkpoint import read_weights, run_weights
from ft.errors import FtError


@dataclass
class Source:
    """Weights and ID vocabularies to start from."""

    state: dict[str, torch.Tensor]
    vocab: dict[str, list[str]]
    backbone: str | None
    path: Path


def vocabularies(info: dict) -> dict[str, list[str]]:
    """``{"user": ids, "item": ids, "item:class": tokens, ...}`` from data info."""
    out = {name: list(ids) for name, ids in (info.get("vocab") or {}).items()}
    for side, columns in (info.get("features") or {}).items():
        for column, table in columns.items():
            out[f"{side}:{column}"] = list(table["vocab"])
    return out


def load_source(path: Path, id_maps: Path | None) -> Source:
    """Read ``init_from`` (and ``id_maps``): weights (backbone keys only) and vocabularies."""
    where = f"backbone.init_from = {path}"
    backbone = None
    if path.is_dir():
        if not (path / "best" / "model.safetensors").exists() and not (path / "checkpoints" / "latest.json").exists():
            raise FtError("the run directory has no saved model (no best/ and no checkpoint)", where=where,
                          hint="run the pretraining recipe first (see the recipe's header)")
        weights = run_weights(path)  # a garbled checkpoint pointer is an error that names it
        id_maps = id_maps or path / "data.json"
        if (path / "recipe.toml").exists():
            try:
                backbone = tomllib.loads((path / "recipe.toml").read_text()).get("backbone", {}).get("name")
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise FtError(f"the run's recipe.toml is damaged ({exc})", where=str(path / "recipe.toml"),
                              hint="give the run directory of a finished pretraining run") from None
    elif path.suffix == ".safetensors" and path.exists():
        weights = path
        if id_maps is None:
            raise FtError("a .safetensors init_from needs the ID maps it was trained with", where=where,
                          hint="set backbone.id_maps to that run's data.json (or a JSON with \"vocab\")")
    else:
        raise FtError("expected a run directory or a .safetensors file", where=where,
                      hint="run the pretraining recipe first, or fix the path")
    if not Path(id_maps).exists():
        raise FtError("ID-map file not found", where=f"backbone.id_maps = {id_maps}")
    try:
        info = json.loads(Path(id_maps).read_text())
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FtError(f"cannot read the ID maps: not a JSON file ({exc})", where=str(id_maps),
                      hint="give the pretraining run's data.json (backbone.id_maps)") from None
    if not isinstance(info, dict) or "vocab" not in info:
        raise FtError("the ID-map JSON has no \"vocab\" (expected a run's data.json)", where=str(id_maps))
    state = read_weights(weights, "the weights of backbone.init_from")  # damaged or missing: an error naming it
    if any(k.startswith("backbone.") for k in state):  # a whole FtModel: keep its backbone
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return Source(state, vocabularies(info), backbone, path)


def carry_over(module: nn.Module, tables: dict[str, str], source: Source,
               target_vocab: dict[str, list[str]], new_rows: str = "mean") -> dict[str, dict[str, int]]:
    """Copy ``source`` into ``module``: ID tables (param name -> vocabulary
    name) row by ID, everything else by name and shape. Rows of new IDs
    start at the mean of the source table's rows (``new_rows="mean"``: an
    average user or item, as new-token embeddings are often initialised) or
    keep their fresh random init (``"random"``). Returns, per vocabulary,
    ``{"carried", "new", "dropped"}`` row counts."""
    where = f"backbone.init_from = {source.path}"
    own = dict(module.named_parameters())
    missing = sorted(set(own) - set(source.state))
    unexpected = sorted(set(source.state) - set(own))
    if missing or unexpected:
        raise FtError(f"the weights do not fit this backbone: missing {missing[:6]}, unexpected {unexpected[:6]}",
                      where=where, hint="start from a run of the same backbone with the same options "
                                        f"(the source was {source.backbone or 'unknown'})")
    report: dict[str, dict[str, int]] = {}
    with torch.no_grad():
        for name, param in own.items():
            src = source.state[name]
            vocab_name = tables.get(name)
            if vocab_name is None:
                if src.shape != param.shape:
                    raise FtError(f"parameter {name!r} has shape {tuple(src.shape)} in the source but "
                                  f"{tuple(param.shape)} here", where=where,
                                  hint="use the same backbone options (dim, layers, hidden) as the source run")
                param.copy_(src)
                continue
            old = source.vocab.get(vocab_name)
            new = target_vocab.get(vocab_name, [])
            if old is None:
                raise FtError(f"the source's ID maps have no {vocab_name!r} vocabulary", where=where)
            if src.shape[1:] != param.shape[1:] or src.shape[0] != len(old) + 1:
                raise FtError(f"table {name!r}: source shape {tuple(src.shape)} does not match its "
                              f"{len(old)} {vocab_name} IDs or this table {tuple(param.shape)}", where=where)
            old_row = {x: i + 1 for i, x in enumerate(old)}
            pairs = [(j + 1, old_row[x]) for j, x in enumerate(new) if x in old_row]
            param[0] = src[0]
            if new_rows == "mean" and len(old):
                fresh = [j + 1 for j, x in enumerate(new) if x not in old_row]
                if fresh:
                    param[torch.tensor(fresh)] = src[1:].mean(0).to(param.dtype)
            if pairs:
                dst, srcrows = zip(*pairs)
                param[torch.tensor(dst)] = src[torch.tensor(srcrows)].to(param.dtype)
            report[vocab_name] = {"carried": len(pairs), "new": len(new) - len(pairs),
                                  "dropped": len(old) - len(pairs)}
    return report


def report_text(report: dict[str, dict[str, int]]) -> str:
    """One line per vocabulary: ``user: 0 carried, 192 new, 751 dropped``."""
    return "\n".join(f"  {name:<16} {r['carried']:>7,} carried {r['new']:>7,} new {r['dropped']:>7,} dropped"
                     for name, r in report.items())
