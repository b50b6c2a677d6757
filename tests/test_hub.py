"""Hub integration: the local Hub stand-in, model cards, the attribute-aware pipeline, push/load round trips.

Nothing here reaches the network: pushes and downloads go to `hub_stand_in.HubStandIn` on 127.0.0.1. Steps that need
`huggingface_hub`'s defaults pointed at the stand-in (`HF_ENDPOINT` is read at import) run in child processes, and
the loading steps run with `m2a_hf` blocked, as a user without the library would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
from hub_stand_in import HubStandIn, read_result, run_with_hub
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from transformers import BertConfig, TrainingArguments

from m2a_hf.data import AttributeVocab
from m2a_hf.hub import (
    M2AModelCardCallback,
    build_card_data,
    make_pipeline_ready,
    normalise_metrics,
    register_m2a_pipeline,
    render_model_card,
    save_for_hub,
)
from m2a_hf.modeling import M2AConfig, M2AForSequenceClassification
from m2a_hf.modeling.pipeline_m2a import CUSTOM_PIPELINES


ATTRIBUTES = {"user": 6, "item": 4}
VOCAB = {"user": [f"u{i}" for i in range(6)], "item": [f"i{i}" for i in range(4)]}
ID2LABEL = {0: "neg", 1: "neu", 2: "pos"}
TEXTS = ["the pasta was great", "slow service and cold food", "fine, nothing special"]
# (pipeline input, the attribute ids the model must receive)
PIPELINE_CASES = [
    ({"text": TEXTS[0], "attributes": {"user": "u2", "item": "i1"}}, [2, 1]),
    ({"text": TEXTS[1], "attributes": {"user": "u99", "item": "i3"}}, [-1, 3]),  # unseen user
    ({"text": TEXTS[2], "attributes": {"item": "i0"}}, [-1, 0]),  # missing user
    (TEXTS[0], [-1, -1]),  # no attributes at all
]


def _tiny_model() -> M2AForSequenceClassification:
    """A small random M2A classifier on a 2-layer BERT (MiniLM's vocabulary), with non-zero adapters."""
    torch.manual_seed(0)
    backbone = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    config = M2AConfig(
        backbone_config=backbone, attributes=ATTRIBUTES, id2label=ID2LABEL, lora_rank=4, lora_alpha=8, lora_dropout=0.0
    )
    model = M2AForSequenceClassification(config)
    with torch.no_grad():  # zero-initialised adapters would make the fine and coarse views identical
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only add synchronisation (a 32x32 linear takes
    ~8 ms with 2 busy threads, ~10 us with 1). Child processes get the same one thread from `hub_env`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny(minilm_tokenizer):
    return _tiny_model(), minilm_tokenizer


@pytest.fixture(scope="module")
def saved_checkpoint(tiny, tmp_path_factory) -> Path:
    """A full, pipeline-ready checkpoint folder (weights, remote code, tokenizer, vocab, card)."""
    model, tokenizer = tiny
    path = tmp_path_factory.mktemp("m2a-checkpoint")
    save_for_hub(
        model,
        path,
        tokenizer=tokenizer,
        attribute_vocab=AttributeVocab(VOCAB),
        metrics={"eval_accuracy": 0.5},
        base_model="sentence-transformers/all-MiniLM-L6-v2",
    )
    return path


ENTRY_POINTS = ("save_pretrained", "save_for_hub")
"""The two ways a checkpoint folder (and its config.json) gets written."""


def _save(entry_point: str, model: M2AForSequenceClassification, tokenizer, path: Path) -> None:
    if entry_point == "save_pretrained":
        model.save_pretrained(path, attribute_vocab=AttributeVocab(VOCAB))
        tokenizer.save_pretrained(path)
    else:
        save_for_hub(
            model, path, tokenizer=tokenizer, attribute_vocab=AttributeVocab(VOCAB), metrics={"eval_accuracy": 0.5}
        )


@pytest.fixture(scope="module", params=ENTRY_POINTS)
def saved_by(request, saved_checkpoint, minilm_tokenizer, tmp_path_factory) -> Path:
    """The same weights and vocabulary saved through each entry point (`save_for_hub` is `saved_checkpoint`)."""
    if request.param == "save_for_hub":
        return saved_checkpoint
    path = tmp_path_factory.mktemp("m2a-save-pretrained")
    _save("save_pretrained", _tiny_model(), minilm_tokenizer, path)  # a fresh model: no vocabulary from earlier saves
    return path


def _expected(model, tokenizer, text: str, ids: list[int], view: str | None = None) -> list[float]:
    inputs = tokenizer([text], return_tensors="pt")
    kwargs = {"view": view} if view else {"attribute_ids": torch.tensor([ids])}
    with torch.no_grad():
        return torch.softmax(model(**inputs, **kwargs).logits[0], -1).tolist()


# ------------------------------------------------------------------------------------------------ the stand-in
def test_stand_in_routes_in_process(tmp_path, monkeypatch):
    """The stand-in answers the client's routes; in-process code passes the endpoint explicitly."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # in case the developer's shell sets it
    with HubStandIn() as hub:
        api = HfApi(endpoint=hub.url, token="dummy")
        url = api.create_repo("stand-in/basic")
        assert url.repo_id == "stand-in/basic"
        api.create_repo("stand-in/basic", exist_ok=True)
        with pytest.raises(HfHubHTTPError):
            api.create_repo("stand-in/basic")  # 409 without exist_ok
        first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="sub/a.txt", repo_id="stand-in/basic")
        api.upload_file(path_or_fileobj=b"v2", path_in_repo="sub/a.txt", repo_id="stand-in/basic")
        unchanged = api.upload_file(path_or_fileobj=b"v2", path_in_repo="sub/a.txt", repo_id="stand-in/basic")

        assert api.repo_info("stand-in/basic").sha == unchanged.oid  # identical content: no new commit
        assert len(hub.commit_shas("stand-in/basic")) == 3  # creation + two uploads
        assert sorted(api.list_repo_files("stand-in/basic")) == [".gitattributes", "sub/a.txt"]
        tree = {e.path: type(e).__name__ for e in api.list_repo_tree("stand-in/basic", recursive=True)}
        assert tree == {".gitattributes": "RepoFile", "sub": "RepoFolder", "sub/a.txt": "RepoFile"}
        commits = [c.commit_id for c in api.list_repo_commits("stand-in/basic")]
        assert commits == hub.commit_shas("stand-in/basic")[::-1]

        kwargs = {"repo_id": "stand-in/basic", "filename": "sub/a.txt", "endpoint": hub.url, "cache_dir": tmp_path}
        assert Path(hf_hub_download(**kwargs)).read_bytes() == b"v2"
        assert Path(hf_hub_download(**kwargs, revision=first.oid)).read_bytes() == b"v1"
        with pytest.raises(EntryNotFoundError):
            hf_hub_download(**{**kwargs, "filename": "missing.txt"})
        with pytest.raises(RevisionNotFoundError):
            api.repo_info("stand-in/basic", revision="0" * 40)
        with pytest.raises(RepositoryNotFoundError):
            api.repo_info("stand-in/absent")
        with pytest.raises(HfHubHTTPError) as no_token:
            HfApi(endpoint=hub.url, token=False).create_repo("stand-in/other")
        assert no_token.value.response.status_code == 401
        port = int(hub.url.rsplit(":", 1)[1])
    with pytest.raises(OSError):  # stopped: nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -------------------------------------------------------------------------------------------------- model card
def test_normalise_metrics_shapes():
    flat = normalise_metrics(
        {"eval_accuracy": 0.6, "eval_coarse_accuracy": 0.5, "eval_fine_unseen_rmse": 1.1, "eval_loss": 0.3, "epoch": 1}
    )
    assert {(r.view, r.subset, r.metric, r.value) for r in flat} == {
        ("fine", None, "accuracy", 0.6),
        ("coarse", None, "accuracy", 0.5),
        ("fine", "unseen", "rmse", 1.1),
    }
    nested = normalise_metrics({"fine": {"accuracy": 0.6, "seen": {"accuracy": 0.7}}, "coarse": {"accuracy": 0.5}})
    assert {(r.view, r.subset, r.metric) for r in nested} == {
        ("fine", None, "accuracy"),
        ("fine", "seen", "accuracy"),
        ("coarse", None, "accuracy"),
    }


def test_model_card_metadata_and_body(tiny, tmp_path):
    model, _ = tiny
    metrics = {
        "fine": {"accuracy": 0.61, "rmse": 0.9, "unseen": {"accuracy": 0.52}},
        "coarse": {"accuracy": 0.55},
    }
    args = TrainingArguments(output_dir=str(tmp_path / "out"), learning_rate=3e-4, num_train_epochs=2, seed=7)
    card = render_model_card(
        model,
        metrics,
        training_args=args,
        dataset_name="Yelp-2013",
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        datasets="yelp-2013",
        license="apache-2.0",
        repo_id="stand-in/m2a-card",
        revision="0123456789abcdef0123456789abcdef01234567",
    )
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")  # the front matter parses back
    data = loaded.data
    assert data.library_name == "transformers"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.pipeline_tag == "text-classification"
    assert {"m2a", "attribute-aware", "trust-remote-code"} <= set(data.tags)
    assert data.datasets == ["yelp-2013"]
    assert data.license == "apache-2.0"
    assert data.model_name == "m2a-card"
    results = {(r.metric_args["view"], r.metric_args.get("subset"), r.metric_type): r for r in data.eval_results}
    assert set(results) == {
        ("fine", None, "accuracy"),
        ("fine", None, "rmse"),
        ("fine", "unseen", "accuracy"),
        ("coarse", None, "accuracy"),
    }
    assert results[("coarse", None, "accuracy")].metric_value == pytest.approx(0.55)
    assert all(r.task_type == "text-classification" for r in data.eval_results)
    assert "model-index" in loaded.content

    body = loaded.text
    assert "| 0 | `user` | 6 (`0` … `5`) |" in body
    assert "| 1 | `item` | 4 (`0` … `3`) |" in body
    assert "trust_remote_code=True" in body
    assert 'revision="0123456789abcdef0123456789abcdef01234567"' in body
    assert 'view="coarse"' in body and "unknown LoRA" in body
    assert "| coarse (attribute-free) | all | Accuracy | 0.5500 |" in body
    assert "| fine (attribute-aware) | unseen values | Accuracy | 0.5200 |" in body
    assert "| `learning_rate` | 0.0003 |" in body and "| `lora_rank` | 4 |" in body
    assert "@inproceedings{" in body and "2503.06085" in body
    assert "`neg`, `neu`, `pos`" in body


def test_card_data_drops_local_base_model(minilm_path, tmp_path):
    data = build_card_data({"eval_accuracy": 0.5}, base_model=str(tmp_path))
    assert data.base_model is None
    assert data.eval_results[0].metric_args == {"view": "fine"}
    # the project's bundled MiniLM folder is recognised as the Hub model it packages
    card = render_model_card({"attributes": [], "id2label": {"0": "a", "1": "b"}}, base_model=minilm_path)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert "This model has no attributes" in card.text


def test_card_accepts_canonical_base_model_ids_but_never_local_paths(tmp_path, monkeypatch):
    assert build_card_data(base_model="bert-base-uncased").base_model == "bert-base-uncased"
    assert build_card_data(base_model="google-bert/bert-base-uncased").base_model == "google-bert/bert-base-uncased"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-encoder").mkdir()  # a relative local folder that would pass as a canonical id
    for local in ("my-encoder", "./bert-base-uncased", "~/bert-base-uncased", str(tmp_path / "my-encoder")):
        assert build_card_data(base_model=local).base_model is None, local


def test_card_metrics_leave_out_counts(tiny):
    from m2a_hf.metrics import metrics_by_seen

    seen = metrics_by_seen([0, 1, 2, 2], [0, 1, 1, 2], [True, True, False, False])
    assert seen["seen_count"] == 2  # what train_m2a passes per view: metrics_by_seen's keys, counts included
    card = render_model_card(tiny[0], {"fine": seen, "coarse": seen, "eval_num_samples": 4, "test_iid_count": 9})
    assert card.data.eval_results and not [r for r in card.data.eval_results if "count" in r.metric_type]
    assert "count" not in str(card.data) and "num_samples" not in str(card.data)
    rows = {(r.metric_args["view"], r.metric_args.get("subset"), r.metric_type) for r in card.data.eval_results}
    assert ("fine", "seen", "accuracy") in rows and ("coarse", "unseen", "rmse") in rows
    assert "| fine (attribute-aware) | unseen values | Accuracy | 0.5000 |" in card.text


def test_card_dataset_type_is_never_a_local_path(tiny, tmp_path):
    table = tmp_path / "private" / "reviews.csv"
    table.parent.mkdir()
    table.write_text("text,label\n")
    card = render_model_card(tiny[0], {"eval_accuracy": 0.5}, dataset_name=str(table))
    (result,) = card.data.eval_results
    assert (result.dataset_type, result.dataset_name) == ("custom", "reviews.csv")
    assert str(tmp_path) not in str(card)  # neither in the metadata nor in the body
    named = build_card_data({"eval_accuracy": 0.5}, dataset_name="clothing").eval_results[0]
    assert (named.dataset_type, named.dataset_name) == ("clothing", "clothing")
    hub = build_card_data({"eval_accuracy": 0.5}, dataset_name="Yelp", datasets="org/yelp").eval_results[0]
    assert (hub.dataset_type, hub.dataset_name) == ("org/yelp", "Yelp")


def _procedure(card: ModelCard) -> str:
    return card.text.split("How this checkpoint was trained:", 1)[1].split("M2A adapter settings", 1)[0]


def test_card_states_the_training_configuration_actually_used(tiny):
    model = tiny[0]  # the defaults: joint, coarse_weight 0.5, kl_weight 0, mlm_weight 0.5
    card = render_model_card(model, stage2=False)
    assert "distillation" not in card.text.lower() and "kl_weight" not in card.text
    procedure = _procedure(card)
    assert "Training policy `joint`" in procedure and "plus 0.5 × the coarse view's" in procedure
    assert "Masked-LM auxiliary loss with weight 0.5" in procedure and "No second stage" in procedure
    assert "| `value_embedding_dim` | 64 |" in card.text  # the default
    hidden = model.config.backbone_config.hidden_size
    older = render_model_card({**model.config.to_dict(), "value_embedding_dim": None}).text  # saved before the default
    assert f"| `value_embedding_dim` | {hidden} (the backbone's hidden size) |" in older

    config = model.config.to_dict()
    config.update(kl_weight=0.25, mlm_weight=0.0, training_policy="stochastic", coarse_weight=1.0)
    stochastic = _procedure(render_model_card(config, stage2={"before": 0.5, "after": 0.4, "kept": False}))
    assert "Training policy `stochastic`" in stochastic and "probability 0.5" in stochastic
    assert "Distillation" not in stochastic  # the KL term is part of the joint loss only
    assert "kl_weight" not in render_model_card(config).text
    assert "No masked-LM auxiliary loss" in stochastic and "not kept" in stochastic and "0.5000 → 0.4000" in stochastic
    config.update(training_policy="joint")
    card = render_model_card(config, stage2=True)
    assert "Distillation: 0.25 × KL(fine ‖ coarse)" in _procedure(card) and "| `kl_weight` | 0.25 |" in card.text
    assert "Second stage: the unknown LoRAs alone" in _procedure(card)
    assert "How this checkpoint was trained" not in render_model_card({"attributes": [], "id2label": {}}).text


# ---------------------------------------------------------------------------------------------------- pipeline
def test_pipeline_in_process(tiny):
    from transformers import pipeline

    model, tokenizer = tiny
    register_m2a_pipeline()
    vocab = AttributeVocab(VOCAB).to_dict()
    clf = pipeline("m2a-text-classification", model=model, tokenizer=tokenizer, attribute_vocab=vocab, device="cpu")
    for inputs, ids in PIPELINE_CASES:
        text = inputs if isinstance(inputs, str) else inputs["text"]
        probs = _expected(model, tokenizer, text, ids)
        best = max(range(3), key=probs.__getitem__)
        expected = {"label": ID2LABEL[best], "score": pytest.approx(probs[best], abs=1e-5)}
        assert clf(inputs) == ([expected] if isinstance(inputs, str) else expected)  # a string: a list, as stock
    known, unknown = (_expected(model, tokenizer, TEXTS[0], ids) for ids in ([2, 1], [-1, -1]))
    assert max(abs(a - b) for a, b in zip(known, unknown, strict=True)) > 1e-4  # attributes matter in this model
    assert clf({"text": TEXTS[0], "attributes": {"user": " u2 ", "item": "i1"}}) == clf(PIPELINE_CASES[0][0])
    assert clf([TEXTS[0], TEXTS[1]]) == clf([{"text": TEXTS[0]}, {"text": TEXTS[1]}])  # strings in a list: dicts
    ids = [clf.attribute_ids_for({"user": value}) for value in ("u5", "u6", None, "", float("nan"))]
    assert ids == [[5, -1], [-1, -1], [-1, -1], [-1, -1], [-1, -1]]  # known, unseen, missing, empty, NaN
    assert clf({"text": TEXTS[0], "attribute_ids": [2, 1]}) == clf(PIPELINE_CASES[0][0])
    all_labels = clf(TEXTS[1], top_k=None)
    assert sorted(r["label"] for r in all_labels) == sorted(ID2LABEL.values())
    assert [r["score"] for r in all_labels] == sorted((r["score"] for r in all_labels), reverse=True)
    assert sum(r["score"] for r in all_labels) == pytest.approx(1.0, abs=1e-5)
    assert clf(TEXTS[1], top_k=1) == all_labels[:1]
    coarse = _expected(model, tokenizer, TEXTS[1], [], view="coarse")
    assert clf(TEXTS[1], view="coarse")[0]["score"] == pytest.approx(max(coarse), abs=1e-5)
    with pytest.raises(ValueError, match="unknown attribute"):
        clf({"text": "x", "attributes": {"usr": "u1"}})
    with pytest.raises(ValueError, match="needs a string `text`"):
        clf({"attributes": {"user": "u1"}})


def test_attribute_value_normalisation():
    from m2a_hf.modeling.pipeline_m2a import normalize_attribute_value, parse_attribute_vocab

    values = (767, 767.0, " 767 ", torch.tensor(767), 0.5, True)
    assert [normalize_attribute_value(v) for v in values] == ["767", "767", "767", "767", "0.5", "True"]
    brief_format = {"format_version": 1, "attributes": [{"name": "user", "values": ["u1", 2]}]}
    assert parse_attribute_vocab(brief_format) == {"user": ["u1", "2"]}
    assert parse_attribute_vocab(AttributeVocab(VOCAB).to_dict()) == VOCAB
    with pytest.raises(ValueError, match="duplicate"):
        parse_attribute_vocab({"format_version": 1, "attributes": [{"name": "user", "values": ["1", 1]}]})
    with pytest.raises(ValueError, match="version"):
        parse_attribute_vocab({"format_version": 2, "attributes": []})


def test_both_entry_points_write_one_complete_config(saved_by, saved_checkpoint):
    """`save_pretrained` and `save_for_hub` write the same config.json: auto_map, custom_pipelines, vocabulary."""
    config = json.loads((saved_by / "config.json").read_text())
    assert config["custom_pipelines"] == CUSTOM_PIPELINES
    assert config["custom_pipelines"]["text-classification"]["impl"] == "pipeline_m2a.M2ATextClassificationPipeline"
    assert config["attribute_vocab"] == AttributeVocab(VOCAB).to_dict()
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_m2a.M2AForSequenceClassification"
    assert config == json.loads((saved_checkpoint / "config.json").read_text())
    for name in ("pipeline_m2a.py", "modeling_m2a.py", "configuration_m2a.py", "tokenizer.json"):
        assert (saved_by / name).is_file(), name
    assert not list(saved_by.glob(".*.tmp"))
    if saved_by == saved_checkpoint:  # the vocabulary file holds the vocabulary embedded in the config
        assert json.loads((saved_by / "attribute_vocab.json").read_text()) == config["attribute_vocab"]
        assert (saved_by / "README.md").is_file()


def test_make_pipeline_ready_is_a_deprecated_check(saved_checkpoint, tmp_path):
    """It copies a missing pipeline_m2a.py but never rewrites config.json; an incomplete config is an error."""
    folder = tmp_path / "copy"
    shutil.copytree(saved_checkpoint, folder)
    before = (folder / "config.json").read_bytes()
    (folder / "pipeline_m2a.py").unlink()
    with pytest.warns(FutureWarning, match="deprecated"):
        assert make_pipeline_ready(folder) == folder
    assert (folder / "config.json").read_bytes() == before
    assert (folder / "pipeline_m2a.py").read_bytes() == (saved_checkpoint / "pipeline_m2a.py").read_bytes()

    config = json.loads(before)
    del config["custom_pipelines"]
    incomplete = json.dumps(config).encode()
    (folder / "config.json").write_bytes(incomplete)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="custom_pipelines.*save_pretrained"):
        make_pipeline_ready(folder)
    assert (folder / "config.json").read_bytes() == incomplete


class _Killed(BaseException):
    """Stands for the process dying: not an `Exception`, so only cleanup code (`finally`, `except BaseException`) runs."""


def _inject(failure: str, monkeypatch: pytest.MonkeyPatch, fired: list[str]) -> None:
    """Make the next config.json write die at `failure`; `fired` records that it did (so no test passes vacuously)."""
    if failure == "serialise":

        def to_json_string(self, *args, **kwargs):
            fired.append(failure)
            raise _Killed

        monkeypatch.setattr(M2AConfig, "to_json_string", to_json_string)
    elif failure == "mid-write":
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc_info):
                self.handle.close()

            def __getattr__(self, name):
                return getattr(self.handle, name)

            def write(self, data):
                if b'"custom_pipelines"' not in data:
                    return self.handle.write(data)
                self.handle.write(data[: len(data) // 2])
                self.handle.flush()
                fired.append(failure)
                raise _Killed

        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: HalfWriter(real_fdopen(fd, *a, **k)))
    else:
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if os.path.basename(dst) == "config.json":
                fired.append(failure)
                raise _Killed
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("failure", ["serialise", "mid-write", "rename"])
@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_interrupted_save_never_leaves_a_partial_config(entry_point, failure, minilm_tokenizer, tmp_path):
    """A save that dies while writing config.json leaves the previous config.json byte for byte (or none), and no
    temporary file; the folder still loads."""
    model = _tiny_model()
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    _save(entry_point, model, minilm_tokenizer, existing)
    before = (existing / "config.json").read_bytes()
    model.config.id2label = {0: "a", 1: "b", 2: "c"}  # a change the interrupted save would have written
    for folder in (fresh, existing):
        fired: list[str] = []
        with pytest.MonkeyPatch.context() as monkeypatch:
            _inject(failure, monkeypatch, fired)
            with pytest.raises(_Killed):
                _save(entry_point, model, minilm_tokenizer, folder)
        assert fired == [failure]
        assert not list(folder.glob(".config.json*")), list(folder.iterdir())
    assert not (fresh / "config.json").exists()
    assert (existing / "config.json").read_bytes() == before
    assert M2AConfig.from_pretrained(existing).id2label == ID2LABEL


_PIPELINE_FROM_DIR = """
import json, os, shutil, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

try:
    import m2a_hf  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("m2a_hf must not be importable here")
path = {path!r}
cases = json.loads({cases!r})
model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)

