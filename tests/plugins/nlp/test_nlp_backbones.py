"""Text backbones: the packaged MiniLM weights are real, layer groups cover
every parameter once from input to output, padding is invisible to pooling,
and every freeze strategy can split an encoder."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ft.contracts import BuildContext, TaskInfo
from ft.errors import FtError
from ft.model import FtModel

PARAPHRASES = [("A man is eating food.", "A man is eating a piece of bread."),
               ("The new movie is awesome.", "The new film is so great.")]
UNRELATED = ["The stock market fell sharply today.", "A child plays the violin on stage."]


def embed(backbone, texts: list[str]) -> torch.Tensor:
    tokenize, collate = backbone.preprocess(train=False), backbone.collate()
    inputs, _ = collate([(tokenize(t), 0) for t in texts])
    with torch.no_grad():
        return backbone(inputs)


def test_minilm_weights_are_the_pretrained_sentence_encoder(minilm):
    texts = [t for pair in PARAPHRASES for t in pair] + UNRELATED
    e = F.normalize(embed(minilm, texts), dim=-1)
    sim = e @ e.T
    assert sim[0, 1] > 0.7 and sim[2, 3] > 0.8  # paraphrases (sentence-transformers reports 0.755 for the first)
    unrelated = [sim[i, j] for i in range(4) for j in (4, 5)] + [sim[4, 5]]
    assert max(unrelated) < 0.15
    assert minilm.feature_dim == 384 and sum(p.numel() for p in minilm.parameters()) == 22_713_216 - 147_840

    # the same numbers as transformers' own model on the same folder, mean-pooled by hand
    from transformers import AutoModel, AutoTokenizer
    from ft.plugins.nlp.backbones import packaged_minilm

    folder = packaged_minilm()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = (hidden * mask).sum(1) / mask.sum(1)
    assert torch.allclose(embed(minilm, texts), reference, atol=1e-5)


def test_minilm_layer_groups_and_lora_share(minilm):
    groups = minilm.layer_groups()
    assert [g.name for g in groups] == ["embeddings"] + [f"layer{i}" for i in range(6)]  # pooler dropped (mean)
    model = FtModel(copy.deepcopy(minilm), torch.nn.Linear(384, 2), TaskInfo("classification", 2))
    from ft.plugins.freeze.lora import LoraOptions, LoraStrategy

    LoraStrategy(LoraOptions(r=8, alpha=16, target_modules=["query", "value"])).apply(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable == 6 * 2 * 8 * (384 + 384) + 384 * 2 + 2  # adapters on query/value + the head
    assert trainable / total < 0.005


def test_layer_groups_cover_every_parameter_once_in_order(encoder):
    for pooling, top in (("cls", []), ("mean", []), ("pooler", ["pooler"])):
        backbone = encoder(pooling=pooling)
        groups = backbone.layer_groups()
        assert [g.name for g in groups] == ["embeddings", "layer0", "layer1", *top]
        ids = [id(p) for g in groups for p in g.params]
        assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in backbone.parameters()}
        # input to output: the groups follow the parameters' order in the module
        order = {id(p): i for i, p in enumerate(backbone.parameters())}
        firsts = [min(order[id(p)] for p in g.params) for g in groups]
        assert firsts == sorted(firsts)
    assert encoder(pooling="mean").model.pooler is None  # unused weights are not kept


def test_distilbert_and_roberta_naming_and_a_clear_refusal(tiny_bert):
    from transformers import (DistilBertConfig, DistilBertModel, RobertaConfig, RobertaModel, T5Config,
                              T5EncoderModel, AutoTokenizer)
    from ft.plugins.nlp.backbones import HfEncoder

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert, local_files_only=True)
    distil = DistilBertModel(DistilBertConfig(vocab_size=50, dim=32, n_layers=3, n_heads=2, hidden_dim=64))
    roberta = RobertaModel(RobertaConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64))
    for model, names in ((distil, ["embeddings", "layer0", "layer1", "layer2"]),
                         (roberta, ["embeddings", "layer0", "layer1", "pooler"])):
        backbone = HfEncoder(model, tokenizer, pooling="pooler" if model is roberta else "cls")
        groups = backbone.layer_groups()
        assert [g.name for g in groups] == names
        assert sum(g.numel for g in groups) == sum(p.numel() for p in model.parameters())
        assert backbone.feature_dim == 32
    t5 = T5EncoderModel(T5Config(vocab_size=50, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=2))
    with pytest.raises(FtError, match="cannot split T5EncoderModel into layer groups") as err:
        HfEncoder(t5, tokenizer)
    assert "BERT-like" in str(err.value)


def test_dynamic_padding_pads_to_the_batch_maximum_with_masks(encoder):
    backbone = encoder(max_length=12)
    tokenize, collate = backbone.preprocess(train=True), backbone.collate()
    texts = ["good film", "a very dull and tedious movie with bland actors", "awful"]
    items = [(tokenize(t), torch.tensor(i)) for i, t in enumerate(texts)]
    lengths = [len(x["input_ids"]) for x, _ in items]
    assert lengths == [4, 11, 3]  # [CLS] words [SEP]
    inputs, targets = collate(items)
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert inputs["input_ids"].shape == (3, 11) and targets.tolist() == [0, 1, 2]
    assert inputs["attention_mask"].sum(1).tolist() == lengths
    pad = backbone.tokenizer.pad_token_id
    assert (inputs["input_ids"][0, 4:] == pad).all() and (inputs["attention_mask"][0, 4:] == 0).all()
    assert torch.equal(inputs["input_ids"][2, :3], items[2][0]["input_ids"])
    # truncation at max_length, and static padding when asked
    assert len(tokenize(" ".join(["good"] * 40))["input_ids"]) == 12
    static, _ = encoder(max_length=12, pad_to_max_length=True).collate()(items)
    assert static["input_ids"].shape == (3, 12)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_ignores_padding(encoder, pooling):
    backbone = encoder(pooling=pooling).eval()
    short = "good film"
    alone = embed(backbone, [short])
    batched = embed(backbone, [short, "the plot is quite dull and the ending is very messy and bland"])
    assert (alone - batched[0]).abs().max() < 1e-5
    assert (batched[0] - batched[1]).abs().max() > 1e-2  # the other text does differ


def test_text_pairs_get_segment_ids(encoder):
    x = encoder().preprocess(train=False)(("good film", "bad plot"))
    assert x["token_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_every_freeze_strategy_splits_the_encoder(encoder):
    from ft.freezing import Progress, apply_strategy
    from ft.plugins.freeze.layerwise import DiscriminativeLrOptions, DiscriminativeLrStrategy
    from ft.plugins.freeze.partial import BitFitStrategy, FreezeBottomOptions, FreezeBottomStrategy
    from ft.plugins.freeze.schedules import GradualUnfreezeOptions, GradualUnfreezeStrategy
    from ft.specs import NoOptions

    def model():
        return FtModel(encoder(), torch.nn.Linear(64, 2), TaskInfo("classification", 2))

    m = model()
    apply_strategy(FreezeBottomStrategy(FreezeBottomOptions(n=2)), m)
    frozen = {g.name for g in m.layer_groups() if not any(p.requires_grad for p in g.params)}
    assert frozen == {"embeddings", "layer0"}

    m = model()
    s = DiscriminativeLrStrategy(DiscriminativeLrOptions(factor=2.0))
    apply_strategy(s, m)
    mults = {g.name: g.lr_mult for g in s.param_groups(m)}
    assert mults == {"head": 1.0, "layer1": 0.5, "layer0": 0.25, "embeddings": 0.125}

    m = model()
    s = GradualUnfreezeStrategy(GradualUnfreezeOptions(every=1))
    apply_strategy(s, m)
    open_at = {e: sorted(n for n in ("embeddings", "layer0", "layer1", "head")
                         if s.lr_multiplier(n, Progress(e * 10, e, 10)) > 0) for e in range(4)}
    assert open_at == {0: ["head"], 1: ["head", "layer1"], 2: ["head", "layer0", "layer1"],
                       3: ["embeddings", "head", "layer0", "layer1"]}

    m = model()
    apply_strategy(BitFitStrategy(NoOptions()), m)
    names = [n for n, p in m.backbone.named_parameters() if p.requires_grad]
    assert names and all(n.endswith("bias") for n in names)


def test_weights_offline_errors_say_to_pass_a_local_folder(tmp_path, monkeypatch):
    from ft.plugins.nlp.backbones import HfEncoderOptions, build_hf_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    options = HfEncoderOptions(weights="bert-base-uncased")
    assert options.weights == "hf-hub:bert-base-uncased"
    with pytest.raises(FtError, match="not a local folder") as err:
        build_hf_encoder(options, BuildContext())
    assert "pass the local folder" in str(err.value)
    with pytest.raises(ValueError, match="model folder not found"):
        HfEncoderOptions(weights=str(tmp_path / "nowhere" / "model"))
    with pytest.raises(FtError, match="cannot load a Hugging Face model config"):
        build_hf_encoder(HfEncoderOptions(weights=str(tmp_path)), BuildContext())


def test_importing_the_plugin_does_not_import_transformers():
    code = "import sys, ft.plugins.nlp; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_registered_by_name(registry):
    assert registry.get("ft_backbones", "minilm").options().weights == "packaged"
    for name in ("text_csv", "text_tsv", "text_jsonl"):
        assert set(registry.get("ft_dataset_formats", name).tasks) == {"classification", "multilabel", "regression"}
