"""Recommender backbones: ``mf``, ``two_tower``, ``sasrec``.

A recommender backbone is a *scorer*: from a batch of users (ID, history,
side features by vocabulary row) it returns the score of every catalogue item,
``[B, n_items]`` (column 0 is padding), like RecBole's ``full_sort_predict``.
For rating tasks the inputs carry an ``"item"`` and it returns that pair's
score, ``[B, 1]``. The ranking or rating head on top adds calibration, the
loss and the metrics (see heads.py for why the split sits there).

Tables are sized by the data: ``bind_data`` builds them from the
vocabularies in the data info (or a reloaded run's ``data.json``), sets
``feature_dim`` and then, with ``init_from``, copies an earlier run's rows by
ID (carryover.py).

Layer groups run from input to output with the **item table first**, so
``freeze_bottom`` with ``n = 1`` freezes the item embeddings (and item
biases) and trains the users and everything above: the usual cold-start
fine-tune. ``linear_probe`` freezes the whole scorer; only the head's
per-item offset and temperature train.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ft.activation_checkpointing import checkpoint_modules
from ft.contracts import Backbone, TaskInfo, groups_by_prefix
from ft.errors import FtError
from ft.specs import Options, RecipePath

from .carryover import carry_over, load_source, report_text, vocabularies


class IdOptions(Options):
    """Options every recommender backbone takes."""

    dim: int = Field(64, ge=1, description="embedding / output vector width")
    init_std: float = Field(0.1, gt=0, description="std of the normal init of ID embeddings")
    item_bias: bool = Field(True, description="a learned per-item score offset (popularity) in the item table")
    init_from: RecipePath | None = Field(None, description="a run directory or .safetensors file to start from")
    id_maps: RecipePath | None = Field(None, description="ID-map JSON for a .safetensors init_from "
                                                         "(a run's data.json)")
    new_rows: Literal["mean", "random"] = Field(
        "mean", description="init_from: rows of IDs the source lacks start at the source table's mean row "
                            "(an average user / item) or keep their random init")


class IdBackbone(Backbone):
    """Shared machinery: tables sized in ``bind_data``, catalogue or pair scoring, ``init_from``."""

    kind = "id"
    max_history = 0  # the data format pads histories to this length (0: no history in the inputs)

    def __init__(self, options: IdOptions, ctx):
        super().__init__()
        self.options = options
        self.seed = ctx.seed
        self.init_from = options.init_from if ctx.load_pretrained else None
        if self.init_from is not None and not self.init_from.exists():
            raise FtError("path does not exist", where=f"backbone.init_from = {self.init_from}",
                          hint="run the pretraining recipe first (see this recipe's header)")
        self.feature_dim = 0  # set by bind_data
        self.vocab: dict[str, list[str]] = {}
        self.carried: dict[str, dict[str, int]] = {}
        self.pair = False

    # -- sized by the data --------------------------------------------------------

    def bind_data(self, task: TaskInfo, info: dict) -> None:
        if "vocab" not in info:
            raise FtError(f"backbone {self.kind!r} needs a recommender data format (interactions_csv, grouplens, "
                          f"recbole_atomic): its data info has no ID vocabularies")
        self.vocab = {k: list(v) for k, v in info["vocab"].items()}
        self.pair = task.type != "ranking"
        n_users, n_items = len(self.vocab["user"]) + 1, len(self.vocab["item"]) + 1
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the global RNG alone
            torch.manual_seed(self.seed)
            self.item_emb = self._table(n_items)
            self.item_bias = nn.Embedding(n_items, 1, padding_idx=0) if self.options.item_bias else None
            if self.item_bias is not None:
                nn.init.zeros_(self.item_bias.weight)
            self.build(n_users, n_items, info.get("features") or {})
        self.feature_dim = 1 if self.pair else n_items
        if self.init_from is not None:
            source = load_source(self.init_from, self.options.id_maps)
            if source.backbone not in (None, self.kind):
                raise FtError(f"the source run's backbone is {source.backbone!r}, this one is {self.kind!r}",
                              where=f"backbone.init_from = {self.init_from}")
            self.carried = carry_over(self, self.id_tables(), source, vocabularies(info), self.options.new_rows)
            print(f"ft: init_from {self.init_from}: rows by ID per table\n{report_text(self.carried)}", flush=True)

    def _table(self, rows: int) -> nn.Embedding:
        table = nn.Embedding(rows, self.options.dim, padding_idx=0)
        nn.init.normal_(table.weight, std=self.options.init_std)
        with torch.no_grad():
            table.weight[0].zero_()
        return table

    def build(self, n_users: int, n_items: int, features: dict) -> None:
        """Create the model's own modules (the item table exists already)."""
        raise NotImplementedError

    def id_tables(self) -> dict[str, str]:
        """Parameter name -> vocabulary whose IDs index its rows (for init_from)."""
        tables = {"item_emb.weight": "item"}
        if self.item_bias is not None:
            tables["item_bias.weight"] = "item"
        return tables

    # -- scoring ----------------------------------------------------------------

    def user_vectors(self, inputs: dict) -> torch.Tensor:
        raise NotImplementedError

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors of ``items`` (default: the whole catalogue, row 0 padding)."""
        return self.item_emb.weight if items is None else self.item_emb(items)

    def forward(self, inputs: dict) -> torch.Tensor:
        users = self.user_vectors(inputs)
        if self.pair:
            item = inputs["item"]
            score = (users * self.item_vectors(item)).sum(-1, keepdim=True) + self.pair_bias(inputs)
            return score
        scores = users @ self.item_vectors().T
        if self.item_bias is not None:
            scores = scores + self.item_bias.weight.T
        if "exclude" in inputs:  # ft predict: never recommend what the user already has
            scores = scores.masked_fill(inputs["exclude"], float("-inf"))
        return scores

    def pair_bias(self, inputs: dict) -> torch.Tensor:
        return self.item_bias(inputs["item"]) if self.item_bias is not None else 0.0

    def describe(self) -> dict:
        return {"class": type(self).__name__, "backbone": self.kind, "dim": self.options.dim,
                "users": len(self.vocab.get("user", [])), "items": len(self.vocab.get("item", [])),
                "init_from": str(self.init_from) if self.init_from else None, "carried": self.carried}


# -- biased matrix factorisation -------------------------------------------------------


class MfOptions(IdOptions):
    """Options of ``mf``."""


class MatrixFactorization(IdBackbone):
    """Biased MF: ``score(u, i) = p_u . q_i + b_i (+ b_u for ratings)``.

    Groups: ``item`` (q, b_i), ``user`` (p, b_u). A user unknown to the
    vocabulary (row 0) scores items by their bias alone: popularity.
    """

    kind = "mf"

    def build(self, n_users: int, n_items: int, features: dict) -> None:
        self.user_emb = self._table(n_users)
        self.user_bias = nn.Embedding(n_users, 1, padding_idx=0)
        nn.init.zeros_(self.user_bias.weight)

    def id_tables(self) -> dict[str, str]:
        return {**super().id_tables(), "user_emb.weight": "user", "user_bias.weight": "user"}

    def user_vectors(self, inputs: dict) -> torch.Tensor:
        return self.user_emb(inputs["user"])

    def pair_bias(self, inputs: dict) -> torch.Tensor:
        return super().pair_bias(inputs) + self.user_bias(inputs["user"])

    def layer_groups(self):
        return groups_by_prefix(self, [("item", ["item_emb", "item_bias"]),
                                       ("user", ["user_emb", "user_bias"])])

    def enable_activation_checkpointing(self) -> None:
        """Not offered: embedding lookups and a dot product keep no
        activations worth recomputing (the memory is in the tables)."""
        raise FtError("backbone mf cannot checkpoint its activations: it is embedding tables and a dot product, "
                      "with no blocks to recompute", hint="set train.activation_checkpointing = false")


# -- two towers ----------------------------------------------------------------------


class TwoTowerOptions(IdOptions):
    """Options of ``two_tower``."""

    hidden: int = Field(128, ge=1, description="hidden width of each tower's MLP")
    history: int = Field(50, ge=0, description="latest training items averaged into the user tower (0: none)")
    user_id: bool = Field(True, description="a user ID embedding in the user tower (false: users are their "
                                            "features and history only, so new users need no training)")
    dropout: float = Field(0.0, ge=0, lt=1)


class FeatureBags(nn.Module):
    """Mean embedding of each side-feature column's tokens, per vocabulary row.

    The token rows come from the data info (``data.json``) and are buffers
    that are not saved with the weights: they are data, rebuilt by
    ``bind_data``.
    """

    def __init__(self, features: dict, dim: int, std: float):
        super().__init__()
        self.columns = [c for c in features]
        self.emb = nn.ModuleDict()
        for i, (column, table) in enumerate(features.items()):
            rows = table["rows"]
            width = max(1, max((len(r) for r in rows), default=1))
            tokens = torch.zeros(len(rows), width, dtype=torch.long)
            for j, r in enumerate(rows):
                tokens[j, :len(r)] = torch.as_tensor(r, dtype=torch.long)
            self.register_buffer(f"tokens_{i}", tokens, persistent=False)
            emb = nn.Embedding(len(table["vocab"]) + 1, dim, padding_idx=0)
            nn.init.normal_(emb.weight, std=std)
            with torch.no_grad():
                emb.weight[0].zero_()
            self.emb[f"f{i}"] = emb

    def __len__(self) -> int:
        return len(self.columns)

    def forward(self, rows: torch.Tensor | None) -> list[torch.Tensor]:
        out = []
        for i in range(len(self.columns)):
            tokens = getattr(self, f"tokens_{i}")
            tokens = tokens if rows is None else tokens[rows]
            count = (tokens > 0).sum(-1, keepdim=True).clamp(min=1)
            out.append(self.emb[f"f{i}"](tokens).sum(-2) / count)
        return out

    def tables(self, prefix: str, side: str) -> dict[str, str]:
        return {f"{prefix}.emb.f{i}.weight": f"{side}:{c}" for i, c in enumerate(self.columns)}


def _mlp(width_in: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out))


class TwoTower(IdBackbone):
    """User tower (user ID, user features, mean of history item embeddings)
    and item tower (item ID, item features), each an MLP to ``dim``;
    ``score = u . v + b_i``.

    Groups: ``item`` (item ID and feature tables, item bias), ``user`` (user
    ID and feature tables), ``item_tower``, ``user_tower``. ``freeze_bottom``
    n = 1 freezes the item tables; n = 3 freezes the whole item side.
    """

    kind = "two_tower"

    def __init__(self, options: TwoTowerOptions, ctx):
        super().__init__(options, ctx)
        self.max_history = options.history

    def build(self, n_users: int, n_items: int, features: dict) -> None:
        o, d = self.options, self.options.dim
        self.item_features = FeatureBags(features.get("item", {}), d, o.init_std)
        self.user_emb = self._table(n_users) if o.user_id else None
        self.user_features = FeatureBags(features.get("user", {}), d, o.init_std)
        user_inputs = int(o.user_id) + len(self.user_features) + int(o.history > 0)
        if user_inputs == 0:
            raise FtError("two_tower's user tower has no input", where="backbone",
                          hint="set user_id = true, history > 0, or data.user_features")
        self.item_tower = _mlp(d * (1 + len(self.item_features)), o.hidden, d, o.dropout)
        self.user_tower = _mlp(d * user_inputs, o.hidden, d, o.dropout)

    def id_tables(self) -> dict[str, str]:
        tables = {**super().id_tables(), **self.item_features.tables("item_features", "item"),
                  **self.user_features.tables("user_features", "user")}
        if self.user_emb is not None:
            tables["user_emb.weight"] = "user"
        return tables

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        ids = self.item_emb.weight if items is None else self.item_emb(items)
        return self.item_tower(torch.cat([ids, *self.item_features(items)], -1))

    def user_vectors(self, inputs: dict) -> torch.Tensor:
        user = inputs["user"]
        parts = [self.user_emb(user)] if self.user_emb is not None else []
        parts += self.user_features(user)
        if self.options.history:
            hist = inputs["history"]
            count = (hist > 0).sum(-1, keepdim=True).clamp(min=1)
            parts.append(self.item_emb(hist).sum(-2) / count)
        return self.user_tower(torch.cat(parts, -1))

    def layer_groups(self):
        return groups_by_prefix(self, [("item", ["item_emb", "item_bias", "item_features"]),
                                       ("user", ["user_emb", "user_features"]),
                                       ("item_tower", ["item_tower"]), ("user_tower", ["user_tower"])])

    def enable_activation_checkpointing(self) -> None:
        """Recompute the towers' MLPs: the item tower runs over the whole
        catalogue every step, so its hidden layer is ``[n_items, hidden]``."""
        checkpoint_modules([self.item_tower, self.user_tower])


# -- SASRec ---------------------------------------------------------------------------


class SasRecOptions(IdOptions):
    """Options of ``sasrec``."""

    max_history: int = Field(50, ge=1, description="latest items the encoder attends over")
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)


class CausalBlock(nn.Module):
    """Pre-norm transformer block with causal self-attention (q/k/v/o linears)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        if d % heads:
            raise FtError(f"dim {d} is not divisible by heads {heads}", where="backbone.heads")
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (lin(h).view(b, t, self.heads, d // self.heads).transpose(1, 2) for lin in (self.q, self.k, self.v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                             dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.o(att.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class SasRec(IdBackbone):
    """SASRec (Kang & McAuley 2018): causal self-attention over the user's
    latest items; the last position's output scores the catalogue against the
    (shared) item embeddings. Users are their history: no user table, so new
    users need no new rows.

    Groups: ``item`` (item table, item bias), ``block0`` (+ positions), ...,
    ``blockN`` (+ final norm).
    """

    kind = "sasrec"

    def __init__(self, options: SasRecOptions, ctx):
        super().__init__(options, ctx)
        self.max_history = options.max_history

    def build(self, n_users: int, n_items: int, features: dict) -> None:
        o = self.options
        self.pos_emb = nn.Embedding(o.max_history, o.dim)
        nn.init.normal_(self.pos_emb.weight, std=o.init_std)
        self.blocks = nn.ModuleList(CausalBlock(o.dim, o.heads, o.dropout) for _ in range(o.layers))
        self.final_norm = nn.LayerNorm(o.dim)
        self.drop = nn.Dropout(o.dropout)

    def user_vectors(self, inputs: dict) -> torch.Tensor:
        hist = inputs["history"]
        x = self.item_emb(hist) * math.sqrt(self.options.dim) + self.pos_emb.weight
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x[:, -1])  # histories are left-padded: the last position is the latest

    def enable_activation_checkpointing(self) -> None:
        """Recompute each causal block in backward (sized in ``bind_data``)."""
        checkpoint_modules(self.blocks)

    def fsdp_units(self) -> list[nn.Module]:
        """The causal blocks, input to output."""
        return list(self.blocks)

    def layer_groups(self):
        last = len(self.blocks) - 1
        spec = [("item", ["item_emb", "item_bias"])]
        spec += [(f"block{i}", [f"blocks.{i}"] + (["pos_emb"] if i == 0 else []) + (["final_norm"] if i == last else []))
                 for i in range(len(self.blocks))]
        return groups_by_prefix(self, spec)
