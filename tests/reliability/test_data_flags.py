"""The data flags of transformers' `run_classification.py` in `m2a-hf train` / `evaluate` (issue 15 item 2).

`--train_file/--validation_file/--test_file`, `--dataset_name` (+ `--dataset_config_name`), `--text_column_names`,
`--label_column_name`, `--model_name_or_path`, `--max_seq_length`, `--split_column` and `--do_train/--do_eval/
--do_predict`. Before, every one of them failed with "unrecognized argument(s)", a table's split column was ignored
and `--do_*` were accepted and ignored.

The user files are cut from the shared clothing reviews in each test (written to `tmp_path`; no review text in the
repository). In process (`cli.main`); the run that trains is `slow`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from cli_checkpoint import ID2LABEL, save_tiny_checkpoint, tiny_backbone_config
from datasets import ClassLabel, Dataset, DatasetDict
from test_cli_errors import assert_one_line_error

from m2a_hf import cli
from m2a_hf.arguments import DEFAULT_MAX_LENGTH
from m2a_hf.data import SPLITS, load_hf_dataset, load_table
from m2a_hf.training import DataArguments, ModelArguments, ProcedureArguments, load_data


CLOTHING = "womens-clothing-reviews/Womens Clothing E-Commerce Reviews.csv.gz"
RENAMES = {"Review Text": "text", "Rating": "rating", "Clothing ID": "item", "Department Name": "department"}
SIZES = {"train": 60, "validation": 20, "test": 20}
TRAIN_TYPES = (ModelArguments, DataArguments, ProcedureArguments, cli.TrainingArguments)


@pytest.fixture(scope="module")
def reviews(data_dir) -> pd.DataFrame:
    """100 clothing reviews with a text, the first 20 of each rating, interleaved so that rows 0-59 (train) hold
    every rating: title, text, rating, item and department."""
    frame = pd.read_csv(data_dir / CLOTHING, nrows=2000).rename(columns=RENAMES)
    frame = frame[frame["text"].notna()].groupby("rating", sort=True).head(20)
    frame = frame.assign(rank=frame.groupby("rating").cumcount()).sort_values(["rank", "rating"], kind="stable")
    return frame[["Title", "text", "rating", "item", "department"]].reset_index(drop=True)


@pytest.fixture(autouse=True)
def no_training_outside_slow_tests(request, monkeypatch):
    """A fast test that reached training by mistake fails at once instead of training MiniLM."""
    if request.node.get_closest_marker("slow") is None:

        def never(*args, **kwargs):
            raise AssertionError("this test must not train")

        monkeypatch.setattr(cli, "train_m2a", never)


def _parts(reviews: pd.DataFrame) -> dict[str, pd.DataFrame]:
    bounds = {"train": (0, 60), "validation": (60, 80), "test": (80, 100)}
    return {split: reviews.iloc[start:end] for split, (start, end) in bounds.items()}


@pytest.fixture
def csv_files(reviews, tmp_path) -> dict[str, Path]:
    """train.csv / dev.csv / test.csv: 60 / 20 / 20 real reviews."""
    files = {}
    for split, part in _parts(reviews).items():
        files[split] = tmp_path / f"{'dev' if split == 'validation' else split}.csv"
        part.to_csv(files[split], index=False)
    return files


def _file_flags(files: dict[str, Path]) -> list[str]:
    return [
        *("--train_file", str(files["train"]), "--validation_file", str(files["validation"])),
        *("--test_file", str(files["test"]), "--text_column_names", "text", "--label_column_name", "rating"),
        *("--attribute_columns", "item,department"),
    ]


def _parse(argv: list[str]):
    return cli.parse_arguments("train", TRAIN_TYPES, argv)


# --------------------------------------------------------------------------------------------- flags and aliases
def test_run_classification_names_and_the_older_names_set_the_same_fields():
    new = ["--model_name_or_path", "enc", "--text_column_names", "body", "--label_column_name", "stars"]
    old = ["--backbone", "enc", "--text_column", "body", "--label_column", "stars"]
    for argv in ([*new, "--max_seq_length", "64"], [*old, "--max_length", "64"], [*new, *old, "--max_length", "64"]):
        model_args, data_args, *_ = _parse(argv)
        assert (model_args.backbone, data_args.text_column, data_args.label_column) == ("enc", "body", "stars")
        assert data_args.max_length == 64 and data_args.max_seq_length is None
    _, data_args, *_ = _parse([])
    assert data_args.dataset == "synthetic" and data_args.max_length == DEFAULT_MAX_LENGTH


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--backbone", "a", "--model_name_or_path", "b"], ["--backbone 'a'", "--model_name_or_path 'b'"]),
        (["--max_length", "64", "--max_seq_length", "128"], ["--max_length 64", "--max_seq_length 128"]),
        (["--text_column", "a", "--text_column_names", "b"], ["--text_column 'a'", "--text_column_names 'b'"]),
        (["--label_column", "a", "--label_column_name", "b"], ["--label_column 'a'", "--label_column_name 'b'"]),
        (["--dataset", "clothing", "--train_file", "t.csv"], ["--dataset 'clothing'", "--train_file"]),
        (["--dataset_name", "imdb", "--test_file", "t.csv"], ["--dataset_name 'imdb'", "--train_file"]),
        (["--dataset_config_name", "plain"], ["--dataset_config_name 'plain' needs --dataset_name"]),
    ],
)
def test_aliases_or_sources_that_disagree_are_a_usage_error(run, argv, fragments):
    status, _, err = run("train", *argv)
    assert_one_line_error(status, err, "m2a-hf train: error:", *fragments)


def test_given_flags_name_the_field_an_alias_sets():
    argv = ["--max_seq_length", "64", "--model_name_or_path=x", "--do_eval", "--text_column_names", "t"]
    assert cli.given_flags(argv) == {"max_length", "backbone", "do_eval", "text_column"}


def test_requested_steps():
    assert cli.requested_steps([]) == (True, False, False)  # as before: train (with M2A's own evaluation) only
    assert cli.requested_steps(["--do_train", "--do_predict"]) == (True, False, True)
    assert cli.requested_steps(["--do_train", "False", "--do_eval", "True"]) == (False, True, False)
    assert cli.requested_steps(["--do_eval=true", "--do_train", "no"]) == (False, True, False)


def test_help_lists_m2a_groups_first_and_training_arguments_last_under_a_title(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    titles = ["M2A model arguments:", "Data arguments", "M2A training procedure:", "Trainer arguments"]
    positions = [text.index(title) for title in titles]
    assert positions == sorted(positions)
    assert "transformers.TrainingArguments: the standard flags" in text
    trainer_part = text[positions[-1] :]
    assert "--learning_rate LEARNING_RATE" in trainer_part and "--do_predict" in trainer_part
    assert "--train_file" not in trainer_part and "--learning_rate LEARNING_RATE" not in text[: positions[-1]]
    for flag in ("--model_name_or_path", "--train_file", "--dataset_name", "--split_column", "--max_seq_length"):
        assert flag in text[: positions[-1]]


# ------------------------------------------------------------------------------------------------------ sources
def test_train_validation_and_test_files_keep_their_rows(csv_files, reviews):
    data_args = _parse(_file_flags(csv_files))[1]
    data = load_data(data_args)
    parts = _parts(reviews)
    for split in SPLITS:
        assert data[split]["text"] == [text.strip() for text in parts[split]["text"]]  # no 80/10/10 reshuffle
        assert data[split]["item"] == [str(item) for item in parts[split]["item"]]  # normalised values
    classes = data["train"].features["label"].names
    assert classes == sorted({str(r) for r in parts["train"]["rating"]}, key=int)  # the training split's labels
    assert [classes[i] for i in data["test"]["label"]] == [str(r) for r in parts["test"]["rating"]]


def test_several_text_columns_are_joined_with_a_space(csv_files, reviews):
    flags = [*_file_flags(csv_files), "--text_column_names", "Title,text", "--text_column", "Title,text"]
    data = load_data(_parse(flags)[1])
    row = reviews.iloc[0]
    expected = " ".join(str(part).strip() for part in (row["Title"], row["text"]) if isinstance(part, str))
    assert data["train"]["text"][0] == expected


def test_a_bad_row_in_a_split_file_names_that_file_and_line(run, csv_files):
    lines = csv_files["validation"].read_text(encoding="utf-8").splitlines(keepends=True)
    bad = lines[:3] + ['one,field,too,many,here,"and more"\n'] + lines[3:]
    csv_files["validation"].write_text("".join(bad), encoding="utf-8")
    status, _, err = run("train", *_file_flags(csv_files), "--output_dir", "unused")
    line = assert_one_line_error(status, err, "--validation_file", "dev.csv", "line 4")
    assert "train.csv" not in line.split("dev.csv")[1]


def test_a_table_with_a_split_column_is_split_by_it(reviews, tmp_path):
    table = reviews.assign(part=["train"] * 60 + ["dev"] * 20 + ["TEST"] * 20)
    table.to_json(tmp_path / "reviews.jsonl", orient="records", lines=True)
    flags = ["--text_column_names", "text", "--label_column_name", "rating", "--split_column", "part"]
    data = load_data(_parse(["--dataset", str(tmp_path / "reviews.jsonl"), *flags])[1])
    assert [len(data[split]) for split in SPLITS] == [60, 20, 20]
    assert data["test"]["text"] == [t.strip() for t in reviews["text"][80:]]


def test_data_without_attribute_columns_is_refused_before_training(run, csv_files):
    flags = _file_flags(csv_files)[:-2]  # without --attribute_columns
    status, _, err = run("train", *flags, "--output_dir", "unused")
    assert_one_line_error(status, err, "--train_file", "no attribute columns", "--attribute_columns user,item")


def test_unknown_split_values_are_named(run, reviews, tmp_path):
    table = reviews.assign(part=["train"] * 50 + ["holdout"] * 10 + ["dev"] * 20 + ["tst"] * 20)
    table.to_csv(tmp_path / "reviews.csv", index=False)
    flags = ["--text_column_names", "text", "--label_column_name", "rating", "--split_column", "part"]
    status, _, err = run("train", "--train_file", str(tmp_path / "reviews.csv"), *flags, "--output_dir", "unused")
    assert_one_line_error(status, err, "part = 'holdout'", "['holdout', 'tst'] in 30 row(s)", "'validation'")


def test_json_and_jsonl_split_files(reviews, tmp_path):
    parts = _parts(reviews)
    parts["train"].to_json(tmp_path / "train.json", orient="records")  # a JSON array
    parts["validation"].to_json(tmp_path / "dev.jsonl", orient="records", lines=True)
    flags = ["--train_file", str(tmp_path / "train.json"), "--validation_file", str(tmp_path / "dev.jsonl")]
    data = load_data(_parse([*flags, "--label_column_name", "rating", "--attribute_columns", "department"])[1])
    assert len(data["validation"]) == 20 and data["validation"]["department"] == list(
        parts["validation"]["department"]
    )
    assert len(data["train"]) + len(data["test"]) == 60  # no test file: a seeded 10% of train, as load_table does


def _saved_dataset(reviews: pd.DataFrame, folder: Path) -> Path:
    """The reviews as a DatasetDict with a ClassLabel label whose class order is not the sorted one."""
    feature = ClassLabel(names=["5", "4", "3", "2", "1"])
    splits = {}
    for split, part in _parts(reviews).items():
        rows = {"text": list(part["text"]), "label": [feature.str2int(str(r)) for r in part["rating"]]}
        rows.update(item=[str(i) for i in part["item"]])
        splits[split] = Dataset.from_dict(rows).cast_column("label", feature)
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def test_dataset_name_reads_a_save_to_disk_folder_with_its_class_order(reviews, tmp_path):
    folder = _saved_dataset(reviews, tmp_path / "saved")
    data = load_data(_parse(["--dataset_name", str(folder), "--attribute_columns", "item"])[1])
    assert data["train"].features["label"].names == ["5", "4", "3", "2", "1"]  # as run_classification: the names
    assert [len(data[split]) for split in SPLITS] == [60, 20, 20]
    expected = [str(r) for r in _parts(reviews)["validation"]["rating"]]
    assert [data["validation"].features["label"].int2str(i) for i in data["validation"]["label"]] == expected


def test_load_table_reads_a_class_label_by_name_only_for_raw_labels():
    feature = ClassLabel(names=["pos", "neg"])
    rows = Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]}).cast_column("label", feature)
    source = DatasetDict({"train": rows, "validation": rows, "test": rows})
    assert load_table(source, text_column="text", label_column="label", raw_labels=True)["test"]["label"] == [
        "pos",
        "neg",
        "pos",
    ]
    assert load_table(source, text_column="text", label_column="label")["test"]["label"] == [0, 1, 0]  # as before


def test_dataset_name_of_a_single_saved_dataset_uses_the_split_column(reviews, tmp_path):
    frame = reviews.assign(split=["train"] * 70 + ["validation"] * 15 + ["test"] * 15)
    Dataset.from_pandas(frame[["text", "rating", "split"]]).save_to_disk(str(tmp_path / "one"))
    flags = ["--label_column_name", "rating", "--split_column", "split"]
    data = load_data(_parse(["--dataset_name", str(tmp_path / "one"), *flags])[1])
    assert [len(data[split]) for split in SPLITS] == [70, 15, 15]


def test_load_hf_dataset_reads_a_folder_of_data_files_with_load_dataset(reviews, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for split, part in _parts(reviews).items():
        part.to_csv(folder / f"{split}.csv", index=False)
    loaded = load_hf_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert {split: len(loaded[split]) for split in loaded} == SIZES
    with pytest.raises(ValueError, match="save_to_disk, which has no configurations"):
        load_hf_dataset(str(_saved_dataset(reviews, tmp_path / "saved")), "plain")


def test_max_predict_samples_and_shuffle_train_dataset(csv_files):
    flags = [*_file_flags(csv_files), "--max_eval_samples", "7", "--max_predict_samples", "5"]
    plain = load_data(_parse(flags)[1])
    assert [len(plain[split]) for split in SPLITS] == [60, 7, 5]
    shuffled = load_data(_parse([*flags, "--shuffle_train_dataset", "--max_train_samples", "30"])[1])
    assert len(shuffled["train"]) == 30 and shuffled["train"]["id"] != plain["train"]["id"][:30]
    assert set(shuffled["train"]["id"]) <= set(plain["train"]["id"])


# ----------------------------------------------------------------------------------------- do_train / do_eval
def _neg_pos_table(path: Path, rows: int) -> Path:
    """A small table in the tiny checkpoint's classes (neg/pos) and vocabulary (users u0.., items i0..)."""
    lines = ["text,label,user,item"] + [
        f"review {i} {'great' if i % 2 else 'awful'},{ID2LABEL[i % 2]},u{i % 4},i{i % 3}" for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, minilm_tokenizer) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("dataflags") / "model", minilm_tokenizer)