def probs(text, ids=None, view=None):
    kwargs = {{"view": view}} if view else {{"attribute_ids": torch.tensor([ids])}}
    with torch.no_grad():
        return torch.softmax(model(**tok([text], return_tensors="pt"), **kwargs).logits[0], -1).tolist()

text_of = lambda c: c if isinstance(c, str) else c["text"]
out = {{"own": [probs(text_of(c), ids) for c, ids in cases]}}
out["own_unknown"] = [probs(text_of(c), [-1, -1]) for c, _ in cases]
clf = pipeline(model=path, trust_remote_code=True, device="cpu")  # task from config.json's custom_pipelines
out["module"] = type(clf).__module__
out["single"] = [clf(c) for c, _ in cases]
out["single"] = [r[0] if isinstance(c, str) else r for r, (c, _) in zip(out["single"], cases)]  # str: a list of one
out["list"] = clf([c for c, _ in cases], batch_size=2)
out["top_all"] = clf(cases[0][0], top_k=None)
out["coarse"] = [clf(c if isinstance(c, dict) else {{"text": c}}, view="coarse") for c, _ in cases]
out["coarse_own"] = [probs(text_of(c), view="coarse") for c, _ in cases]
named = pipeline("text-classification", model=path, trust_remote_code=True, device="cpu")
out["named_task_class"] = type(named).__name__

