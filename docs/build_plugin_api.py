"""Fill the reference parts of docs/plugin_api.md from the code.

The page is written by hand: the prose, the reading order and the examples.
Between ``<!-- api NAME ... -->`` and ``<!-- /api -->`` it holds, for each
name, what the code says: the signature, the docstring, a dataclass's
fields, a class's documented attributes and public methods. This script
rewrites those parts, so the reference never drifts from the code::

    python docs/build_plugin_api.py          # rewrite the page
    python docs/build_plugin_api.py --check  # exit 1 if it is out of date

``NAME`` is a public name of ``ft`` (``Backbone``) or a hook spec of
``ft.hookspecs`` (``ft_backbones``).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import ft
from ft import hookspecs

PAGE = Path(__file__).with_name("plugin_api.md")
BLOCK = re.compile(r"(<!-- api (?P<names>[^>]*?) -->\n)(?P<body>.*?)(<!-- /api -->)", re.S)


def markdown(doc: str | None) -> str:
    """A docstring as Markdown: roles and ``literals`` to backticks, ``::``
    literal blocks to fenced code."""
    if not doc:
        return ""
    text = inspect.cleandoc(doc)
    text = re.sub(r":(?:class|func|meth|data|attr|mod|exc):`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            stripped = line.rstrip()[:-2].rstrip()
            if stripped:
                out.append(stripped + ":")
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            body = inspect.cleandoc("\n".join(block))
            fence = "toml" if body.lstrip().startswith("[") else "python"
            out += ["", f"```{fence}", body, "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def attribute_docs(cls: type) -> dict[str, tuple[str, str]]:
    """``name -> (declaration, doc)`` for class attributes under a ``#:`` comment."""
    try:
        source = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in source[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*(:[^=]+)?(=\s*(.+))?$", stripped) if comment else None
        if match and len(line) - len(line.lstrip()) == 4:
            found[match.group(1)] = (stripped, " ".join(comment))
        comment = []
    return found


def _annotation(value: Any) -> str:
    """An annotation as written in the code (they are strings under
    ``from __future__ import annotations``)."""
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    while len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def signature(obj: Any, name: str, drop_self: bool = False) -> str:
    """``name(params) -> ret`` as the code declares it."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    parts, star_done = [], False
    params = list(sig.parameters.values())
    if drop_self and params and params[0].name in ("self", "cls"):
        params = params[1:]
    for p in params:
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        star_done = star_done or p.kind is p.VAR_POSITIONAL
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}" if p.annotation is not p.empty else f"={p.default!r}"
        parts.append(text)
    ret = f" -> {_annotation(sig.return_annotation)}" if sig.return_annotation is not sig.empty else ""
    return f"{name}({', '.join(parts)}){ret}"


def _value(value: Any) -> str:
    """A default value as code: a class by its name, anything else by repr."""
    return value.__name__ if inspect.isclass(value) else repr(value)


def _cell(text: str) -> str:
    """Table-cell text: a ``|`` would end the cell."""
    return text.replace("|", "\\|")


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(markdown(doc).split("\n\n")[0].split())


def class_entry(name: str, cls: type) -> list[str]:
    """A class: declaration, docstring, fields or attributes, methods."""
    bases = ", ".join(("nn." if b.__module__.startswith("torch.nn") else "") + b.__name__
                      for b in cls.__bases__ if b is not object and not b.__name__.startswith("_"))
    lines = [f"```python\nclass ft.{name}({bases})\n```" if bases else f"```python\nclass ft.{name}\n```", ""]
    lines += [markdown(cls.__doc__), ""]
    if dataclasses.is_dataclass(cls):
        lines += ["| field | type | default |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            default = ("required" if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                       else f"`{_value(f.default)}`" if f.default is not dataclasses.MISSING
                       else f"`{f.default_factory.__name__}()`")
            lines.append(f"| `{f.name}` | `{_cell(_annotation(f.type))}` | {_cell(default)} |")
        lines.append("")
    elif "model_fields" in dir(cls) and getattr(cls, "model_fields", None):
        lines += ["| field | type | default |", "|---|---|---|"]
        for fname, info in cls.model_fields.items():
            lines.append(f"| `{fname}` | `{_cell(_annotation(info.annotation))}` | `{_cell(repr(info.default))}` |")
        lines.append("")
    attrs = attribute_docs(cls)
    if attrs:
        lines += ["Attributes:", ""]
        lines += [f"- `{decl}` — {markdown(doc)}" for decl, doc in attrs.values()]
        lines.append("")
    methods = []
    for mname, member in own_members(cls).items():
        if mname.startswith("_") and mname != "__init__":
            continue
        func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        if not callable(func) or mname in attrs or mname in fields or inspect.isclass(func):
            continue
        if mname == "__init__":
            if dataclasses.is_dataclass(cls) or func is object.__init__:
                continue
            lines[0] = lines[0].replace("\n```", f"\n\nft.{signature(func, name, drop_self=True)}\n```")
            continue
        shown = mname if isinstance(member, property) else signature(func, mname, drop_self=True)
        methods.append(f"- `{shown}`" + (" (property)" if isinstance(member, property) else "")
                       + (f" — {first_paragraph(func.__doc__)}" if func.__doc__ else ""))
    if methods:
        lines += ["Methods:", "", *methods, ""]
    return lines


def own_members(cls: type) -> dict[str, Any]:
    """``vars(cls)`` with the members of its private bases (``_TrainerSetup``
    and ``_TrainerState`` are parts of ``Trainer``, split out of its file),
    the subclass's last."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is cls or klass.__name__.startswith("_"):
            members.update(vars(klass))
    return members


def value_entry(name: str, value: Any, module: str) -> list[str]:
    """A constant or type alias: its assignment and its ``#:`` comment."""
    source = inspect.getsource(sys.modules[module]).splitlines()
    for i, line in enumerate(source):
        if re.match(rf"{re.escape(name)}\s*(:[^=]+)?=", line):
            comment = []
            j = i - 1
            while j >= 0 and source[j].startswith("#:"):
                comment.insert(0, source[j][2:].strip())
                j -= 1
            return [f"```python\nft.{line.strip()}\n```", "", markdown(" ".join(comment)), ""]
    return [f"`ft.{name}`", ""]


def entry(name: str) -> str:
    """The reference entry for one public name or hook spec."""
    if name.startswith("ft_"):
        func = getattr(hookspecs, name)
        lines = [f"### `{name}`", "", f"```python\n@ft.hookimpl\ndef {signature(func, name)}\n```", "",
                 markdown(func.__doc__), ""]
        return "\n".join(lines)
    value = getattr(ft, name)
    module = f"ft.{ft._LAZY[name]}" if name in ft._LAZY else "ft"
    if inspect.isclass(value) and not getattr(value, "__origin__", None):
        body = class_entry(name, value)
    elif inspect.isfunction(value):
        body = [f"```python\nft.{signature(value, name)}\n```", "", markdown(value.__doc__), ""]
    else:
        body = value_entry(name, value, module)
    return "\n".join([f"### `ft.{name}`", "", *body])


def render(page: str) -> str:
    """The page with every reference block filled from the code."""
    def fill(match: re.Match) -> str:
        names = match.group("names").split()
        body = "\n".join(entry(n).rstrip() + "\n" for n in names)
        return match.group(1) + "\n" + re.sub(r"\n{3,}", "\n\n", body) + "\n" + match.group(4)

    return BLOCK.sub(fill, page)


def main(argv: list[str]) -> int:
    """Rewrite the page, or with ``--check`` say whether it is current."""
    page = PAGE.read_text()
    fresh = render(page)
    if "--check" in argv:
        if fresh != page:
            print(f"{PAGE} is out of date: run python docs/build_plugin_api.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
