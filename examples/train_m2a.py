"""Train M2A with the stock `transformers.Trainer`, step by step.

Stage 1 trains the multi-grained adapters jointly (early stopping on dev accuracy of the attribute-aware view);
stage 2 trains only the unknown LoRAs on the coarse view (early stopping on dev accuracy with the attributes
dropped) and is kept only if it beats the stage-1 model's attribute-free dev accuracy, else those modules get their
stage-1 values back (`m2a_hf.training.train_stage2`, the reference's rule). Both views are evaluated on the test
split, split into seen / unseen attribute values, and the final checkpoint is saved Hub-ready (weights + remote code,
tokenizer, attribute vocabulary, metrics, model card).

    .venv/bin/python examples/train_m2a.py --dataset clothing --attribute_columns item,department \
        --output_dir outputs/example-m2a --num_train_epochs 2 --max_length 128 --lora_rank 8

Add `--push_to_hub True --hub_model_id me/m2a-clothing` to publish the final folder (one commit, loadable with
`trust_remote_code=True`).

Every `TrainingArguments` flag works under its usual name; on several processes (two CPU processes here, or one per
GPU) launch it with `torchrun --nproc_per_node 2 examples/train_m2a.py ... --use_cpu True` (drop `--use_cpu` on GPUs).
`m2a-hf train` (`m2a_hf.training.train_m2a`) runs the
same two stages with the same rule, and adds `ProcedureArguments` (patience, stage-2 epochs and learning rate, skipping
stage 2), readable label names, training curves and the `use_fine_view` ablation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from transformers import AutoTokenizer, EarlyStoppingCallback, HfArgumentParser, Trainer, TrainingArguments

from m2a_hf import M2AForSequenceClassification
from m2a_hf.data import AttributeVocab, M2ADataCollator, prepare_dataset
from m2a_hf.distributed import check_launch, is_main_process, wait_for_everyone
from m2a_hf.hub import hub_repo_id, push_final_model, save_for_hub
from m2a_hf.metrics import compute_metrics
from m2a_hf.training import (
    DataArguments,
    ModelArguments,
    attribute_columns,
    drop_attributes,
    evaluate_views,
    load_data,
    train_stage2,
    training_defaults,
)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    parser.set_defaults(**training_defaults(output_dir="outputs/example-m2a"))
    model_args, data_args, args = parser.parse_args_into_dataclasses()
    check_launch(args)  # under torchrun on CPUs without --use_cpu True, each process would train its own copy

    # Data: text, label and one string column per attribute; ids from the training split only (unseen -> -1).
    data = load_data(data_args, seed=args.seed)
    names = attribute_columns(data, data_args)
    vocab = AttributeVocab.build(data["train"], names)
    backbone = model_args.resolved_backbone()
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    features = prepare_dataset(data, tokenizer, vocab, max_length=data_args.max_length)
    num_labels = max(max(data[split]["label"]) for split in data) + 1

    model = M2AForSequenceClassification.from_backbone(
        backbone, attributes=vocab.config_attributes(), num_labels=num_labels, **model_args.config_overrides()
    )
    collator = M2ADataCollator(tokenizer, mlm_probability=data_args.mlm_probability)

    def trainer_for(stage_args: TrainingArguments, dev) -> Trainer:
        return Trainer(
            model=model,
            args=stage_args,
            train_dataset=features["train"],
            eval_dataset=dev,
            data_collator=collator,
            processing_class=tokenizer,
            compute_metrics=compute_metrics,
            callbacks=[EarlyStoppingCallback(early_stopping_patience=3)],
        )

    # Stage 1: NN and NN† jointly (the configured view policy), dev = the attribute-aware view.
    trainer = trainer_for(args, features["validation"])
    trainer.train()
    metrics = {"stage1": evaluate_views(trainer, features["test"], names, data_args.seen_attribute)}

    # Stage 2: only the unknown LoRAs, on the coarse view; dev = attributes dropped. Kept only if it
    # beats the stage-1 model's attribute-free dev accuracy, else the stage-1 values are restored.
    model.set_stage(2)
    stage2_args = dataclasses.replace(args, output_dir=str(Path(args.output_dir) / "stage2"))
    trainer = trainer_for(stage2_args, drop_attributes(features["validation"]))
    metrics["stage2_dev_accuracy"] = train_stage2(trainer)
    model.set_stage(1)
    metrics["stage2"] = evaluate_views(trainer, features["test"], names, data_args.seen_attribute)

    # Saving, printing (and a Hub push): the main process only, once every process is done.
    wait_for_everyone(args)
    if not is_main_process(args):
        return
    out = Path(args.output_dir)
    save_for_hub(
        model,
        out,
        tokenizer=tokenizer,
        attribute_vocab=vocab,
        metrics=metrics["stage2"],
        training_args=args,
        dataset_name=data_args.dataset or data_args.dataset_name,
        base_model=backbone,
        repo_id=hub_repo_id(args),
        stage2=metrics["stage2_dev_accuracy"],
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    # --push_to_hub: the Trainer pushed only its own files; this pushes the complete folder (main process only)
    push_final_model(out, args)
    for view in ("fine", "coarse"):
        m = metrics["stage2"][view]
        scores = f"accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  RMSE {m['rmse']:.3f}"
        print(f"{view:>6} view: {scores}  seen {m['seen_accuracy']}  unseen {m['unseen_accuracy']}")
    print(f"saved to {out}")


if __name__ == "__main__":
    main()