bare = os.path.join(os.getcwd(), "no-vocab")  # the same checkpoint without any vocabulary
shutil.copytree(path, bare)
if os.path.exists(os.path.join(bare, "attribute_vocab.json")):
    os.remove(os.path.join(bare, "attribute_vocab.json"))
config = json.load(open(os.path.join(bare, "config.json")))
del config["attribute_vocab"]
json.dump(config, open(os.path.join(bare, "config.json"), "w"))
try:  # attribute values without a vocabulary: an error naming the folder, unless explicitly allowed
    pipeline(model=bare, trust_remote_code=True, device="cpu")([c for c, _ in cases], top_k=None)
except ValueError as err:
    out["no_vocab_error"] = str(err)
allowed = pipeline(model=bare, trust_remote_code=True, device="cpu", allow_missing_vocab=True)
out["no_vocab"] = allowed([c for c, _ in cases], top_k=None)
out["m2a_hf_loaded"] = any(name.startswith("m2a_hf") for name in sys.modules)
emit(out)
"""


@pytest.mark.slow
def test_pipeline_from_saved_dir_without_m2a_hf(saved_by):
    """Folders from either entry point load with Auto* and `pipeline(trust_remote_code=True)`, without m2a_hf."""
    cases = json.dumps(PIPELINE_CASES)
    proc = run_with_hub(_PIPELINE_FROM_DIR.format(path=str(saved_by), cases=cases), None, block_m2a_hf=True)
    out = read_result(proc)
    assert not out["m2a_hf_loaded"]
    assert out["module"].endswith("pipeline_m2a") and out["module"].startswith("transformers_modules")
    assert out["named_task_class"] == "M2ATextClassificationPipeline"

    def best(probs):
        i = max(range(len(probs)), key=probs.__getitem__)
        return {"label": ID2LABEL[i], "score": probs[i]}

    for got, own in zip(out["single"], out["own"], strict=True):
        assert got["label"] == best(own)["label"] and got["score"] == pytest.approx(best(own)["score"], abs=1e-5)
    for got, own in zip(out["list"], out["own"], strict=True):  # batched (padded) gives the same answers
        assert got["label"] == best(own)["label"] and got["score"] == pytest.approx(best(own)["score"], abs=1e-5)
    assert [r["score"] for r in out["top_all"]] == pytest.approx(sorted(out["own"][0], reverse=True), abs=1e-5)
    for got, own in zip(out["coarse"], out["coarse_own"], strict=True):
        assert got["score"] == pytest.approx(max(own), abs=1e-5)
    error = out.get("no_vocab_error", "")
    assert "no attribute vocabulary" in error and "no-vocab" in error
    for got, own in zip(out["no_vocab"], out["own_unknown"], strict=True):  # allowed: every value unknown
        assert [r["score"] for r in got] == pytest.approx(sorted(own, reverse=True), abs=1e-5)
    assert "No attribute vocabulary found" in proc.stderr


# ------------------------------------------------------------------------------------------- Hub round trips
_PUSH = """
import json, torch
from huggingface_hub import HfApi
from transformers import AutoTokenizer
from m2a_hf.data import AttributeVocab
from m2a_hf.hub import push_adapter_to_hub, push_m2a_to_hub, render_model_card
from m2a_hf.modeling import M2AForSequenceClassification

