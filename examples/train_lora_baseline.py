"""The attribute-free baseline for comparison: plain peft LoRA on the same backbone, data and placement as M2A.

    .venv/bin/python examples/train_lora_baseline.py --dataset clothing --output_dir outputs/example-lora \
        --num_train_epochs 2 --max_length 128 --lora_rank 8

Reports the same metrics as `examples/train_m2a.py` (accuracy, macro-F1, RMSE; seen / unseen attribute values),
so the two `metrics.json` files compare directly. Every `TrainingArguments` flag works under its usual name;
`torchrun --nproc_per_node 2 examples/train_lora_baseline.py ... --use_cpu True` trains on two CPU processes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from peft import LoraConfig, TaskType, get_peft_model
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
)

from m2a_hf import M2AConfig
from m2a_hf.data import AttributeVocab, prepare_dataset
from m2a_hf.distributed import check_launch, is_main_process, wait_for_everyone
from m2a_hf.metrics import compute_metrics, metrics_by_seen, seen_mask_from_attribute_ids
from m2a_hf.training import (
    DataArguments,
    ModelArguments,
    attribute_columns,
    baseline_modules_to_save,
    load_data,
    training_defaults,
)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    parser.set_defaults(**training_defaults(output_dir="outputs/example-lora"))
    model_args, data_args, args = parser.parse_args_into_dataclasses()
    check_launch(args)  # under torchrun on CPUs without --use_cpu True, each process would train its own copy

    data = load_data(data_args, seed=args.seed)
    names = attribute_columns(data, data_args)
    vocab = AttributeVocab.build(data["train"], names)  # only to split the test metrics by seen / unseen values
    backbone = model_args.resolved_backbone()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    features = prepare_dataset(data, tokenizer, vocab, max_length=data_args.max_length)
    num_labels = max(max(data[split]["label"]) for split in data) + 1

    m2a = M2AConfig(**model_args.config_overrides())  # same rank, alpha, dropout and placement as M2A
    base = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=num_labels)
    m2a_targets, lora_targets = m2a.resolved_target_modules(base.config.model_type)  # the backbone family's placement
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=m2a.lora_rank,
        lora_alpha=m2a.lora_alpha,
        lora_dropout=m2a.lora_dropout,
        target_modules=m2a_targets + lora_targets,
        modules_to_save=baseline_modules_to_save(base, m2a.train_layer_norms),  # head + LayerNorms, as M2A trains
    )
    model = get_peft_model(base, lora)
    if is_main_process(args):
        model.print_trainable_parameters()
    without_attributes = {split: ds.remove_columns(["attribute_ids"]) for split, ds in features.items()}
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=without_attributes["train"],
        eval_dataset=without_attributes["validation"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=3)],
    )
    trainer.train()
    prediction = trainer.predict(without_attributes["test"])
    index = None if data_args.seen_attribute is None else names.index(data_args.seen_attribute)
    seen = seen_mask_from_attribute_ids(list(features["test"]["attribute_ids"]), index)
    metrics = {"test": {"iid": metrics_by_seen(prediction.predictions, prediction.label_ids, seen)}}
    # Saving, printing (and a Hub push): the main process only, once every process is done.
    wait_for_everyone(args)
    if not is_main_process(args):
        return
    out = Path(args.output_dir)
    trainer.save_model(str(out))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    m = metrics["test"]["iid"]
    scores = f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  RMSE {m['rmse']:.3f}"
    print(f"LoRA baseline: {scores}  seen {m['seen_accuracy']}  unseen {m['unseen_accuracy']}")


if __name__ == "__main__":
    main()