def test_do_train_false_evaluates_and_predicts_with_the_checkpoint(run, checkpoint, tmp_path):
    dev, test = _neg_pos_table(tmp_path / "dev.csv", 12), _neg_pos_table(tmp_path / "test.csv", 9)
    out = tmp_path / "out"
    flags = ["--validation_file", str(dev), "--test_file", str(test), "--max_seq_length", "32"]
    steps = ["--do_train", "False", "--do_eval", "True", "--do_predict", "True"]
    status, _, err = run("train", "--model_name_or_path", str(checkpoint), *flags, *steps, "--output_dir", str(out))
    assert status == 0, err
    evaluation = json.loads((out / cli.EVAL_RESULTS).read_text())
    assert evaluation["fine"]["seen_count"] + evaluation["fine"]["unseen_count"] == 12
    assert evaluation["fine"]["unseen_count"] > 0  # u3 is not in the vocabulary: the model's attributes were read
    lines = (out / cli.PREDICT_RESULTS).read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 1 + 9
    assert [line.split("\t")[0] for line in lines[1:]] == [str(i) for i in range(9)]
    assert {line.split("\t")[1] for line in lines[1:]} <= set(ID2LABEL.values())
    assert json.loads((out / cli.TEST_RESULTS).read_text())["fine"]["accuracy"] is not None


