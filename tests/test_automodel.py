"""Attribute-free use of M2A checkpoints (issue 15): `AutoModel` with the tokenizer's output alone, the
`feature-extraction` pipeline, sentence-transformers, and the stock output shapes of the custom text-classification
pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from m2a_hf import M2AForSequenceClassification
from m2a_hf.data import AttributeVocab
from m2a_hf.modeling import modeling_m2a


ATTRS = {"user": 3, "item": 2}
VOCAB = {"user": ["u0", "u1", "u2"], "item": ["i0", "i1"]}
ID2LABEL = {0: "neg", 1: "pos"}
TEXTS = ["the pasta was great", "slow service"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(tiny_backbone: str) -> M2AForSequenceClassification:
    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes=ATTRS, num_labels=2, id2label=ID2LABEL, lora_rank=2, lora_dropout=0.0
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # zero-initialised adapters would make every view the same
        for name, param in model.named_parameters():
            if ".m2a_" in name or "value_embeddings" in name or name.startswith("classifier."):
                param.add_(torch.randn(param.shape, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def saved(tiny_backbone, minilm_tokenizer, tmp_path_factory) -> Path:
    """A checkpoint folder with remote code, its vocabulary and tokenizer (what `m2a-hf train` writes)."""
    path = tmp_path_factory.mktemp("m2a-automodel")
    _model(tiny_backbone).save_pretrained(path, attribute_vocab=AttributeVocab(VOCAB).to_dict())
    minilm_tokenizer.save_pretrained(path)
    return path


def test_missing_attribute_ids_mean_every_attribute_unknown(tiny_backbone, minilm_tokenizer, monkeypatch):
    model = _model(tiny_backbone)
    enc = minilm_tokenizer(TEXTS, padding=True, return_tensors="pt")
    unknown = torch.full((2, 2), -1)
    logged = []
    monkeypatch.setattr(modeling_m2a.logger, "info", lambda *args, **kwargs: logged.append(args))
    with torch.no_grad():
        missing = model(**enc).logits
        assert len(logged) == 1 and "treated as unknown" in logged[0][0]
        torch.testing.assert_close(missing, model(**enc, attribute_ids=unknown).logits)
        torch.testing.assert_close(missing, model(**enc, view="coarse").logits)
        assert not torch.allclose(missing, model(**enc, attribute_ids=torch.tensor([[0, 1], [2, 0]])).logits)
        hidden = model.m2a(**enc).last_hidden_state  # the encoder alone, as AutoModel loads it
        torch.testing.assert_close(hidden, model.m2a(**enc, attribute_ids=unknown).last_hidden_state)
        torch.testing.assert_close(hidden, model.m2a(**enc, view="coarse").last_hidden_state)
    assert len(logged) == 1  # once per model instance
    for bad in (torch.zeros(2, 3, dtype=torch.long), torch.tensor([[5, 0], [0, 0]]), torch.zeros(2, 2)):
        with pytest.raises(ValueError, match="attribute_ids"):  # given ids are still checked
            model(**enc, attribute_ids=bad)
    # training policies see the same all-unknown ids
    model.train()
    labels = torch.tensor([0, 1])
    losses = []
    for ids in (None, unknown):
        torch.manual_seed(1)
        losses.append(model(**enc, attribute_ids=ids, labels=labels).loss)
    torch.testing.assert_close(losses[0], losses[1])


def test_automodel_and_feature_extraction_from_saved_folder(saved, minilm_tokenizer):
    from transformers import AutoModel, AutoTokenizer, pipeline

    model = AutoModel.from_pretrained(saved, trust_remote_code=True).eval()
    assert type(model).__name__ == "M2AModel"
    tok = AutoTokenizer.from_pretrained(saved)
    enc = tok(["a", "b"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
        coarse = model(**enc, view="coarse")
    assert out.last_hidden_state.shape == (*enc["input_ids"].shape, 32)
    torch.testing.assert_close(out.last_hidden_state, coarse.last_hidden_state)
    assert hasattr(out, "pooler_output") and out.pooler_output is None  # BERT's pooler is dropped when built
    extractor = pipeline("feature-extraction", model=str(saved), trust_remote_code=True, device="cpu")
    features = extractor(TEXTS[0])
    length = len(minilm_tokenizer(TEXTS[0])["input_ids"])
    assert torch.tensor(features).shape == (1, length, 32)
    with torch.no_grad():
        expected = model(**tok([TEXTS[0]], return_tensors="pt")).last_hidden_state
    torch.testing.assert_close(torch.tensor(features), expected, atol=1e-5, rtol=1e-4)


def test_pipeline_output_shapes_follow_the_stock_pipeline(saved, minilm_tokenizer):
    from transformers import AutoModelForSequenceClassification, pipeline

    clf = pipeline(model=str(saved), trust_remote_code=True, device="cpu")
    model = AutoModelForSequenceClassification.from_pretrained(saved, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**minilm_tokenizer([TEXTS[0]], return_tensors="pt")).logits[0]
    probs = torch.softmax(logits, -1)
    best = int(probs.argmax())

    single = clf(TEXTS[0])
    assert single == [{"label": ID2LABEL[best], "score": pytest.approx(float(probs[best]), abs=1e-5)}]
    one_dict = clf({"text": TEXTS[0]})
    assert one_dict == single[0]  # a dict input gives the dict, as the stock pipeline
    assert clf(TEXTS) == [clf(t)[0] for t in TEXTS]  # a list of strings: one dict each
    everything = clf(TEXTS[0], top_k=None)
    assert [r["label"] for r in everything] == [ID2LABEL[i] for i in probs.argsort(descending=True).tolist()]
    assert [r["score"] for r in everything] == pytest.approx(sorted(probs.tolist(), reverse=True), abs=1e-5)
    assert clf(TEXTS[0], top_k=1) == everything[:1]
    assert [len(r) for r in clf(TEXTS, top_k=None)] == [2, 2]
    raw = clf(TEXTS[0], top_k=None, function_to_apply="none")
    assert sorted(r["score"] for r in raw) == pytest.approx(sorted(logits.tolist()), abs=1e-5)
    assert clf(TEXTS[0], function_to_apply="sigmoid")[0]["score"] == pytest.approx(
        float(torch.sigmoid(logits).max()), abs=1e-5
    )
    with pytest.raises(ValueError, match="function_to_apply"):
        clf(TEXTS[0], function_to_apply="relu")


@pytest.mark.slow
def test_sentence_transformers_loads_the_folder(saved):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from transformers import AutoModel, AutoTokenizer

    encoder = sentence_transformers.SentenceTransformer(str(saved), trust_remote_code=True, device="cpu")
    embeddings = encoder.encode(TEXTS, convert_to_tensor=True)
    assert embeddings.shape == (2, 32)
    model = AutoModel.from_pretrained(saved, trust_remote_code=True).eval()
    enc = AutoTokenizer.from_pretrained(saved)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"][..., None].float()
    torch.testing.assert_close(embeddings, (hidden * mask).sum(1) / mask.sum(1), atol=1e-5, rtol=1e-4)
