"""The broken-input corpus: every case, by category.

Categories: recipes (:mod:`corpus_recipes`), data in every dataset format
(:mod:`corpus_tables`, :mod:`corpus_media`), run directories and checkpoints
(:mod:`corpus_runs`), plugins (:mod:`corpus_plugins`). The runner is
test_broken_inputs.py.
"""

from __future__ import annotations

import corpus_media
import corpus_plugins
import corpus_recipes
import corpus_runs
import corpus_tables
from corpus_base import Case

CATEGORIES: dict[str, list[Case]] = {
    "recipes": corpus_recipes.CASES,
    "data": corpus_tables.CASES + corpus_media.CASES,
    "runs": corpus_runs.CASES,
    "plugins": corpus_plugins.CASES,
}
CASES: list[Case] = [case for cases in CATEGORIES.values() for case in cases]
#: intact data per dataset format (each must validate: the control for the data cases)
GOOD_DATA = {**corpus_tables.GOOD, **corpus_media.GOOD}