def test_do_train_false_on_a_save_to_disk_dataset(run, checkpoint, tmp_path):
    rows = {"text": ["lovely", "awful", "fine", "bad"], "label": ["pos", "neg", "pos", "neg"]}
    rows.update(user=["u0", "u1", "u9", None], item=["i0", "i1", "i0", "i1"])
    DatasetDict({"validation": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "out"
    argv = ["--model_name_or_path", str(checkpoint), "--dataset_name", str(tmp_path / "saved"), "--do_eval"]
    status, _, err = run("train", *argv, "--max_seq_length", "32", "--output_dir", str(out))
    assert status == 0, err
    fine = json.loads((out / cli.EVAL_RESULTS).read_text())["fine"]
    assert (fine["seen_count"], fine["unseen_count"]) == (2, 2)  # u9 and a missing user are unknown
    assert not (out / cli.PREDICT_RESULTS).exists()


def test_do_train_false_errors(run):
    status, _, err = run("train", "--do_train", "False")
    assert_one_line_error(status, err, "--do_train False with neither --do_eval nor --do_predict")
    status, _, err = run("train", "--do_train", "False", "--do_eval")
    assert_one_line_error(status, err, "pass its folder or Hub id as --model_name_or_path")


def test_do_train_false_needs_an_m2a_checkpoint_and_the_split(run, checkpoint, tmp_path):
    tiny_backbone_config().save_pretrained(tmp_path / "bert")
    status, _, err = run("train", "--do_eval", "--model_name_or_path", str(tmp_path / "bert"))
    assert_one_line_error(status, err, f"--model_name_or_path {str(tmp_path / 'bert')!r} is not an M2A checkpoint")
    test = _neg_pos_table(tmp_path / "test.csv", 5)
    argv = ["--do_eval", "--model_name_or_path", str(checkpoint), "--test_file", str(test), "--max_length", "32"]
    status, _, err = run("train", *argv, "--output_dir", str(tmp_path / "out"))
    assert_one_line_error(status, err, "--test_file", "the validation split is empty")


def test_training_from_an_m2a_checkpoint_is_refused_with_the_way_to_evaluate(run, checkpoint, tmp_path):
    status, _, err = run("train", "--model_name_or_path", str(checkpoint), "--output_dir", str(tmp_path / "o"))
    assert_one_line_error(status, err, "is an M2A checkpoint", "--do_train False --do_eval True")


def test_evaluate_command_takes_the_new_data_flags(run, checkpoint, tmp_path):
    test = _neg_pos_table(tmp_path / "test.csv", 10)
    out_file = tmp_path / "metrics.json"
    argv = ["--model_path", str(checkpoint), "--test_file", str(test), "--max_seq_length", "32"]
    status, _, err = run("evaluate", *argv, "--output_file", str(out_file))
    assert status == 0, err
    fine = json.loads(out_file.read_text())["fine"]
    assert fine["seen_count"] + fine["unseen_count"] == 10


@pytest.mark.slow  # trains (two steps on a tiny random backbone)
def test_cli_trains_on_user_csv_files_like_run_classification(run, backbone, csv_files, tmp_path):
    out = tmp_path / "out"
    training = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--lora_rank", "2", "--lora_alpha", "4"]
    training += ["--stage2", "False", "--disable_tqdm", "True", "--max_seq_length", "32"]
    steps = ["--do_train", "--do_eval", "--do_predict"]
    argv = ["--model_name_or_path", backbone, *_file_flags(csv_files), *training, *steps, "--output_dir", str(out)]
    status, stdout, err = run("train", *argv)
    assert status == 0, err
    config = json.loads((out / "config.json").read_text())
    train_ratings = sorted({str(r) for r in pd.read_csv(csv_files["train"])["rating"]}, key=int)
    assert list(config["id2label"].values()) == train_ratings  # string classes of the training file, sorted
    assert [a["name"] for a in config["attributes"]] == ["item", "department"]
    vocab = json.loads((out / "attribute_vocab.json").read_text())
    items = next(a["values"] for a in vocab["attributes"] if a["name"] == "item")
    assert set(items) == {str(i) for i in pd.read_csv(csv_files["train"])["item"]}  # the training file only
    evaluation = json.loads((out / cli.EVAL_RESULTS).read_text())
    assert evaluation["fine"]["seen_count"] + evaluation["fine"]["unseen_count"] == SIZES["validation"]
    lines = (out / cli.PREDICT_RESULTS).read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 1 + SIZES["test"]
    assert {line.split("\t")[1] for line in lines[1:]} <= set(train_ratings)
    metrics = json.loads((out / "metrics.json").read_text())
    predicted = [line.split("\t")[1] for line in lines[1:]]
    labels = [str(r) for r in pd.read_csv(csv_files["test"])["rating"]]
    accuracy = sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)
    assert metrics["test"]["fine"]["accuracy"] == pytest.approx(accuracy)  # the file is the fine view's predictions
    assert "M2A (fine view), validation" in stdout
