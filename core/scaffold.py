"""``ft new plugin NAME``: write a complete, installable plugin package.

The package ``ft-NAME/`` is the smallest thing a plugin author can start
from that already works end to end: a tabular example (a ``NAME_mlp``
backbone and a ``NAME_csv`` dataset format), a recipe with its data, tests
that run the conformance kit and the recipe, and a README. It uses only
ftkit's public names, so it doubles as the walkthrough's example
(CONTRIBUTING.md, "Writing a plugin package").

Only the standard library is imported here: ``ft new`` must not pay for torch.
"""

from __future__ import annotations

import keyword
import random
import re
from pathlib import Path
from string import Template

from .errors import FtError

#: what NAME may be: it becomes a Python package (``ft_NAME``), an entry-point
#: name and the prefix of the registered names, so a lowercase identifier
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def new_plugin(name: str, parent: str | Path = ".") -> Path:
    """Write the plugin package ``ft-NAME/`` into ``parent`` and return its path.

    ``NAME`` must be a lowercase Python identifier (not a keyword). The
    target folder may exist only if it is empty. Raises :class:`ft.FtError`
    otherwise, so ``ft new plugin`` exits with 2 and says what to do.
    """
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise FtError(f"{name!r} is not a valid plugin name", where="ft new plugin",
                      hint="use a lowercase Python identifier: a letter, then letters, digits or _ "
                           "(e.g. tabular); it becomes the package ft_NAME and the names NAME_mlp, NAME_csv")
    root = Path(parent).expanduser() / f"ft-{name}"
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FtError("the target folder exists and is not empty", where=str(root),
                      hint="choose another NAME or --dir, or move the folder away")
    files = plugin_files(name)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def plugin_files(name: str) -> dict[str, str]:
    """Relative path -> text of every file of the package ``ft-NAME``."""
    fill = {"name": name}
    return {
        "pyproject.toml": Template(PYPROJECT).substitute(fill),
        "README.md": Template(README).substitute(fill),
        f"ft_{name}/__init__.py": Template(INIT).substitute(fill),
        f"ft_{name}/plugin.py": Template(PLUGIN).substitute(fill),
        f"recipes/{name}_example.toml": Template(RECIPE).substitute(fill),
        "recipes/data/example.csv": example_csv(),
        "tests/test_plugin.py": Template(TESTS).substitute(fill),
    }


def example_csv(rows_per_class: int = 40, seed: int = 0) -> str:
    """The example recipe's data: four numeric columns and a label, three
    classes around well-separated centres (the same text every time)."""
    rng = random.Random(seed)
    centres = {"low": (0.0, 0.0, 1.0, 5.0), "mid": (3.0, 2.0, 1.0, 10.0), "high": (6.0, 0.0, 3.0, 15.0)}
    lines = ["f1,f2,f3,f4,label"]
    for i in range(rows_per_class * len(centres)):
        label = list(centres)[i % len(centres)]
        cells = [f"{c + rng.gauss(0, 0.6):.3f}" for c in centres[label]]
        lines.append(",".join([*cells, label]))
    return "\n".join(lines) + "\n"


PYPROJECT = '''\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "ft-$name"
version = "0.1.0"
description = "ftkit plugin $name: a ${name}_mlp backbone and a ${name}_csv dataset format"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["ftkit"]

[project.optional-dependencies]
test = ["pytest>=8"]

# ftkit finds the plugin through the `ft` entry-point group, as it finds its built-ins.
[project.entry-points.ft]
$name = "ft_$name.plugin"

[tool.setuptools]
packages = ["ft_$name"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

INIT = '''\
"""ft-$name: an ftkit plugin. The plugin itself is :mod:`ft_$name.plugin`."""
'''

PLUGIN = '''\
"""The ftkit plugin $name: a backbone and a dataset format for tabular data.

* ``${name}_mlp``: a small MLP over standardised numeric columns.
* ``${name}_csv``: a CSV file of numeric feature columns and a label column,
  split into train / val / test by a seeded shuffle.

ftkit imports this module through the entry point in pyproject.toml and
calls the functions marked ``@ft.hookimpl`` (the contract: ft/hookspecs.py).
"""

