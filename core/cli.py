"""The ``ft`` command. Imports torch only inside the commands that need it.

User errors (:class:`ft.FtError`) print one clear message and exit with 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

EPILOG = """\
examples:
  ft run recipes/speech_accent.toml
  ft run recipes/speech_accent.toml --set train.epochs=3 --set optim.lr=3e-4
  ft run recipes/speech_accent.toml --resume
  ft run recipes/speech_accent.toml --log tensorboard
  ft run recipes/speech_accent.toml --nproc-per-node 2
  ft validate recipes/speech_accent.toml
  ft show recipes/speech_accent.toml
  ft plugins
  ft sweep recipes/speech_accent.toml --trials 16
  ft lr-find recipes/fashion_mnist.toml
  ft eval runs/speech_accent-20261125-101500 --split test
  ft compare runs/speech_accent-*
  ft predict runs/speech_accent-20261125-101500 clip.wav
  ft export runs/speech_accent-20261125-101500 exported/accent
  ft new plugin tabular
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ft", description="ftkit: fine-tune pretrained models from TOML recipes.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def recipe_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.add_argument("recipe", help="path to a TOML recipe")
        c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key, e.g. --set train.epochs=3 (repeatable)")
        return c

    r = recipe_cmd("run", "train what a recipe describes")
    r.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue the recipe's latest run (or RUN_DIR) from its last checkpoint")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument("--log", dest="loggers", action="append", default=[], metavar="NAME",
                   help="also record the run with logger NAME (tensorboard, mlflow, or a plugin's; repeatable); "
                        "adds to the recipe's [log] backends")
    dist = r.add_argument_group("several processes (see docs/distributed.md)")
    dist.add_argument("--nproc-per-node", type=int, metavar="N",
                      help="start N ranks on this node (through torch.distributed.run, as torchrun does)")
    dist.add_argument("--nnodes", type=int, default=1, metavar="M", help="nodes in the job (default 1)")
    dist.add_argument("--node-rank", type=int, metavar="K", help="this node's place, 0..M-1 (static rendezvous)")
    dist.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                      help="where the nodes meet (the same on every node; with --node-rank: node 0's address)")
    sw = recipe_cmd("sweep", "search hyperparameters over the recipe's [sweep] space with Optuna (docs/sweeps.md)")
    sw.add_argument("--trials", type=int, metavar="N", help="trials the study should reach, counting those already "
                                                             "finished (default: the recipe's sweep.trials)")
    sw.add_argument("--timeout", type=float, metavar="SECONDS", help="start no new trial after this many seconds")
    sw.add_argument("--sampler", choices=["tpe", "random", "grid"], help="how trials are chosen (default tpe)")
    sw.add_argument("--pruner", choices=["median", "hyperband", "none"],
                    help="stop bad trials early on their per-epoch validation figures (default median)")
    sw.add_argument("--storage", metavar="URL", help="a database shared by workers on any machine, e.g. "
                                                     "postgresql://user@host/db (default: SQLite in the sweep folder)")
    sw.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: the recipe's name)")
    sw.add_argument("--workers", type=int, default=1, metavar="K",
                    help="trials run at once on this machine, the CPU threads or GPUs split between them")
    sw.add_argument("--dir", dest="sweep_dir", metavar="DIR",
                    help="the sweep folder (default <output.root>/<recipe>-sweep; running again continues it)")
    sw.add_argument("--quiet", action="store_true", help="no progress output from the trials")
    lf = recipe_cmd("lr-find", "the learning-rate range test: suggest optim.lr for a recipe (docs/lr_find.md)")
    lf.add_argument("--steps", type=int, default=100, metavar="N", help="steps of growing learning rate (default 100)")
    lf.add_argument("--start-lr", type=float, default=1e-7, metavar="LR", help="first learning rate (default 1e-7)")
    lf.add_argument("--end-lr", type=float, default=10.0, metavar="LR", help="last learning rate (default 10)")
    lf.add_argument("--out", metavar="DIR", help="where lr_find.png and lr_find.csv go "
                                                 "(default <output.root>/<recipe>-lr-find)")
    recipe_cmd("validate", "check a recipe (keys, types, names, paths) without training")
    recipe_cmd("show", "print the resolved recipe with every default filled in")

    pl = sub.add_parser("plugins", help="list plugins, what they provide and whether they loaded")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ev = sub.add_parser("eval", help="evaluate a finished run's model on a data split")
    ev.add_argument("run_dir")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--json", action="store_true")

    cmp = sub.add_parser("compare", help="one table of finished runs (recipe keys that differ, best epoch, "
                                         "metrics, time, trainable weights) and their curves in one plot")
    cmp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (or a sweep folder)")
    cmp.add_argument("--out", metavar="PATH", help="where the combined curves plot goes (default compare.png)")
    cmp.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ex = sub.add_parser("export", help="write a run's model for inference (LoRA merged) as a loadable folder")
    ex.add_argument("run_dir")
    ex.add_argument("out_dir")

    pr = sub.add_parser("predict", help="predict with a finished run's model (paths or texts)")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="+", help="input files or texts")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--json", action="store_true")

    new = sub.add_parser("new", help="start something new from a template (ft new plugin NAME)")
    templates = new.add_subparsers(dest="template", metavar="TEMPLATE", required=True)
    plugin_cmd = templates.add_parser("plugin", help="write a plugin package ft-NAME/ (backbone, dataset format, "
                                                     "recipe, tests) that installs and runs as it is")
    plugin_cmd.add_argument("name", metavar="NAME",
                            help="a lowercase identifier: package ft_NAME, names NAME_mlp, NAME_csv")
    plugin_cmd.add_argument("--dir", default=".", metavar="DIR", help="folder to write ft-NAME/ into (default: here)")
    return p


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"ftkit {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return 0
    from .errors import FtError

    rank = int(os.environ.get("RANK", "0"))
    try:
        return COMMANDS[args.command](args) or 0
    except FtError as exc:
        if args.debug:
            raise
        if rank == 0 or not exc.all_ranks:  # an error every rank shares is printed once
            prefix = f"ft: [rank {rank}] error: " if rank else "ft: error: "
            print(f"{prefix}{exc}", file=sys.stderr)
            print("ft: (run with --debug for the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if rank == 0 and args.command == "run":  # ft sweep says itself how to continue
            print("ft: interrupted; the last checkpoint is intact (resume with --resume)", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # leave the process group this run joined
            from .distributed import shutdown

            shutdown()


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if "torch.distributed" in sys.modules and argv is None:
        from .distributed import end_worker, launched

        if launched():  # a torchrun worker ends without C++ teardown (see end_worker)
            end_worker(code)
    return code


def _run(args) -> int:
    if args.nproc_per_node is not None and "LOCAL_RANK" not in os.environ:
        return _launch(args)
    from .engine import run

    run(args.recipe, args.overrides, resume=args.resume, quiet=args.quiet, loggers=args.loggers)
    return 0


def _launch(args) -> int:
    """Check the recipe once here, then start the ranks (each runs ``ft run`` without the launcher flags)."""
    from .errors import FtError
    from .launch import LaunchOptions, launch
    from .recipe import load_recipe

    options = LaunchOptions(args.nproc_per_node, args.nnodes, args.node_rank, args.rdzv_endpoint)
    try:
        options.torchrun_args()
    except ValueError as exc:
        raise FtError(str(exc), where="ft run") from None
    load_recipe(args.recipe, args.overrides, loggers=args.loggers)
    worker = ["run", args.recipe, *(f"--set={o}" for o in args.overrides)]
    if args.resume:
        worker += ["--resume"] if args.resume is True else ["--resume", str(args.resume)]
    if args.quiet:
        worker.append("--quiet")
    worker += [f"--log={name}" for name in args.loggers]
    if args.debug:
        worker.insert(0, "--debug")
    return launch(options, worker)


def _validate(args) -> int:
    from .recipe import load_recipe

    from .engine import check_data

    recipe = load_recipe(args.recipe, args.overrides)
    described = check_data(recipe)
    print(f"ft: {args.recipe} is valid: backbone {recipe.backbone.name!r}, data {recipe.data.name!r}, "
          f"head {recipe.head.name!r}, freeze {recipe.freeze.name!r}")
    if described:
        print(f"ft: data: {described}")
    return 0


def _show(args) -> int:
    from .recipe import load_recipe

    print(load_recipe(args.recipe, args.overrides).to_toml(), end="")
    return 0


def _plugins(args) -> int:
    from ._registry import get_registry

    registry = get_registry()
    records = [r.to_json() for r in registry.records.values()]
    if args.json:
        print(json.dumps({"plugins": records, "conflicts": registry.conflicts}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ft plugins")
    for col in ("plugin", "distribution", "version", "provides", "status"):
        table.add_column(col)
    for r in records:
        provides = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in r["provides"].items()) or "-"
        status = r["status"] if not r["error"] else f"{r['status']}: {r['error']}"
        table.add_row(r["plugin"], r["distribution"], r["version"], provides, status)
    console = Console(width=max(100, Console().width))
    console.print(table)
    for conflict in registry.conflicts:
        console.print(f"[red]conflict:[/red] {conflict}")
    return 0


def _eval(args) -> int:
    from .engine import evaluate_run

    metrics = evaluate_run(args.run_dir, args.split)  # under torchrun: sharded, the same on every rank
    if int(os.environ.get("RANK", "0")):
        return 0
    if args.json:
        print(json.dumps(metrics))
    else:
        print(f"{args.split}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return 0


def _export(args) -> int:
    from .engine import export_run

    out = export_run(args.run_dir, args.out_dir)
    print(f"ft: exported {args.run_dir} to {out} (ft predict {out} ...)")
    return 0


def _predict(args) -> int:
    from .engine import predict_run

    results = predict_run(args.run_dir, args.inputs, top_k=args.top_k)
    if args.json:
        print(json.dumps([{"input": i, "top": [{"label": l, "score": s} for l, s in r]}
                          for i, r in zip(args.inputs, results)]))
        return 0
    for raw, preds in zip(args.inputs, results):
        shown = ", ".join(f"{label} {score:.3f}" for label, score in preds)
        print(f"{raw}: {shown}")
    return 0


def _sweep(args) -> int:
    from .sweep import sweep

    sweep(args.recipe, args.overrides, trials=args.trials, timeout=args.timeout, sampler=args.sampler,
          pruner=args.pruner, storage=args.storage, study=args.study, workers=args.workers,
          sweep_dir=args.sweep_dir, quiet=args.quiet)
    return 0


def _lr_find(args) -> int:
    from .lr_find import lr_find

    lr_find(args.recipe, args.overrides, steps=args.steps, start_lr=args.start_lr, end_lr=args.end_lr,
            out=args.out)
    return 0


def _compare(args) -> int:
    from .compare import compare

    compare(args.run_dirs, out=args.out, as_json=args.json)
    return 0


def _new(args) -> int:
    from .scaffold import new_plugin

    root = new_plugin(args.name, args.dir)
    print(f"ft: wrote the plugin package {root}\n"
          f"next:\n"
          f"  pip install -e {root}\n"
          f"  ft plugins\n"
          f"  cd {root} && ft run recipes/{args.name}_example.toml\n"
          f"  python -m pytest tests -q")
    return 0


COMMANDS = {"run": _run, "sweep": _sweep, "lr-find": _lr_find, "validate": _validate, "show": _show,
            "plugins": _plugins, "eval": _eval, "compare": _compare, "export": _export, "predict": _predict,
            "new": _new}


if __name__ == "__main__":
    sys.exit(main())
