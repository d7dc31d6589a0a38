"""Fixtures of the NLP tests (helpers live in nlp_testkit.py)."""

from __future__ import annotations

import pytest

@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """Folder of a random 2-layer BERT (hidden 64, with pooler) and its tokenizer."""
    from nlp_testkit import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("nlp_tiny_bert"))


@pytest.fixture(scope="session")
def minilm():
    """The packaged all-MiniLM-L6-v2 as an ftkit backbone (mean pooling), loaded once."""
    from ft.contracts import BuildContext
    from ft.plugins.nlp.backbones import MiniLMOptions, build_minilm

    backbone = build_minilm(MiniLMOptions(), BuildContext())
    return backbone.eval()


@pytest.fixture
def encoder(tiny_bert):
    """``encoder(**options)`` -> a fresh hf_encoder backbone on the tiny BERT."""
    from nlp_testkit import tiny_encoder

    return lambda **options: tiny_encoder(tiny_bert, **options)