src = {src!r}
model = M2AForSequenceClassification.from_pretrained(src).eval()
tok = AutoTokenizer.from_pretrained(src)
x = tok({texts!r}, return_tensors="pt", padding=True)
ids = torch.tensor([[2, 1], [-1, 3], [-1, -1]])

def logits():
    with torch.no_grad():
        return model(**x, attribute_ids=ids).logits.tolist()

api = HfApi()
repo = "stand-in/m2a-push"
first = model.push_to_hub(repo, commit_message="model v1")
tok.push_to_hub(repo)
api.upload_file(path_or_fileobj=src + "/attribute_vocab.json", path_in_repo="attribute_vocab.json", repo_id=repo)
card = render_model_card(model, {{"eval_accuracy": 0.5, "eval_coarse_accuracy": 0.4}}, repo_id=repo,
                         base_model="sentence-transformers/all-MiniLM-L6-v2", license="apache-2.0")
card_commit = card.push_to_hub(repo)
v1 = logits()
with torch.no_grad():
    model.classifier.out_proj.bias.add_(torch.tensor([1.0, -1.0, 0.5]))
second = model.push_to_hub(repo, commit_message="model v2")
v2 = logits()

helper = push_m2a_to_hub(model, "stand-in/m2a-helper", tokenizer=tok, attribute_vocab=AttributeVocab.load(src),
                         metrics={{"eval_accuracy": 0.5}}, base_model="sentence-transformers/all-MiniLM-L6-v2")
