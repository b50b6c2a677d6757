"""The stock `transformers.Trainer` (no subclass) trains M2A on real clothing reviews."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer, TrainingArguments

from m2a_hf import M2AForSequenceClassification
from m2a_hf.data import AttributeVocab, M2ADataCollator, load_clothing_reviews, prepare_dataset


@pytest.fixture(scope="module")
def clothing_slice(data_dir, minilm_tokenizer):
    """48 training reviews with the attributes Clothing ID (`item`) and Department Name (`department`)."""
    data = load_clothing_reviews(data_dir, attributes=("item", "department"))
    data["train"] = data["train"].select(range(48))
    vocab = AttributeVocab.build(data["train"], ["item", "department"])
    features = prepare_dataset(data, minilm_tokenizer, vocab, max_length=64)
    return features["train"], vocab


@pytest.mark.parametrize("policy", ["joint", "stochastic"])
def test_five_stock_trainer_steps_lower_the_training_loss(
    minilm_path, minilm_tokenizer, clothing_slice, tmp_path, policy
):
    train, vocab = clothing_slice
    assert set(train["labels"]) <= set(range(5))
    torch.manual_seed(0)
    model = M2AForSequenceClassification.from_backbone(
        minilm_path, attributes=vocab.config_attributes(), num_labels=5, lora_rank=8, lora_alpha=16,
        training_view=policy,
    )  # fmt: skip
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=5,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=48,
        learning_rate=3e-3,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train, eval_dataset=train,
        data_collator=M2ADataCollator(minilm_tokenizer), processing_class=minilm_tokenizer,
    )  # fmt: skip
    assert type(trainer) is Trainer
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 5 and all(torch.isfinite(torch.tensor(logged)))
    assert after < before - 0.05, (before, after, logged)
    # the frozen backbone did not move; the adapters did
    query = model.m2a.backbone.encoder.layer[0].attention.self.query
    assert not query.weight.requires_grad and query.m2a_lora_B.abs().sum() > 0


def test_lora_baseline_trains_the_same_non_adapter_parameters_as_m2a(minilm_path):
    """The IID baseline must not classify through a frozen random pooler (all-MiniLM's checkpoint has none): it
    trains the classification head and the LayerNorms exactly as M2A does, so only the adapters differ."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from m2a_hf.training import baseline_modules_to_save

    base = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=5)
    modules = baseline_modules_to_save(base)
    assert modules == ["LayerNorm", "classifier", "pooler"]
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, target_modules=["query"], modules_to_save=modules
    )
    baseline = get_peft_model(base, lora)
    baseline_extra = sum(p.numel() for n, p in baseline.named_parameters() if p.requires_grad and "lora_" not in n)
    m2a = M2AForSequenceClassification.from_backbone(minilm_path, attributes=[], num_labels=5, train_mlm_head=False)
    m2a_extra = sum(p.numel() for n, p in m2a.named_parameters() if p.requires_grad and ".m2a_" not in n)
    assert baseline_extra == m2a_extra
    assert any("pooler" in n and p.requires_grad for n, p in baseline.named_parameters())
