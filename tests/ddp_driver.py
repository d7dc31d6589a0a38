"""Runs a list of jobs on every rank (under torchrun) or in one process, for
the distributed tests (see ddp_testkit.py).

    python ddp_driver.py jobs.json            # or: torchrun ... ddp_driver.py jobs.json

Each job: ``{"name", "recipe", "overrides": {}, "action": "run" | "eval" |
"resume", "split": "test"}``. Each rank writes ``<name>.rank<R>.json`` (steps,
stop reason, metrics, run directory) and ``<name>.rank<R>.safetensors`` (its
final weights) into the job file's ``out`` folder.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from safetensors.torch import save_file

import ft
import ft.distributed
from ft import _registry


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    rank = int(os.environ.get("RANK", "0"))
    (out / f"pid.rank{rank}").write_text(str(os.getpid()))  # for tests that signal one rank
    import toy_plugin

    for job in spec["jobs"]:
        _registry.reset_registry()
        _registry.get_registry().register(toy_plugin, "toy")
        record: dict = {"rank": rank}
        action = job.get("action", "run")
        try:
            if action == "eval":
                record["metrics"] = ft.evaluate_run(job["run_dir"], job.get("split", "test"))
            else:
                result = ft.run(job["recipe"], job.get("overrides") or {}, quiet=True,
                                resume=action == "resume")
                record.update(steps=result.summary["steps"], stopped=result.summary["stopped"],
                              metrics=result.metrics, run_dir=str(result.run_dir),
                              epochs_run=result.summary["epochs_run"])
                state = {k: v.detach().cpu().contiguous() for k, v in whole_state(result.model).items()}
                save_file(_unshared(state), str(out / f"{job['name']}.rank{rank}.safetensors"))
        except KeyboardInterrupt:
            record["interrupted"] = True
        except ft.FtError as exc:
            record["error"] = str(exc)
        (out / f"{job['name']}.rank{rank}.json").write_text(json.dumps(record, default=str))
    if ft.distributed.launched():
        ft.distributed.end_worker(0)  # as `ft` ends its workers
    ft.distributed.shutdown()
    return 0


def whole_state(model) -> dict:
    """The model's weights on this rank, gathered from every rank if sharded (FSDP)."""
    from ft.parallel import is_sharded

    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def _unshared(state: dict) -> dict:
    """safetensors refuses tensors that share memory (tied weights): copy repeats."""
    seen, out = set(), {}
    for key, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr()
        out[key] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