api.create_repo("stand-in/m2a-adapter")  # pushed before with peft's file names: the new push deletes them
for legacy in ("adapter_config.json", "adapter_model.safetensors"):
    api.upload_file(path_or_fileobj=b"{{}}", path_in_repo=legacy, repo_id="stand-in/m2a-adapter")
push_adapter_to_hub(model, "stand-in/m2a-adapter", attribute_vocab=AttributeVocab.load(src), license="apache-2.0")
folder = api.create_repo("stand-in/m2a-folder", exist_ok=True)
folder_commit = api.upload_folder(repo_id="stand-in/m2a-folder", folder_path=src)
emit({{"first": first.oid, "second": second.oid, "helper": helper.oid, "folder": folder_commit.oid, "v1": v1, "v2": v2}})
"""

_LOAD = """
import sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

out = {{}}
tok = AutoTokenizer.from_pretrained("stand-in/m2a-push", trust_remote_code=True)
x = tok({texts!r}, return_tensors="pt", padding=True)
ids = torch.tensor([[2, 1], [-1, 3], [-1, -1]])

def logits(repo, **kw):
    model = AutoModelForSequenceClassification.from_pretrained(repo, trust_remote_code=True, **kw).eval()
    with torch.no_grad():
        return model, model(**x, attribute_ids=ids).logits.tolist()

