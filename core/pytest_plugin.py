"""ftkit's pytest plugin: fixtures for a plugin package's tests.

Installed with ftkit as a ``pytest11`` entry point, so pytest loads it in
every project where ftkit is installed; it imports nothing heavy (no torch)
until a fixture is used.

* ``ft_registry``: a fresh plugin registry with every installed ``ft``
  entry point loaded (the one ``ft.get_registry()`` and the checks of
  :mod:`ft.testing` use); reset again after the test.
* ``ft_tmp_run``: an empty folder for the test's run directories and sample
  data (under pytest's ``tmp_path``).

    from ft.testing import check_plugin

    def test_conforms(ft_registry, ft_tmp_run):
        report = check_plugin("my-ft-plugin", ft_tmp_run)
        assert report["backbone"]["my_backbone"] == "ok"
"""

from __future__ import annotations

import pytest


@pytest.fixture
def ft_registry():
    """A fresh registry with the installed plugins loaded (``ft.get_registry()``)."""
    from ft import _registry

    _registry.reset_registry()
    registry = _registry.get_registry()
    yield registry
    _registry.reset_registry()


@pytest.fixture
def ft_tmp_run(tmp_path):
    """An empty folder for run directories and sample data."""
    folder = tmp_path / "ft-run"
    folder.mkdir()
    return folder
