"""`--push_to_hub` from training: the repository holds the complete final folder and loads without `m2a_hf`.

The Trainer's own pushes carry only `config.json`, the weights, the tokenizer and `training_args.bin`; a repository
made of them fails to load ("does not appear to have a file named configuration_m2a.py"). `train_m2a` ends with
`m2a_hf.hub.push_final_model`, which uploads the folder `save_for_hub` wrote as one commit. Training runs in a child
process (`huggingface_hub` reads `HF_ENDPOINT` at import) against the local Hub stand-in; loading runs in another child
with `m2a_hf` blocked.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hub_stand_in import read_result, run_with_hub
from huggingface_hub import HfApi, ModelCard

from m2a_hf.hub import hub_repo_id, push_final_model


REPO_ID = "me/x"
TEXTS = ["the pasta was great", "slow service and cold food"]
ATTRIBUTE_IDS = [[0, 1], [-1, 0]]

_TRAIN = """
import torch
from datasets import DatasetDict
from transformers import AutoTokenizer
from m2a_hf.modeling import M2AForSequenceClassification
from m2a_hf.synthetic import make_synthetic_reviews
from m2a_hf.training import DataArguments, ModelArguments, ProcedureArguments, train_m2a, training_arguments

data = make_synthetic_reviews(seed=0)
data = DatasetDict({{k: v.select(range(n)) for (k, v), n in zip(data.items(), (32, 8, 8))}})
args = training_arguments(
    output_dir={out!r}, max_steps=2, per_device_train_batch_size=16, eval_strategy="steps", eval_steps=1,
    save_strategy="steps", save_steps=1, disable_tqdm=True, dataloader_pin_memory=False,
    push_to_hub=True, hub_model_id={repo!r}, hub_strategy="checkpoint",
)
result = train_m2a(
    ModelArguments(backbone={backbone!r}, lora_rank=4, lora_alpha=8),
    DataArguments(dataset="synthetic", max_length=32),
    args,
    ProcedureArguments(stage2_epochs=1),
    data=data,
)
model = M2AForSequenceClassification.from_pretrained({out!r}).eval()
tok = AutoTokenizer.from_pretrained({out!r})
with torch.no_grad():
    logits = model(**tok({texts!r}, padding=True, return_tensors="pt"), attribute_ids=torch.tensor({ids!r})).logits
