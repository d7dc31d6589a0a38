"""The ``[sweep]`` recipe section: what ``ft sweep`` searches, and how.

Plain keys are the sweep's settings (:class:`SweepSettings`); quoted dotted
keys are recipe keys to search, each with its range or choices::

    [sweep]
    trials = 16
    "optim.lr" = { low = 1e-5, high = 1e-2, log = true }
    "train.batch_size" = { low = 16, high = 64, step = 16 }   # ints when low and high are
    "freeze.strategy" = ["full", "lp_ft", "lora"]
    "freeze.r" = { low = 4, high = 32, log = true, when = { "freeze.strategy" = "lora" } }

A ``when`` table makes a key conditional: it is searched (and set) only in
trials whose named categorical keys take one of the given values. Optuna is
not imported here: a recipe with a ``[sweep]`` section validates without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

from pydantic import Field, model_validator

from .errors import FtError, did_you_mean
from .specs import Options

#: the keys a range or choices table may hold
SPEC_KEYS = ("low", "high", "log", "step", "choices", "when")
EXAMPLE = ('[sweep]\ntrials = 16\n"optim.lr" = { low = 1e-5, high = 1e-2, log = true }\n'
           '"freeze.strategy" = ["full", "lora"]')


class SweepSettings(Options):
    """The plain keys of ``[sweep]`` (``ft sweep`` options override them)."""

    trials: int = Field(16, ge=1, description="finished (complete + pruned) trials the study reaches, over every "
                                              "worker")
    timeout: float | None = Field(None, gt=0, description="a worker starts no new trial after this many seconds")
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    seed: int | None = Field(None, description="the sampler's seed (default train.seed)")
    startup_trials: int | None = Field(
        None, ge=1, description="tpe: trials drawn at random before the model of good and bad trials is used "
                                "(default a quarter of the trials, 2 to 10)")
    prune_startup_trials: int = Field(3, ge=0, description="median: complete trials before any trial is pruned")
    prune_from_epoch: int = Field(
        2, ge=1, description="median: the first epoch after which a trial may be pruned (epoch 1 of a fine-tune is "
                             "noisy, and lp_ft or gradual unfreezing look worst there)")
    heartbeat_interval: int = Field(30, ge=1, description="seconds between a running trial's signs of life in the "
                                                          "study")
    grace_period: int = Field(120, ge=1, description="a running trial silent this long is failed and retried "
                                                     "(its worker died)")
    retries: int = Field(2, ge=0, description="times a trial whose worker died is run again (an interrupted trial "
                                              "always is)")
    max_failures: int = Field(3, ge=1, description="trials in a row that raise an error before a worker gives up")
    storage: str | None = Field(None, description="a database URL shared by workers on several machines")
    study: str | None = Field(None, description="the study's name in the storage (default the recipe's name)")

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> "SweepSettings":
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period}) must be longer than heartbeat_interval "
                             f"({self.heartbeat_interval}), or every running trial looks dead")
        return self


@dataclass(frozen=True)
class Param:
    """One searched recipe key: a list of choices, or a number range."""

    key: str
    choices: tuple | None = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    #: categorical key -> the values under which this key is searched
    when: dict[str, tuple] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``"categorical"``, ``"int"`` or ``"float"``."""
        if self.choices is not None:
            return "categorical"
        ints = all(isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None)
        return "int" if ints else "float"

    @property
    def label(self) -> str:
        """How errors name it: ``sweep."optim.lr"``."""
        return f'sweep."{self.key}"'

    def active(self, chosen: dict[str, Any]) -> bool:
        """Whether this key is searched in a trial that chose ``chosen``."""
        return all(chosen.get(key) in values for key, values in self.when.items())

    def suggest(self, trial: Any) -> Any:
        """This key's value in an Optuna ``trial``."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def grid_values(self) -> list | None:
        """Every value a grid visits; None for a range without a step."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is None:
            return None
        count = round((self.high - self.low) / self.step)
        if self.kind == "int":
            return list(range(self.low, self.high + 1, self.step))
        return [round(self.low + i * self.step, 12) for i in range(count + 1)]

    def samples(self) -> list:
        """Values that stand for the whole space in validation: each choice, a range's ends."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def describe(self) -> str:
        """``optim.lr 1e-05..0.01 log``, ``freeze.strategy in full|lora``."""
        if self.choices is not None:
            text = f"{self.key} in {'|'.join(str(c) for c in self.choices)}"
        else:
            text = f"{self.key} {self.low:g}..{self.high:g}" + (" log" if self.log else "") + \
                (f" step {self.step:g}" if self.step is not None else "")
        conditions = ", ".join(f"{k} in {'|'.join(str(v) for v in vs)}" for k, vs in self.when.items())
        return text + (f" (when {conditions})" if conditions else "")

    def to_spec(self) -> Any:
        """The TOML value that wrote it."""
        if self.choices is not None and not self.when:
            return list(self.choices)
        spec: dict[str, Any] = {"choices": list(self.choices)} if self.choices is not None else \
            {"low": self.low, "high": self.high}
        if self.log:
            spec["log"] = True
        if self.step is not None:
            spec["step"] = self.step
        if self.when:
            spec["when"] = {k: list(v) for k, v in self.when.items()}
        return spec


@dataclass
class SweepSpace:
    """A validated ``[sweep]`` section: the settings and the searched keys (in order)."""

    settings: SweepSettings
    params: list[Param]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The recipe keys and values for an Optuna ``trial``: the unconditional
        keys first, then those whose condition holds."""
        chosen: dict[str, Any] = {}
        for param in sorted(self.params, key=lambda p: bool(p.when)):
            if param.active(chosen):
                chosen[param.key] = param.suggest(trial)
        return chosen

    def grid(self) -> dict[str, list]:
        """The grid sampler's search space; an :class:`FtError` when a key cannot be gridded."""
        space: dict[str, list] = {}
        for param in self.params:
            values = param.grid_values()
            if values is None:
                raise FtError(f"the grid sampler needs a step on every range: {param.label} is "
                              f"{param.low:g}..{param.high:g} without one", where="sweep.sampler",
                              hint=f'give it a step (e.g. step = {_step_example(param)}), list its values, '
                                   'or use sampler "tpe" or "random"')
            if param.when:
                raise FtError(f"the grid sampler cannot search a conditional key ({param.label} has `when`): the "
                              "grid would run trials that differ only in a value their condition leaves out",
                              where="sweep.sampler", hint='use sampler "tpe" or "random", or drop `when`')
            space[param.key] = values
        return space

    def grid_size(self) -> int:
        """How many points :meth:`grid` has."""
        return math.prod(len(v) for v in self.grid().values())

    def samples(self) -> Iterator[tuple[Param, dict[str, Any]]]:
        """``(param, overrides)`` for each value that stands for a key's space,
        with the key's condition applied and the conditional keys that value
        switches on set, as in a trial (what validation tries)."""
        for param in self.params:
            condition = {key: values[0] for key, values in param.when.items()}
            for value in param.samples():
                sample = {**condition, param.key: value}
                for other in self.params:
                    if other.when and other.key not in sample and other.active(sample):
                        sample[other.key] = other.samples()[0]
                yield param, sample

    def to_dict(self) -> dict[str, Any]:
        """The section as TOML-able values (settings with defaults, then the keys)."""
        out: dict[str, Any] = self.settings.model_dump(mode="json", exclude_none=True)
        out.update({p.key: p.to_spec() for p in self.params})
        return out


