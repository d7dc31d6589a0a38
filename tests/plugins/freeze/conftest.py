"""Fixtures for the freeze-strategy tests (the root conftest's ``registry``
and ``make_recipe`` apply too)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run these tiny models on one thread: faster for them, and on a shared
    machine several OpenMP threads spin-wait for cores other jobs hold (a
    tiny transformer step measured 0.73 s on 2 threads, 0.05 s on 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def transformer(registry):
    """The registry with the in-test plugin: ``tiny_transformer`` backbone,
    ``tokens`` and ``shifted_blobs`` data formats."""
    from freeze_testkit import ExtraPlugin

    registry.register(ExtraPlugin(), "freeze_tests")
    return registry