emit({{"logits": logits.tolist(), "fine_accuracy": result.metrics["test"]["fine"]["accuracy"]}})
"""

_LOAD = """
import sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained({repo!r}, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained({repo!r})
with torch.no_grad():
    logits = model(**tok({texts!r}, padding=True, return_tensors="pt"), attribute_ids=torch.tensor({ids!r})).logits
emit({{"logits": logits.tolist(), "class": type(model).__module__,
       "m2a_hf_loaded": any(name.startswith("m2a_hf") for name in sys.modules)}})
"""


@pytest.mark.slow
def test_train_with_push_to_hub_publishes_a_loadable_repository(hub_endpoint, tiny_backbone, tmp_path):
    out = tmp_path / "run"
    fmt = {"out": str(out), "repo": REPO_ID, "backbone": tiny_backbone, "texts": TEXTS, "ids": ATTRIBUTE_IDS}
    trained = read_result(run_with_hub(_TRAIN.format(**fmt), hub_endpoint, timeout=600))

    files = set(hub_endpoint.list_files(REPO_ID))
    model_files = {"config.json", "model.safetensors", "configuration_m2a.py", "modeling_m2a.py", "pipeline_m2a.py"}
    assert model_files | {"attribute_vocab.json", "README.md", "tokenizer.json", "metrics.json"} <= files
    # what the Trainer pushed during training and is no part of the final model is gone; its checkpoint folder stays
    assert not {"training_args.bin", "stage1_result.json", "stage1_modules.safetensors"} & files
    assert any(path.startswith("last-checkpoint/") for path in files)
    # one commit adds the model: the one before it (the Trainer's last push) lacked the remote code
    before = set(hub_endpoint.list_files(REPO_ID, revision=hub_endpoint.commit_shas(REPO_ID)[-2]))
    assert "configuration_m2a.py" not in before

    card = ModelCard(hub_endpoint.read_file(REPO_ID, "README.md").decode())
    fine = [r for r in card.data.eval_results if r.metric_type == "accuracy" and r.metric_args == {"view": "fine"}]
    assert [r.metric_value for r in fine] == [pytest.approx(trained["fine_accuracy"])]
    assert f'repo_id = "{REPO_ID}"' in card.text
    assert json.loads(hub_endpoint.read_file(REPO_ID, "config.json"))["attribute_vocab"] is not None

    _assert_loads_like_local(hub_endpoint, REPO_ID, trained["logits"])


def _assert_loads_like_local(hub_endpoint, repo_id: str, local_logits: list) -> None:
    """`AutoModelForSequenceClassification.from_pretrained(repo_id, trust_remote_code=True)` from the stand-in, in a
    process where `m2a_hf` cannot be imported, gives the local model's logits."""
    fmt = {"repo": repo_id, "texts": TEXTS, "ids": ATTRIBUTE_IDS}
    loaded = read_result(run_with_hub(_LOAD.format(**fmt), hub_endpoint, block_m2a_hf=True))
    assert not loaded["m2a_hf_loaded"] and loaded["class"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(loaded["logits"]), torch.tensor(local_logits), rtol=0, atol=1e-6)


_EXAMPLE = """
import runpy, sys, torch
from transformers import AutoTokenizer
from m2a_hf.modeling import M2AForSequenceClassification

sys.argv = ["train_m2a.py", *{argv!r}]
runpy.run_path({script!r}, run_name="__main__")
model = M2AForSequenceClassification.from_pretrained({out!r}).eval()
tok = AutoTokenizer.from_pretrained({out!r})
with torch.no_grad():
    logits = model(**tok({texts!r}, padding=True, return_tensors="pt"), attribute_ids=torch.tensor({ids!r})).logits
emit({{"logits": logits.tolist()}})
"""


@pytest.mark.slow
def test_example_script_with_push_to_hub_publishes_a_loadable_repository(hub_endpoint, tiny_backbone, tmp_path):
    out = tmp_path / "example"
    argv = [
        *("--dataset synthetic --max_train_samples 32 --max_eval_samples 8 --max_length 32 --lora_rank 4").split(),
        *("--max_steps 1 --per_device_train_batch_size 16 --eval_strategy steps --eval_steps 1").split(),
        *("--save_strategy steps --save_steps 1 --disable_tqdm True --push_to_hub True").split(),
        *("--hub_model_id", "me/example", "--backbone", tiny_backbone, "--output_dir", str(out)),
    ]
    script = str(Path(__file__).resolve().parents[1] / "examples" / "train_m2a.py")
    fmt = {"argv": argv, "script": script, "out": str(out), "texts": TEXTS, "ids": ATTRIBUTE_IDS}
    local = read_result(run_with_hub(_EXAMPLE.format(**fmt), hub_endpoint, timeout=600))
    files = set(hub_endpoint.list_files("me/example"))
    assert {"configuration_m2a.py", "modeling_m2a.py", "attribute_vocab.json", "README.md"} <= files
    assert "training_args.bin" not in files
    _assert_loads_like_local(hub_endpoint, "me/example", local["logits"])


def _args(tmp_path, **overrides):
    values = {
        "push_to_hub": True,
        "hub_model_id": None,
        "output_dir": str(tmp_path / "my-run"),
        "process_index": 0,
        "hub_private_repo": None,
        "hub_token": None,
        "hub_revision": None,
    }
    return SimpleNamespace(**{**values, **overrides})


def test_push_final_model_only_on_the_main_process_and_only_with_push_to_hub(tmp_path):
    """Neither case touches the Hub (no endpoint is running for this test): a call would raise a connection error."""
    assert push_final_model(tmp_path, _args(tmp_path, push_to_hub=False)) is None
    assert push_final_model(tmp_path, _args(tmp_path, process_index=1, hub_model_id=REPO_ID)) is None
    # the card names the repo only when its namespace is known before the push ("x" goes to the token owner's)
    assert hub_repo_id(_args(tmp_path, hub_model_id=REPO_ID)) == REPO_ID
    assert hub_repo_id(_args(tmp_path)) is None and hub_repo_id(_args(tmp_path, hub_model_id="x")) is None
    assert hub_repo_id(_args(tmp_path, push_to_hub=False, hub_model_id=REPO_ID)) is None


@pytest.fixture
def final_folder(tiny_backbone, tiny_tokenizer, tmp_path):
    """A final folder as training writes it, plus a Trainer checkpoint and `training_args.bin` beside it."""
    from m2a_hf.hub import save_for_hub
    from m2a_hf.modeling import M2AForSequenceClassification

    model = M2AForSequenceClassification.from_backbone(
        tiny_backbone, attributes={"user": 3}, num_labels=2, lora_rank=4
    )
    folder = save_for_hub(
        model, tmp_path / "final", tokenizer=tiny_tokenizer, attribute_vocab={"user": ["a", "b", "c"]}
    )
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"state")
    return folder


@pytest.mark.slow
def test_push_final_model_honours_the_hub_arguments(hub_endpoint, final_folder, tmp_path, monkeypatch):
    """`hub_token` is what authenticates (no other token is set), `hub_private_repo` creates a private repo;
    leftovers of the Trainer's pushes are deleted in the same commit, checkpoint folders stay."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub_endpoint.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    repo = "me/private-run"
    args = _args(tmp_path, hub_model_id=repo, hub_private_repo=True, hub_token="token-of-the-run")
    first = push_final_model(final_folder, args)
    assert hub_endpoint._repos[("model", repo)].private
    files = set(hub_endpoint.list_files(repo, revision=first.oid))
    assert {"config.json", "configuration_m2a.py", "modeling_m2a.py", "attribute_vocab.json", "README.md"} <= files
    assert not {"training_args.bin", "checkpoint-2/optimizer.pt"} & files  # PUSH_IGNORE_PATTERNS

    api = HfApi(endpoint=hub_endpoint.url, token="dummy")  # what the Trainer pushes while training
    api.upload_file(path_or_fileobj=b"x", path_in_repo="training_args.bin", repo_id=repo)
    api.upload_file(path_or_fileobj=b"y", path_in_repo="stage1_result.json", repo_id=repo)
    api.upload_file(path_or_fileobj=b"z", path_in_repo="last-checkpoint/training_args.bin", repo_id=repo)
    second = push_final_model(final_folder, args)
    files = set(hub_endpoint.list_files(repo, revision=second.oid))
    assert "configuration_m2a.py" in files and "last-checkpoint/training_args.bin" in files
    assert not {"training_args.bin", "stage1_result.json"} & files
    assert hub_endpoint.commit_shas(repo)[-1] == second.oid

    unnamed = push_final_model(final_folder, _args(tmp_path, hub_token="token-of-the-run"))  # no hub_model_id
    assert "stand-in-user/my-run" in hub_endpoint.repo_ids()  # as the Trainer: the output folder's name
    assert "configuration_m2a.py" in hub_endpoint.list_files("stand-in-user/my-run", revision=unnamed.oid)