def shown(value: Any) -> str:
    """A searched value (or a figure) as messages and tables show it: 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parse_params(body: dict[str, Any], fail: Callable[..., None]) -> list[Param]:
    """The well-formed searched keys of ``[sweep]`` (its dotted keys), in
    order; each malformed one is reported through ``fail(key, message, hint)``
    (and left out, so the others are still checked)."""
    params: dict[str, Param] = {}
    for key, spec in body.items():
        param = _parse_param(key, spec, fail)
        if param is not None:
            params[key] = param
    if not body:
        fail("sweep", "no recipe key to search", 'add one, e.g. "optim.lr" = { low = 1e-5, high = 1e-2, log = true }')
    return [p for p in params.values() if _check_condition(p, params, fail)]


def _parse_param(key: str, spec: Any, fail: Callable[..., None]) -> Param | None:
    label = f'sweep."{key}"'
    if any(not part for part in key.split(".")):
        fail(label, "not a dotted recipe key", 'write "section.key", e.g. "optim.lr"')
        return None
    if isinstance(spec, list):
        return _choices(key, label, spec, {}, fail)
    if not isinstance(spec, dict):
        fail(label, f"expected a list of choices or a range table, found {spec!r}",
             f'e.g. "{key}" = {{ low = 1e-5, high = 1e-2, log = true }} or "{key}" = [1, 2, 4]')
        return None
    unknown = [k for k in spec if k not in SPEC_KEYS]
    for name in unknown:
        fail(f"{label}.{name}", "unknown key", did_you_mean(name, SPEC_KEYS))
    when = _parse_when(label, spec.get("when", {}), fail)
    if unknown or when is None:
        return None
    if "choices" in spec:
        extra = [k for k in ("low", "high", "log", "step") if k in spec]
        if extra:
            fail(label, f"give choices or a range, not both (found choices and {', '.join(extra)})")
            return None
        if not isinstance(spec["choices"], list):
            fail(f"{label}.choices", f"expected a list, found {spec['choices']!r}")
            return None
        return _choices(key, label, spec["choices"], when, fail)
    return _range(key, label, spec, when, fail)


def _choices(key: str, label: str, choices: list, when: dict, fail: Callable[..., None]) -> Param | None:
    if not choices:
        fail(label, "no choices (an empty list)", "list the values to try, e.g. [1e-4, 3e-4]")
        return None
    odd = [c for c in choices if not isinstance(c, (str, int, float, bool))]
    if odd:
        fail(label, f"choices must be strings, numbers or booleans, found {odd[0]!r}",
             "search a list-valued key through a string key it depends on, or sweep its parts")
        return None
    if len({repr(c) for c in choices}) != len(choices):
        fail(label, f"a choice is listed twice: {choices!r}")
        return None
    return Param(key, choices=tuple(choices), when=when)


def _range(key: str, label: str, spec: dict, when: dict, fail: Callable[..., None]) -> Param | None:
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        fail(label, f"missing {' and '.join(missing)}",
             "give a range (low and high, optionally log or step) or choices = [...]")
        return None
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    numbers = {"low": low, "high": high, **({"step": step} if step is not None else {})}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail(f"{label}.{name}", f"expected a finite number, found {value!r}")
            return None
    if not isinstance(log, bool):
        fail(f"{label}.log", f"expected true or false, found {log!r}")
        return None
    if low >= high:
        fail(label, f"low ({low:g}) must be below high ({high:g})")
        return None
    if log and low <= 0:
        fail(label, f"log = true needs low > 0, found low = {low:g}", "a log range spans positive numbers")
        return None
    if step is not None:
        if step <= 0:
            fail(f"{label}.step", f"must be above 0, found {step:g}")
            return None
        if log:
            fail(label, "log and step cannot be combined", "drop one: log spaces values evenly on a log scale")
            return None
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9 * max(1.0, count):
            fail(label, f"high - low ({high - low:g}) is not a whole number of steps of {step:g}",
                 f"e.g. high = {low + math.floor(count) * step:g}")
            return None
    return Param(key, low=low, high=high, log=log, step=step, when=when)


def _parse_when(label: str, when: Any, fail: Callable[..., None]) -> dict[str, tuple] | None:
    if not isinstance(when, dict):
        fail(f"{label}.when", f"expected a table of key = value(s), found {when!r}",
             'e.g. when = { "freeze.strategy" = "lora" }')
        return None
    return {key: tuple(value) if isinstance(value, list) else (value,) for key, value in when.items()}


def _check_condition(param: Param, params: dict[str, Param], fail: Callable[..., None]) -> bool:
    """A condition names an unconditional categorical key of the space, with values among its choices."""
    ok = True
    for key, values in param.when.items():
        other = params.get(key)
        where = f"{param.label}.when"
        if key == param.key:
            fail(where, "a key cannot depend on itself")
            ok = False
        elif other is None or other.choices is None:
            fail(where, f"{key!r} is not a searched list of choices",
                 "a condition names another key of [sweep] whose value is a list, e.g. "
                 '"freeze.strategy" = ["full", "lora"]' + (f" ({did_you_mean(key, params)})" if params else ""))
            ok = False
        elif other.when:
            fail(where, f"{key!r} is conditional itself", "conditions name keys that every trial searches")
            ok = False
        else:
            never = [v for v in values if v not in other.choices]
            if never:
                fail(where, f"{key} is never {never[0]!r} (its choices: {', '.join(map(repr, other.choices))})")
                ok = False
    return ok


def _step_example(param: Param) -> str:
    return f"{(param.high - param.low) / 4:g}"