from __future__ import annotations

import csv
import hashlib
import math
import random
from pathlib import Path

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import TensorDataset

import ft
from ft.errors import DataError
from ft.specs import BackboneSpec, DatasetFormatSpec, ExistingPath, Options


# -- backbone ------------------------------------------------------------------


class MlpOptions(Options):
    """``[backbone]`` options of ``${name}_mlp``."""

    width: int = Field(64, ge=1, description="units of each hidden layer")
    depth: int = Field(2, ge=1, description="hidden layers after the input layer")
    feature_dim: int = Field(32, ge=1, description="size of the features the head sees")


class MlpBackbone(ft.Backbone):
    """Numeric columns -> features: ``stem`` (sized by the data), ``hidden``, ``out``.

    The input layer and the standardisation (the training split's column
    means and deviations) come from the data, so they are set in
    :meth:`bind_data`, which ftkit calls once the data is read (and again,
    with the saved facts, when a finished run is reloaded).
    """

    def __init__(self, options: MlpOptions):
        super().__init__()
        self.options = options
        self.feature_dim = options.feature_dim
        self.in_features = 0
        self.stem = nn.Identity()
        self.hidden = nn.Sequential(*(nn.Sequential(nn.Linear(options.width, options.width), nn.ReLU())
                                      for _ in range(options.depth)))
        self.out = nn.Sequential(nn.Linear(options.width, options.feature_dim), nn.ReLU())

    def bind_data(self, task: ft.TaskInfo, info: dict) -> None:
        """Size the input layer and keep the standardisation of the columns."""
        self.in_features = len(info["features"])
        self.stem = nn.Sequential(nn.Linear(self.in_features, self.options.width), nn.ReLU())
        self.register_buffer("mean", torch.tensor(info["mean"]))
        self.register_buffer("std", torch.tensor(info["std"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(self.stem((x - self.mean) / self.std)))

    def layer_groups(self) -> list[ft.LayerGroup]:
        """Input to output: stem, hidden0..N, out (freeze strategies split here)."""
        hidden = [(f"hidden{i}", [f"hidden.{i}"]) for i in range(len(self.hidden))]
        return ft.groups_by_prefix(self, [("stem", ["stem"]), *hidden, ("out", ["out"])])

    def describe(self) -> dict:
        return {"class": type(self).__name__, **self.options.model_dump()}


def build_mlp(options: MlpOptions, ctx: ft.BuildContext) -> MlpBackbone:
    """``${name}_mlp``. A pretrained backbone would load its weights here, from a
    local file, when ``ctx.load_pretrained`` is true."""
    return MlpBackbone(options)


# -- dataset format ------------------------------------------------------------


class CsvOptions(Options):
    """``[data]`` options of ``${name}_csv``."""

    path: ExistingPath = Field(description="CSV file: a header, numeric feature columns and a label column")
    label: str = Field("label", description="the label column; every other column is a feature")
    val_fraction: float = Field(0.2, ge=0, lt=1, description="share of rows for validation")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of rows for the test split")
    seed: int = Field(0, description="seed of the shuffle that splits the rows")


def read_table(path: Path, label: str) -> tuple[list[str], list[list[float]], list[str]]:
    """Feature column names, feature rows and labels of a CSV file.

    The one reader behind ``check`` and ``build``: any fault is a
    :class:`ft.errors.DataError` naming the file and line (the header is line 1).
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the CSV: {exc}", where=str(path), hint="save it as UTF-8 text") from None
    numbered = [(n, row) for n, row in enumerate(csv.reader(lines), 1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise DataError("the CSV is empty", where=str(path), hint=f"first line: feature names and {label!r}")
    header = [cell.strip() for cell in numbered[0][1]]
    if label not in header:
        raise DataError(f"no label column {label!r} (columns: {', '.join(header)})", where=f"{path}: line 1",
                        hint="name the label column with data.label")
    features = [c for c in header if c != label]
    if not features:
        raise DataError("no feature columns besides the label", where=f"{path}: line 1")
    rows, labels = [], []
    for line, cells in numbered[1:]:
        if len(cells) != len(header):
            raise DataError(f"{len(cells)} fields, but the header names {len(header)}", where=f"{path}: line {line}")
        values = dict(zip(header, (cell.strip() for cell in cells)))
        row = []
        for column in features:
            try:
                number = float(values[column])
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise DataError(f"column {column!r}: {values[column]!r} is not a finite number",
                                where=f"{path}: line {line}")
            row.append(number)
        if not values[label]:
            raise DataError(f"the label column {label!r} is empty", where=f"{path}: line {line}")
        rows.append(row)
        labels.append(values[label])
    if len(set(labels)) < 2:
        raise DataError(f"{len(rows)} rows but fewer than 2 classes", where=str(path),
                        hint="a classifier needs rows of at least two labels")
    return features, rows, labels


def split_rows(n: int, options: CsvOptions) -> tuple[list[int], list[int], list[int]]:
    """Row indices of train, val and test: a seeded shuffle, cut by the fractions."""
    order = list(range(n))
    random.Random(options.seed).shuffle(order)
    n_val, n_test = round(n * options.val_fraction), round(n * options.test_fraction)
    if n - n_val - n_test < 1:
        raise DataError(f"{n} rows leave no training rows after val_fraction and test_fraction",
                        where=str(options.path), hint="lower data.val_fraction or data.test_fraction")
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def check_csv(options: CsvOptions, ctx: ft.BuildContext) -> str:
    """``ft validate`` and the start of ``ft run``: read the table, describe it."""
    features, rows, labels = read_table(options.path, options.label)
    train, val, test = split_rows(len(rows), options)
    return (f"{len(rows):,} rows ({len(train)} train / {len(val)} val / {len(test)} test), "
            f"{len(features)} feature columns, {len(set(labels))} classes")


def build_csv(options: CsvOptions, backbone: ft.Backbone, ctx: ft.BuildContext) -> ft.DataBundle:
    """``${name}_csv``: the splits as ``(features, class index)`` pairs."""
    features, rows, labels = read_table(options.path, options.label)
    classes = sorted(set(labels))
    x = torch.tensor(rows, dtype=torch.float32)
    y = torch.tensor([classes.index(label) for label in labels])
    train, val, test = (torch.tensor(part, dtype=torch.long) for part in split_rows(len(rows), options))
    std = x[train].std(dim=0, unbiased=False)
    info = {"features": features, "label": options.label, "mean": x[train].mean(dim=0).tolist(),
            "std": torch.where(std > 0, std, torch.ones_like(std)).tolist()}

    def pairs(index: torch.Tensor) -> TensorDataset | None:
        return TensorDataset(x[index], y[index]) if len(index) else None

    fingerprint = hashlib.sha256(options.path.read_bytes() + options.model_dump_json().encode()).hexdigest()
    return ft.DataBundle(pairs(train), pairs(val), pairs(test), ft.TaskInfo("classification", len(classes),
                         tuple(classes)), train_eval=pairs(train), fingerprint=fingerprint, info=info)


def read_input(raw: str, options: CsvOptions, backbone: MlpBackbone) -> torch.Tensor:
    """``ft predict RUN "1.5,2,0.3,7"``: one row of feature values."""
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        values = []
    if len(values) != backbone.in_features:
        raise DataError(f"expected {backbone.in_features} comma-separated numbers, one per feature column",
                        where=f"input {raw!r}")
    return torch.tensor(values)


def write_sample(folder: Path) -> dict:
    """A tiny dataset for ``ft.testing``: writes ``sample.csv`` into ``folder``
    and returns the ``[data]`` options that read it (without ``format``)."""
    rng = random.Random(0)
    lines = ["a,b,label"] + [f"{rng.gauss(3 * (i % 2), 0.5):.3f},{rng.gauss(0, 1):.3f},{'yes' if i % 2 else 'no'}"
                             for i in range(24)]
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / "sample.csv"
    path.write_text("\\n".join(lines) + "\\n", encoding="utf-8")
    return {"path": str(path)}


# -- registration ----------------------------------------------------------------


@ft.hookimpl
def ft_backbones() -> list[BackboneSpec]:
    return [BackboneSpec("${name}_mlp", build_mlp, MlpOptions, description="small MLP over numeric columns",
                         sample_options={"width": 16, "depth": 1, "feature_dim": 8})]


@ft.hookimpl
def ft_dataset_formats() -> list[DatasetFormatSpec]:
    return [DatasetFormatSpec("${name}_csv", build_csv, CsvOptions, read_input=read_input, check=check_csv,
                              sample=write_sample, tasks=("classification",),
                              description="CSV of numeric feature columns and a label column")]
'''

RECIPE = '''\
# The $name example: a small MLP (${name}_mlp) on a CSV of four numeric columns and a label
# (data/example.csv: 120 rows, 3 classes; ${name}_csv splits them 72 train / 24 val / 24 test).
#
#   ft run recipes/${name}_example.toml
#
# Expect: test accuracy 1.0 (the classes are well apart) in a few seconds on a CPU.

[task]
type = "classification"

[data]
format = "${name}_csv"
path = "data/example.csv"  # relative to this file
label = "label"

[backbone]
name = "${name}_mlp"
width = 64
depth = 2

[head]
type = "linear"

[freeze]
strategy = "full"

[optim]
lr = 0.01
schedule = "constant"

[train]
epochs = 10
batch_size = 8
seed = 0

[output]
root = "runs"
'''

TESTS = '''\
"""ft-$name's tests: ftkit's conformance kit, and the example recipe trains."""

from __future__ import annotations

from pathlib import Path

import ft
from ft.testing import check_plugin

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "${name}_example.toml"


def test_plugin_conforms(tmp_path):
    """Every component of ft-$name checked against the contract on its sample data."""
    report = check_plugin("ft-$name", tmp_path)
    assert report == {"backbone": {"${name}_mlp": "ok"}, "dataset format": {"${name}_csv": "ok"}}


def test_example_recipe_trains(tmp_path):
    result = ft.run(RECIPE, overrides={"train.epochs": 1, "output.dir": str(tmp_path / "run")}, quiet=True)
    assert result.metrics["test"]["accuracy"] >= 0.75
'''

README = '''\
# ft-$name

An [ftkit](https://pypi.org/project/ftkit/) plugin: a `${name}_mlp` backbone (a
small MLP over numeric columns) and a `${name}_csv` dataset format (a CSV of
numeric feature columns and a label column). Written by `ft new plugin $name`
as a starting point: change `ft_$name/plugin.py` into your own components.

## Install, list, run, test

```bash
pip install -e ft-$name                      # registers the plugin (entry point in pyproject.toml)
ft plugins                                   # "$name" from distribution ft-$name, status ok
cd ft-$name
ft validate recipes/${name}_example.toml       # checks the recipe and the data, trains nothing
ft run recipes/${name}_example.toml            # trains; test accuracy 1.0 in seconds
ft predict runs/<run> "3.1,2.0,0.9,10.2"     # one row of feature values
python -m pytest tests -q                    # conformance kit + the example recipe
```

## Files

| file | what it is |
|---|---|
| `pyproject.toml` | the distribution `ft-$name`; `[project.entry-points.ft]` points ftkit at `ft_$name.plugin` |
| `ft_$name/plugin.py` | the plugin: the backbone, the dataset format and the `@ft.hookimpl` functions |
| `recipes/${name}_example.toml` | a recipe that uses both components; `recipes/data/example.csv` its data |
| `tests/test_plugin.py` | `ft.testing.check_plugin("ft-$name")` and a one-epoch run of the example recipe |

The contract every component follows is ftkit's `ft/hookspecs.py`; its
CONTRIBUTING.md ("Writing a plugin package") walks through each piece and
has a checklist per kind of component.
'''