latest, out["latest"] = logits("stand-in/m2a-push")
out["pinned"] = logits("stand-in/m2a-push", revision={first!r})[1]
out["folder"] = logits("stand-in/m2a-folder")[1]
model, out["helper"] = logits("stand-in/m2a-helper", revision={helper!r})
clf = pipeline(model="stand-in/m2a-helper", revision={helper!r}, trust_remote_code=True, device="cpu")
attributes = [{{"user": "u2", "item": "i1"}}, {{"user": "u99", "item": "i3"}}, {{}}]  # = ids above, via the vocab
out["pipe"] = clf([{{"text": t, "attributes": a}} for t, a in zip({texts!r}, attributes)], top_k=None)
out["class"] = type(model).__module__
out["inline_vocab"] = getattr(latest.config, "attribute_vocab", None) is not None  # survived model.push_to_hub
latest.config.attribute_vocab = None  # without it in config.json, the pipeline reads the repo's attribute_vocab.json
fallback = type(clf)(model=latest, tokenizer=tok, device="cpu")
out["fallback_ids"] = [fallback.attribute_ids_for(a) for a in attributes]
out["m2a_hf_loaded"] = any(name.startswith("m2a_hf") for name in sys.modules)
emit(out)
"""


@pytest.mark.slow
def test_push_to_hub_and_load_back(hub_endpoint, saved_checkpoint):
    texts = TEXTS
    pushed = read_result(run_with_hub(_PUSH.format(src=str(saved_checkpoint), texts=texts), hub_endpoint))
    assert pushed["v1"] != pushed["v2"]

    files = set(hub_endpoint.list_files("stand-in/m2a-push"))
    assert {"config.json", "model.safetensors", "configuration_m2a.py", "modeling_m2a.py", "tokenizer.json"} <= files
    assert {"README.md", "attribute_vocab.json"} <= files
    assert "trust_remote_code=True" in hub_endpoint.read_file("stand-in/m2a-push", "README.md").decode()
    config = json.loads(hub_endpoint.read_file("stand-in/m2a-push", "config.json"))
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_m2a.M2AForSequenceClassification"
    adapter_files = set(hub_endpoint.list_files("stand-in/m2a-adapter"))
    assert {"m2a_adapter_config.json", "m2a_adapter_model.safetensors", "attribute_vocab.json"} <= adapter_files
    assert "README.md" in adapter_files
    assert not {"model.safetensors", "adapter_config.json", "adapter_model.safetensors"} & adapter_files
    adapter_card = ModelCard(hub_endpoint.read_file("stand-in/m2a-adapter", "README.md").decode())
    assert adapter_card.data.library_name is None and "trust-remote-code" not in adapter_card.data.tags
    assert "from_adapter(" in adapter_card.text
    helper_files = set(hub_endpoint.list_files("stand-in/m2a-helper"))
    assert {"pipeline_m2a.py", "attribute_vocab.json", "README.md", "model.safetensors"} <= helper_files

    loaded_proc = run_with_hub(
        _LOAD.format(texts=texts, first=pushed["first"], helper=pushed["helper"]), hub_endpoint, block_m2a_hf=True
    )
    loaded = read_result(loaded_proc)
    assert not loaded["m2a_hf_loaded"] and loaded["class"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(loaded["latest"]), torch.tensor(pushed["v2"]), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        torch.tensor(loaded["pinned"]), torch.tensor(pushed["v1"]), rtol=0, atol=1e-6
    )  # revision= pins the first commit
    torch.testing.assert_close(torch.tensor(loaded["folder"]), torch.tensor(pushed["v1"]), rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(loaded["helper"]), torch.tensor(pushed["v2"]), rtol=0, atol=1e-6)
    assert loaded["inline_vocab"] and loaded["fallback_ids"] == [[2, 1], [-1, 3], [-1, -1]]
    assert "Read attribute_vocab.json from the default branch of stand-in/m2a-push" in loaded_proc.stderr
    for row, pipe in zip(loaded["helper"], loaded["pipe"], strict=True):  # pipeline == the model's own forward
        probs = torch.softmax(torch.tensor(row), -1).tolist()
        assert [r["score"] for r in pipe] == pytest.approx(sorted(probs, reverse=True), abs=1e-5)
        assert pipe[0]["label"] == ID2LABEL[max(range(3), key=probs.__getitem__)]


_TRAINER = """
import numpy as np, torch
from datasets import Dataset
from transformers import AutoTokenizer, Trainer, TrainingArguments
from m2a_hf.hub import M2AModelCardCallback
from m2a_hf.modeling import M2AForSequenceClassification

