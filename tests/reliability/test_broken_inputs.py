"""Runs the broken-input corpus (corpus.py): every case gives its exit code,
says its words, and never shows a traceback.

Cases run in-process through ``ft.cli.main`` (any exception other than the
``SystemExit`` of argparse escaping it is a traceback, and fails the case);
cases that need a real entry-point plugin run ``ft`` as a process. A failing
case names the command, what went wrong and the end of the output.
"""

from __future__ import annotations

import subprocess
import sys
import traceback

import pytest

from corpus import CASES, CATEGORIES, GOOD_DATA
from corpus_base import Case, Workspace, Word
from corpus_data import DOMAINS, data_case
from corpus_runs import damaged

FT = [sys.executable, "-m", "ft.cli"]


def _found(word: Word, output: str, names: dict[str, str]) -> bool:
    choices = word if isinstance(word, tuple) else (word,)
    return any(choice.format(**names).lower() in output for choice in choices)


def _shown(word: Word, names: dict[str, str]) -> str:
    choices = word if isinstance(word, tuple) else (word,)
    return " | ".join(repr(c.format(**names)) for c in choices)


def _in_process(argv: list[str]) -> tuple[int | None, str | None]:
    """Exit code of ``ft ARGV`` in this process, or None and the exception
    that escaped it (its line first, then the innermost frames)."""
    from ft.cli import main

    try:
        return main(argv), None
    except SystemExit as exc:  # argparse's own usage errors (exit 2, a usage line, no traceback)
        return (exc.code if isinstance(exc.code, int) else 1), None
    except Exception as exc:  # noqa: BLE001 - any escaping exception is the traceback a user would see
        frames = traceback.format_exception(exc)[-4:-1]
        return None, "".join(traceback.format_exception_only(exc)).strip() + "\n" + "".join(frames)


def run_case(case: Case, request, tmp_path, monkeypatch, capsys) -> None:
    """Build the case's input, run ``ft`` on it and check everything it promises."""
    reason = case.skip_if() if case.skip_if else None
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)  # a relative output.root ("runs") lands in the case's folder
    finished = request.getfixturevalue("finished_run") if case.needs_run else None  # before the registry
    ws = Workspace(tmp_path, finished=(lambda: finished) if finished else None)
    if case.subprocess:
        argv = case.build(ws)
        proc = subprocess.run([*FT, *argv], env=ws.state.get("env"), cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        code, out, err, escaped = proc.returncode, proc.stdout, proc.stderr, None
    else:
        registry = request.getfixturevalue("registry")
        for name, plugin in case.plugins:
            registry.register(plugin(), name)
        argv = case.build(ws)
        capsys.readouterr()
        code, escaped = _in_process(argv)
        out, err = capsys.readouterr()
    problems = []
    if escaped is not None:
        problems.append(f"traceback: {escaped}")
    if "Traceback" in err:
        problems.append("stderr has a traceback")
    if code != case.exit and escaped is None:
        problems.append(f"exit {code}, expected {case.exit}")
    output = (out + err).lower()
    missing = [_shown(w, ws.names) for w in case.words if not _found(w, output, ws.names)]
    if missing:
        problems.append("the output lacks " + ", ".join(missing))
    if case.after is not None:
        problem = case.after(ws)
        if problem:
            problems.append(problem)
    command = " ".join(["ft", *argv]).replace(str(tmp_path), "<tmp>")
    tail = (err.strip() + "\n" + out.strip()).strip()[-2000:].replace(str(tmp_path), "<tmp>")
    report = f"{case.id}: {command}\n  " + "\n  ".join(problems) + f"\n--- output ---\n{tail}"
    assert not problems, report.replace(str(tmp_path), "<tmp>")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_broken_input(case, request, tmp_path, monkeypatch, capsys):
    run_case(case, request, tmp_path, monkeypatch, capsys)


# -- controls: the intact inputs the cases damage work, so each case fails for its damage alone --------


@pytest.mark.parametrize("fmt", sorted(GOOD_DATA))
def test_intact_data_validates(fmt, request, tmp_path, monkeypatch, capsys):
    run_case(data_case(fmt, "intact", GOOD_DATA[fmt], ("valid",), exit=0), request, tmp_path, monkeypatch, capsys)


@pytest.mark.parametrize("command", ["eval", "predict", "export", "resume"])
def test_intact_run_serves(command, request, tmp_path, monkeypatch, capsys):
    run_case(damaged("intact", lambda run, ws: None, command, 0), request, tmp_path, monkeypatch, capsys)


# -- the corpus itself ----------------------------------------------------------------------------


def test_corpus_has_at_least_100_cases():
    """Shrinking the corpus below 100 cases fails; ids are unique; every
    category and every dataset format (through ft validate and ft run) is covered."""
    assert len(CASES) >= 100, f"the corpus has {len(CASES)} cases"
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids), sorted({i for i in ids if ids.count(i) > 1})
    assert all(len(cases) >= 10 for cases in CATEGORIES.values()), {k: len(v) for k, v in CATEGORIES.items()}
    for fmt in DOMAINS:
        mine = [i for i in ids if i.startswith(f"data-{fmt}-")]
        assert any(not i.endswith("-run") for i in mine), f"no ft validate case for {fmt}"
        assert any(i.endswith("-run") for i in mine), f"no ft run case for {fmt}"
    assert len(GOOD_DATA) == len(DOMAINS)
