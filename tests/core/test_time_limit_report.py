"""A run that train.time_limit cut short says so plainly, in the console,
summary.json and MODEL_CARD.md; a run that ran all its epochs says nothing."""

from __future__ import annotations

import json
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import ft
from ft.stopping import time_limit_note

CUT = "stopped by time_limit after 0 of 3 epochs and 1 of 15 steps of epoch 1: this is not the recipe's result"


def test_the_note_names_completed_and_planned_epochs_and_only_time_limit_gets_one():
    assert time_limit_note("time_limit", 5, 20) == "stopped by time_limit after 5 of 20 epochs: " \
                                                   "this is not the recipe's result"
    assert time_limit_note("time_limit", 5, 20, partial_steps=7, steps_per_epoch=30) == (
        "stopped by time_limit after 5 of 20 epochs and 7 of 30 steps of epoch 6: this is not the recipe's result")
    # max_steps and early stopping are budgets the recipe chose; all epochs run means nothing was cut
    for stopped in ("epochs", "max_steps", "early_stopping", "interrupted"):
        assert time_limit_note(stopped, 5, 20) is None
    assert time_limit_note("time_limit", 20, 20) is None


def test_a_run_cut_by_time_limit_says_so_everywhere(registry, make_recipe, capsys):
    # a limit this small stops right after the first optimizer step, deterministically
    result = ft.run(make_recipe(train={"epochs": 3, "time_limit": 1e-9}))
    console = capsys.readouterr().out
    summary = json.loads((result.run_dir / "summary.json").read_text())

    assert summary["stopped"] == "time_limit"
    assert (summary["epochs_completed"], summary["epochs_planned"], summary["steps"]) == (0, 3, 1)
    assert summary["epochs_run"] == 1  # the cut epoch is still scored
    assert summary["note"] == CUT and result.summary["note"] == CUT
    assert f"ft: {CUT}" in console.splitlines()
    card = (result.run_dir / "MODEL_CARD.md").read_text()
    results = card[card.index("## Results"):]
    assert results.splitlines()[1] == f"**Warning: {CUT}.**"  # first under the heading, above the table


def test_a_run_that_finishes_has_no_note(registry, make_recipe, capsys):
    result = ft.run(make_recipe(train={"epochs": 2, "time_limit": 3600}))
    console = capsys.readouterr().out
    summary = json.loads((result.run_dir / "summary.json").read_text())

    assert summary["stopped"] == "epochs" and summary["note"] is None
    assert (summary["epochs_completed"], summary["epochs_planned"], summary["epochs_run"]) == (2, 2, 2)
    assert "time_limit" not in console
    assert "Warning" not in (result.run_dir / "MODEL_CARD.md").read_text()


def test_resuming_a_cut_run_to_its_end_clears_the_note(registry, make_recipe):
    recipe = make_recipe(train={"epochs": 3, "time_limit": 1e-9})
    assert ft.run(recipe, quiet=True).summary["note"] == CUT
    resumed = ft.run(recipe, overrides={"train.time_limit": 3600}, quiet=True, resume=True)
    assert resumed.summary["stopped"] == "epochs" and resumed.summary["note"] is None
    assert resumed.summary["epochs_completed"] == 3
    assert "Warning" not in (resumed.run_dir / "MODEL_CARD.md").read_text()


class SlowLastItem(Dataset):
    """40 points in a fixed order; fetching the last one a second time (the
    last batch of epoch 2) takes ``pause`` seconds, so a time limit shorter
    than that falls on the last step of epoch 2."""

    def __init__(self, pause: float):
        torch.manual_seed(0)
        self.x, self.y = torch.randn(40, 4), torch.randn(40, 1)
        self.pause, self.last_fetches = pause, 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        if i == len(self) - 1:
            self.last_fetches += 1
            if self.last_fetches == 2:
                time.sleep(self.pause)
        return self.x[i], self.y[i]


def _fit_until_slow_batch(epochs: int) -> ft.FitResult:
    trainer = ft.Trainer(nn.Linear(4, 1), DataLoader(SlowLastItem(pause=1.5), batch_size=10),
                         loss_fn=nn.functional.mse_loss,
                         train={"epochs": epochs, "time_limit": 1.0, "progress": False}, quiet=True)
    return trainer.fit()


def test_a_limit_at_an_epoch_boundary_counts_whole_epochs():
    fit = _fit_until_slow_batch(epochs=5)
    assert (fit.stopped, fit.epochs_completed, fit.epochs_planned, fit.steps) == ("time_limit", 2, 5, 8)
    assert fit.note == "stopped by time_limit after 2 of 5 epochs: this is not the recipe's result"
    assert fit.summary["note"] == fit.note and fit.summary["epochs_completed"] == 2


def test_a_limit_on_the_last_step_of_the_last_epoch_cuts_nothing():
    fit = _fit_until_slow_batch(epochs=2)
    assert (fit.stopped, fit.epochs_completed, fit.note) == ("epochs", 2, None)
