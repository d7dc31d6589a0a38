"""Fixtures for the freeze-strategy tests (the root conftest's ``registry``
and ``make_recipe`` apply too)."""

from __future__ import annotations

import pytest


@pytest.fixture
def transformer(registry):
    """The registry with the in-test plugin: ``tiny_transformer`` backbone,
    ``tokens`` and ``shifted_blobs`` data formats."""
    from freeze_testkit import ExtraPlugin

    registry.register(ExtraPlugin(), "freeze_tests")
    return registry