src = {src!r}
model = M2AForSequenceClassification.from_pretrained(src)
tok = AutoTokenizer.from_pretrained(src)
rows = {{"text": ["good", "bad", "okay", "great", "awful", "meh", "nice", "poor"], "label": [2, 0, 1, 2, 0, 1, 2, 0],
        "attribute_ids": [[i % 6, i % 4] for i in range(8)]}}
data = Dataset.from_dict(rows).map(lambda b: tok(b["text"]), batched=True).remove_columns(["text"])

def accuracy(pred):
    return {{"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}}

args = TrainingArguments(output_dir={out!r}, push_to_hub=True, hub_model_id="stand-in/m2a-trainer", max_steps=2,
                         per_device_train_batch_size=4, save_strategy="no", report_to=[], use_cpu=True,
                         learning_rate=1e-3, logging_strategy="no", label_names=["labels"])
trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data, processing_class=tok,
                  compute_metrics=accuracy)
M2AModelCardCallback(dataset_name="toy reviews", license="apache-2.0",
                     base_model="sentence-transformers/all-MiniLM-L6-v2").attach(trainer)
trainer.train()
metrics = trainer.evaluate()
commit = trainer.push_to_hub()
emit({{"oid": commit.oid, "accuracy": metrics["eval_accuracy"], "hub_model_id": trainer.hub_model_id}})
"""


@pytest.mark.slow
def test_trainer_push_to_hub_uploads_checkpoint_and_card(hub_endpoint, saved_checkpoint, tmp_path):
    out = read_result(
        run_with_hub(_TRAINER.format(src=str(saved_checkpoint), out=str(tmp_path / "run")), hub_endpoint)
    )
    assert out["hub_model_id"] == "stand-in/m2a-trainer"
    files = set(hub_endpoint.list_files("stand-in/m2a-trainer", revision=out["oid"]))
    assert {"config.json", "model.safetensors", "configuration_m2a.py", "modeling_m2a.py", "README.md"} <= files
    assert {"tokenizer.json", "tokenizer_config.json"} <= files
    config = json.loads(hub_endpoint.read_file("stand-in/m2a-trainer", "config.json"))
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}
    readme = hub_endpoint.read_file("stand-in/m2a-trainer", "README.md").decode()
    card = ModelCard(readme)
    assert card.data.library_name == "transformers" and "m2a" in card.data.tags
    (accuracy,) = [r for r in card.data.eval_results if r.metric_type == "accuracy"]
    assert accuracy.metric_value == pytest.approx(out["accuracy"]) and accuracy.metric_args == {"view": "fine"}
    assert "| `learning_rate` | 0.001 |" in readme and "trust_remote_code=True" in readme


def test_model_card_callback_writes_readme(tiny, tmp_path):
    model, _ = tiny
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    callback = M2AModelCardCallback(dataset_name="toy", base_model="sentence-transformers/all-MiniLM-L6-v2")
    state = type("State", (), {"is_world_process_zero": True})()
    callback.on_evaluate(args, state, None, metrics={"eval_accuracy": 0.25, "eval_runtime": 1.0}, model=model)
    callback.on_evaluate(args, state, None, metrics={"eval_coarse_accuracy": 0.2}, model=model)
    callback.on_train_end(args, state, None, model=model)
    card = ModelCard.load(tmp_path / "README.md")
    views = sorted((r.metric_args["view"], r.metric_value) for r in card.data.eval_results)
    assert views == [("coarse", 0.2), ("fine", 0.25)]
