"""The ``ft`` command. Imports torch only inside the commands that need it.

User errors (:class:`ft.FtError`) print one clear message and exit with 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
examples:
  ft run recipes/speech_accent.toml
  ft run recipes/speech_accent.toml --set train.epochs=3 --set optim.lr=3e-4
  ft run recipes/speech_accent.toml --resume
  ft validate recipes/speech_accent.toml
  ft show recipes/speech_accent.toml
  ft plugins
  ft eval runs/speech_accent-20261125-101500 --split test
  ft predict runs/speech_accent-20261125-101500 clip.wav
  ft export runs/speech_accent-20261125-101500 exported/accent
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
    recipe_cmd("validate", "check a recipe (keys, types, names, paths) without training")
    recipe_cmd("show", "print the resolved recipe with every default filled in")

    pl = sub.add_parser("plugins", help="list plugins, what they provide and whether they loaded")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a table")

    ev = sub.add_parser("eval", help="evaluate a finished run's model on a data split")
    ev.add_argument("run_dir")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--json", action="store_true")

    ex = sub.add_parser("export", help="write a run's model for inference (LoRA merged) as a loadable folder")
    ex.add_argument("run_dir")
    ex.add_argument("out_dir")

    pr = sub.add_parser("predict", help="predict with a finished run's model (paths or texts)")
    pr.add_argument("run_dir")
    pr.add_argument("inputs", nargs="+", help="input files or texts")
    pr.add_argument("--top-k", type=int, default=3)
    pr.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
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

    try:
        return COMMANDS[args.command](args) or 0
    except FtError as exc:
        if args.debug:
            raise
        print(f"ft: error: {exc}", file=sys.stderr)
        if not getattr(args, "debug", False):
            print("ft: (run with --debug for the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ft: interrupted; the last checkpoint is intact (resume with --resume)", file=sys.stderr)
        return 130


def _run(args) -> int:
    from .engine import run

    run(args.recipe, args.overrides, resume=args.resume, quiet=args.quiet)
    return 0


def _validate(args) -> int:
    from .recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    print(f"ft: {args.recipe} is valid: backbone {recipe.backbone.name!r}, data {recipe.data.name!r}, "
          f"head {recipe.head.name!r}, freeze {recipe.freeze.name!r}")
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

    metrics = evaluate_run(args.run_dir, args.split)
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


COMMANDS = {"run": _run, "validate": _validate, "show": _show, "plugins": _plugins, "eval": _eval,
            "export": _export, "predict": _predict}


if __name__ == "__main__":
    sys.exit(main())
