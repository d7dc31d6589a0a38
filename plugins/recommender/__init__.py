"""Recommender plugin: ID-embedding backbones, interaction data, ranking metrics.

Registers the backbones ``mf`` (biased matrix factorisation), ``two_tower``
(user and item towers over IDs, side features and history) and ``sasrec``
(causal self-attention over a user's history); the heads ``ranking``
(full-catalogue Recall/NDCG/HitRate@K; softmax, sampled-softmax or BPR loss)
and ``rating`` (MAE, RMSE); and the dataset formats ``interactions_csv``,
``grouplens`` (``u.data``) and ``recbole_atomic`` (``.inter/.item/.user``;
by default MovieLens-100k from the installed recbole package, read in place).
Plain torch. See docs/recommender.md.

Modules: ``readers`` (files and their checks), ``splits`` (by_time,
by_user, leave_last_out), ``data`` (vocabularies, datasets, the bundle),
``checks`` (the cheap data check of ``ft validate`` and ``ft run``),
``models`` (backbones), ``carryover`` (``init_from`` row carry-over by ID),
``heads`` (heads and ranking metrics).
"""

from __future__ import annotations

from functools import partial

import ft
from ft.specs import BackboneSpec, DatasetFormatSpec, HeadSpec, NoOptions

from .checks import format_checker
from .data import AtomicOptions, CsvOptions, GroupLensOptions, build_bundle, read_input
from .heads import RankingOptions, build_ranking, build_rating
from .models import MatrixFactorization, MfOptions, SasRec, SasRecOptions, TwoTower, TwoTowerOptions
from .samples import MF_SAMPLE, SAMPLES, SASREC_SAMPLE, TWO_TOWER_SAMPLE

TASKS = ("ranking", "rating", "regression")


@ft.hookimpl
def ft_backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec("mf", MatrixFactorization, MfOptions, description="biased matrix factorisation (user, item "
                                                                       "ID embeddings and biases)",
                     sample_options=MF_SAMPLE),
        BackboneSpec("two_tower", TwoTower, TwoTowerOptions, description="user tower (ID, features, history) and "
                                                                         "item tower (ID, features)",
                     sample_options=TWO_TOWER_SAMPLE),
        BackboneSpec("sasrec", SasRec, SasRecOptions, description="SASRec: causal self-attention over the user's "
                                                                  "latest items",
                     sample_options=SASREC_SAMPLE),
    ]


@ft.hookimpl
def ft_heads() -> list[HeadSpec]:
    return [
        HeadSpec("ranking", build_ranking, RankingOptions, tasks=("ranking",),
                 description="top-K over the full catalogue (softmax / sampled softmax / BPR); "
                             "recall, ndcg, hit @K"),
        HeadSpec("rating", build_rating, NoOptions, tasks=("rating", "regression"),
                 description="rating regression (affine on the pair score); MAE, RMSE"),
    ]


def _format(name: str, options, description: str) -> DatasetFormatSpec:
    return DatasetFormatSpec(name, lambda o, backbone, ctx: build_bundle(name, o, backbone, ctx), options,
                             read_input=partial(_read, name), check=format_checker(name), tasks=TASKS,
                             description=description, sample=SAMPLES[name])


def _read(name: str, raw: str, options, backbone):
    return read_input(name, raw, options, backbone)


@ft.hookimpl
def ft_dataset_formats() -> list[DatasetFormatSpec]:
    return [
        _format("interactions_csv", CsvOptions, "CSV user,item,rating[,timestamp] with a header"),
        _format("grouplens", GroupLensOptions, "GroupLens u.data (tab-separated, no header) or ratings.dat"),
        _format("recbole_atomic", AtomicOptions, "RecBole atomic files .inter (+ .item/.user side features); "
                                                 "default: MovieLens-100k from the installed recbole package"),
    ]
