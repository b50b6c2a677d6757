"""Tests of m2a_hf.data: loaders on the real shared data and on fixtures written here, vocab, tokenisation, collator.

The fixtures for the formats that are not staged (Tang .ss, Amazon, Drugs.com, generic tables) are written into
``tmp_path`` with made-up sentences.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset, DatasetDict

from m2a_hf.data import (
    CLOTHING_DIR,
    CLOTHING_FILE,
    SPLITS,
    TANG_SENTENCE_SEPARATOR,
    AttributeVocab,
    M2ADataCollator,
    load_amazon_reviews,
    load_clothing_reviews,
    load_drugs_com,
    load_fdu_mtl,
    load_named_dataset,
    load_table,
    load_tang_dataset,
    load_tang_ss,
    normalize_attribute_value,
    prepare_dataset,
    resolve_data_dir,
    split_indices,
    tokenize_head_tail,
)


CLOTHING_ROWS = 23_486
AGE_BUCKETS = {"18-24", "25-34", "35-44", "45-54", "55-64", "65+"}


@pytest.fixture(scope="module")
def clothing(data_dir: Path) -> DatasetDict:
    return load_clothing_reviews(data_dir)


@pytest.fixture(scope="module")
def roberta_like_tokenizer():
    """A byte-level BPE tokenizer with RoBERTa's <s> ... </s> template, built offline (no merges: one token/byte)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate([*specials, *alphabet, "<mask>"])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.RobertaProcessing(("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_input_names=["input_ids", "attention_mask"],
    )


def _write_gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path


def _assert_splits_disjoint(dsd: DatasetDict) -> None:
    ids = [set(dsd[split]["id"]) for split in SPLITS]
    assert all(len(ids[i]) == dsd[split].num_rows for i, split in enumerate(SPLITS))
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


# ---------------------------------------------------------------------------------------------------------------
# Data dir and split recipe
# ---------------------------------------------------------------------------------------------------------------


def test_resolve_data_dir(tmp_path, monkeypatch):
    assert resolve_data_dir(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("M2A_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path.resolve()
    monkeypatch.setenv("M2A_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="M2A_DATA_DIR"):
        resolve_data_dir()
    with pytest.raises(FileNotFoundError, match="nope"):
        resolve_data_dir(tmp_path / "nope")


@pytest.mark.parametrize("n", [0, 1, 7, 10, 101, 22_642])
def test_split_indices_recipe(n):
    train, validation, test = split_indices(n, seed=3)
    assert sorted(np.concatenate([train, validation, test]).tolist()) == list(range(n))
    assert abs(len(train) - 0.8 * n) <= 1 and abs(len(validation) - 0.1 * n) <= 1
    perm = np.random.default_rng(3).permutation(n)
    assert train.tolist() == sorted(perm[: len(train)].tolist())  # the documented recipe
    again = split_indices(n, seed=3)
    assert all(a.tolist() == b.tolist() for a, b in zip((train, validation, test), again, strict=True))
    _, carved, empty = split_indices(n, seed=3, fractions=(0.9, 0.1, 0.0))
    assert len(empty) == 0 and abs(len(carved) - 0.1 * n) <= 1


def test_split_indices_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match="three"):
        split_indices(10, fractions=(0.5, 0.5))


# ---------------------------------------------------------------------------------------------------------------
# Real data: clothing reviews
# ---------------------------------------------------------------------------------------------------------------


def test_clothing_counts_and_split(clothing, data_dir):
    raw = gzip.open(data_dir / CLOTHING_DIR / (CLOTHING_FILE + ".gz"), "rt", encoding="utf-8", newline="")
    rows = list(csv.reader(raw))[1:]
    assert len(rows) == CLOTHING_ROWS
    both_empty = sum(1 for row in rows if not row[3].strip() and not row[4].strip())
    kept = CLOTHING_ROWS - both_empty
    sizes = [clothing[split].num_rows for split in SPLITS]
    assert sum(sizes) == kept
    for size, fraction in zip(sizes, (0.8, 0.1, 0.1), strict=True):
        assert abs(size - fraction * kept) <= 1
    _assert_splits_disjoint(clothing)
    assert list(clothing["train"].features) == ["id", "text", "label", "item", "department", "class", "age"]


def test_clothing_content(clothing):
    train = clothing["train"]
    assert set(train["label"]) == {0, 1, 2, 3, 4}
    assert all(item is not None for item in train["item"])
    assert set(train["age"]) <= AGE_BUCKETS
    assert Counter(train["department"])[None] <= 14  # 14 rows have no taxonomy in the whole file
    assert any("\n" in text for text in train["text"])  # multi-line quoted fields parsed as one record
    first = train[0]
    assert first["id"] == "0" and first["item"] == "767" and first["age"] == "25-34" and first["label"] == 3
    titled = next(row for row in train if row["id"] == "2")
    assert titled["text"].startswith("Some major design flaws. I had such high hopes")


def test_clothing_is_deterministic(clothing, data_dir):
    again = load_clothing_reviews(data_dir / CLOTHING_DIR / (CLOTHING_FILE + ".gz"))
    for split in SPLITS:
        assert again[split]["id"] == clothing[split]["id"]
    other = load_clothing_reviews(data_dir, attributes=["division"], seed=7)
    assert other["train"]["id"] != clothing["train"]["id"]
    assert list(other["train"].features) == ["id", "text", "label", "division"]
    with pytest.raises(ValueError, match="unknown clothing attribute"):
        load_clothing_reviews(data_dir, attributes=["user"])


# ---------------------------------------------------------------------------------------------------------------
# Real data: FDU-MTL
# ---------------------------------------------------------------------------------------------------------------


def test_fdu_mtl_books_and_electronics(data_dir):
    dsd = load_fdu_mtl(data_dir, domains=["books", "electronics"])
    per_domain = {split: Counter(dsd[split]["domain"]) for split in SPLITS}
    assert per_domain["train"] == {"books": 1400, "electronics": 1398}
    assert per_domain["validation"] == {"books": 200, "electronics": 200}
    assert per_domain["test"] == {"books": 400, "electronics": 400}
    books_dev = [row_id for row_id in dsd["validation"]["id"] if row_id.startswith("books:")]
    assert books_dev[0] == "books:train:1401" and books_dev[-1] == "books:train:1600"  # last 200 lines
    assert set(dsd["train"]["label"]) == {0, 1}
    _assert_splits_disjoint(dsd)


def test_fdu_mtl_all_domains_and_non_utf8_lines(data_dir):
    dsd = load_fdu_mtl(data_dir)
    assert [dsd[split].num_rows for split in SPLITS] == [22_180, 3_200, 6_400]
    assert len(set(dsd["train"]["domain"])) == 16
    mr_texts = [row["text"] for row in dsd["train"] if row["domain"] == "MR"]
    assert len(mr_texts) == 1400
    assert any("\u2013" in text or "\u2026" in text for text in mr_texts)  # cp1252 dash/ellipsis decoded


def test_fdu_mtl_plain_files_and_errors(tmp_path):
    lines = [f"{i % 2}\tsentence number {i} about a toaster ." for i in range(12)]
    (tmp_path / "kitchen.task.train").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_gz(tmp_path / "kitchen.task.test.gz", "1\tgreat toaster .\n0\tbroken toaster .\n")
    dsd = load_fdu_mtl(tmp_path, domains="kitchen", dev_size=3)
    assert [dsd[split].num_rows for split in SPLITS] == [9, 3, 2]
    assert dsd["validation"]["text"][0] == "sentence number 9 about a toaster ."
    with pytest.raises(FileNotFoundError, match="kitchen"):
        load_fdu_mtl(tmp_path, domains=["books"])
    with pytest.raises(ValueError, match="dev_size"):
        load_fdu_mtl(tmp_path, domains="kitchen", dev_size=12)
    (tmp_path / "bad.task.train").write_text("2\tfine\n" * 5, encoding="utf-8")
    (tmp_path / "bad.task.test").write_text("1\tfine\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.task.train: line 1: label '2'"):
        load_fdu_mtl(tmp_path, domains="bad", dev_size=1)


# ---------------------------------------------------------------------------------------------------------------
# Fixture formats
# ---------------------------------------------------------------------------------------------------------------


def test_tang_ss(tmp_path):
    sep = TANG_SENTENCE_SEPARATOR  # the sentences below are made up for the fixture
    train = f"u1\t\tp1\t\t5\t\tthe soup was hot . {sep} the staff smiled .\nu2\t\tp1\t\t1\t\tcold soup .\n"
    (tmp_path / "train.ss").write_text(train, encoding="utf-8")
    (tmp_path / "dev.ss").write_text("u1\t\tp2\t\t10\t\tbest noodles in town .\n", encoding="utf-8")
    _write_gz(tmp_path / "test.ss.gz", f"u3\t\tp1\t\t3\t\tokay soup . {sep} slow .\n")
    dsd = load_tang_ss(tmp_path / "train.ss", tmp_path / "dev.ss", tmp_path / "test.ss.gz")
    first = dsd["train"][0]
    assert first["text"] == "the soup was hot . the staff smiled ."
    assert (first["user"], first["product"], first["label"]) == ("u1", "p1", 4)
    assert dsd["validation"][0]["label"] == 9 and dsd["test"][0]["text"] == "okay soup . slow ."
    (tmp_path / "bad.ss").write_text("u1\t\tp1\t\t11\t\ttoo good .\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.ss: line 1: rating '11' is out of range"):
        load_tang_ss(tmp_path / "bad.ss", tmp_path / "dev.ss", tmp_path / "dev.ss")
    (tmp_path / "short.ss").write_text("u1\tp1\t5\tone tab only\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1 has 1 field"):
        load_tang_ss(tmp_path / "short.ss", tmp_path / "dev.ss", tmp_path / "dev.ss")


def _amazon_line(i: int) -> str:
    record = {
        "reviewerID": f"R{i % 7}",
        "asin": f"B{i % 5:03d}",
        "reviewText": f"The blender number {i} works well.",
        "overall": float(i % 5 + 1),
        "summary": f"Blender {i}",
        "unixReviewTime": 1_400_000_000 + i,
    }
    return json.dumps(record)


def test_amazon_reviews_jsonl_gz(tmp_path):
    lines = [_amazon_line(i) for i in range(40)]
    lines.append(json.dumps({"reviewerID": "R1", "asin": "B001", "overall": 5.0, "reviewText": "", "summary": ""}))
    lines.append("{'reviewerID': 'R9', 'asin': 'B009', 'overall': 2.0, 'reviewText': 'Loose json.'}")
    path = _write_gz(tmp_path / "Blenders_5.json.gz", "\n".join(lines) + "\n")
    dsd = load_amazon_reviews(path, seed=1)
    assert [dsd[split].num_rows for split in SPLITS] == [33, 4, 4]  # 41 kept (one empty review dropped)
    rows = {row["id"]: row for split in SPLITS for row in dsd[split]}
    assert rows["3"]["text"] == "Blender 2. The blender number 2 works well."
    assert (rows["3"]["user"], rows["3"]["item"], rows["3"]["label"]) == ("R2", "B002", 2)
    assert rows["42"]["text"] == "Loose json." and rows["42"]["label"] == 1
    assert load_amazon_reviews(path, seed=1)["test"]["id"] == dsd["test"]["id"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_amazon_line(0) + "\n" + json.dumps({"overall": 4.5, "reviewText": "half star"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl: line 2: overall 4.5 is not an integer"):
        load_amazon_reviews(bad)


def _drugs_tsv(path: Path, rows: list[tuple], unnamed_first: bool = True) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(
        ["" if unnamed_first else "uniqueID", "drugName", "condition", "review", "rating", "date", "usefulCount"]
    )
    for row in rows:
        writer.writerow(row)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _drug_rows(start: int, count: int) -> list[tuple]:
    rows = []
    for i in range(start, start + count):
        review = f'"I&#039;ve taken pill {i} for a month.\r\nNo side effects &amp; less pain."'
        rows.append(
            (1000 + i, f"Drug{i % 3}", "Headache" if i % 2 else "", review, f"{i % 10 + 1}.0", "May 1, 2015", i)
        )
    return rows


def test_drugs_com_tsv(tmp_path):
    train = _drugs_tsv(tmp_path / "drugsComTrain_raw.tsv", _drug_rows(0, 30))
    test = _drugs_tsv(tmp_path / "drugsComTest_raw.tsv", _drug_rows(100, 5), unnamed_first=False)
    dsd = load_drugs_com(train, test, seed=0)
    assert [dsd[split].num_rows for split in SPLITS] == [27, 3, 5]
    assert dsd["test"]["id"] == ["1100", "1101", "1102", "1103", "1104"]
    row = next(r for r in dsd["train"] if r["id"] == "1009")
    assert row["text"] == "I've taken pill 9 for a month.\r\nNo side effects & less pain."
    assert (row["drug"], row["condition"], row["label"]) == ("Drug0", "Headache", 9)
    assert next(r for r in dsd["train"] if r["id"] == "1000")["condition"] is None
    single = load_drugs_com(train)
    assert [single[split].num_rows for split in SPLITS] == [24, 3, 3]
    _assert_splits_disjoint(single)
    bad = _drugs_tsv(tmp_path / "bad.tsv", [(1, "DrugA", "Acne", "fine", "7.5", "", 0)])
    with pytest.raises(ValueError, match=r"uniqueID 1\): rating '7.5' is not an integer"):
        load_drugs_com(bad)


def _table_frame(n: int = 30) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "body": [f"made-up review {i} of the lamp" for i in range(n)],
            "stars": [i % 5 + 1 for i in range(n)],
            "shop": [f"shop{i % 4}" for i in range(n)],
            "sku": [i % 6 for i in range(n)],
            "part": ["train"] * (n - 6) + ["dev"] * 3 + ["TEST"] * 3,
        }
    )


def test_load_table_formats(tmp_path):
    frame = _table_frame()
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.tsv.gz", sep="\t", index=False)
    kwargs = {"text_column": "body", "label_column": "stars", "attribute_columns": ["shop", "sku"], "label_offset": 1}
    loaded = {name: load_table(tmp_path / name, **kwargs) for name in ("t.csv", "t.jsonl", "t.parquet", "t.tsv.gz")}
    for dsd in loaded.values():
        assert [dsd[split].num_rows for split in SPLITS] == [24, 3, 3]
        assert dsd["train"].to_dict() == loaded["t.csv"]["train"].to_dict()  # same split, same str-ed values
    row = loaded["t.csv"]["train"][0]
    assert (row["text"], row["label"], row["shop"], row["sku"]) == ("made-up review 0 of the lamp", 0, "shop0", "0")


def test_load_table_split_column_dataset_and_maps(tmp_path):
    frame = _table_frame()
    by_column = load_table(
        frame,
        text_column="body",
        label_column="stars",
        attribute_columns={"store": "shop"},
        label_offset=1,
        split_column="part",
    )
    assert [by_column[split].num_rows for split in SPLITS] == [24, 3, 3]
    assert by_column["test"]["text"][0] == "made-up review 27 of the lamp"
    assert list(by_column["train"].features) == ["id", "text", "label", "store"]

    source = DatasetDict(
        {"train": Dataset.from_pandas(frame.iloc[:20]), "dev": Dataset.from_pandas(frame.iloc[20:25])}
    )
    mapped = load_table(
        source,
        text_column=["shop", "body"],
        label_column="stars",
        label_map={1: 0, 2: 0, 3: 1, 4: 2, 5: 2},
    )
    assert mapped["validation"].num_rows == 5 and mapped["train"].num_rows + mapped["test"].num_rows == 20
    assert mapped["validation"][0]["text"] == "shop0. made-up review 20 of the lamp"
    assert set(mapped["train"]["label"]) <= {0, 1, 2}


def test_load_table_errors(tmp_path):
    frame = _table_frame()
    with pytest.raises(ValueError, match=r"missing column\(s\) \['review'\]; available columns: \['body'"):
        load_table(frame, text_column="review", label_column="stars")
    with pytest.raises(ValueError, match="row 0: label 1 is out of range"):
        load_table(frame, text_column="body", label_column="stars", num_labels=5, label_offset=2)
    with pytest.raises(ValueError, match="not in label_map"):
        load_table(frame, text_column="body", label_column="stars", label_map=["1", "2"])
    with pytest.raises(ValueError, match="row 24: part = 'holdout'"):
        load_table(
            frame.assign(part=["train"] * 24 + ["holdout"] * 6),
            text_column="body",
            label_column="stars",
            split_column="part",
        )
    with pytest.raises(ValueError, match="reserved"):
        load_table(frame, text_column="body", label_column="stars", attribute_columns={"text": "shop"})


def test_load_named_dataset(data_dir, tmp_path):
    dsd = load_named_dataset("FDU-MTL", data_dir=data_dir, domains=["baby"])
    assert dsd["train"].num_rows == 1300
    _table_frame().to_csv(tmp_path / "lamps.csv", index=False)
    table = load_named_dataset(tmp_path / "lamps.csv", text_column="body", label_column="stars", label_offset=1)
    assert table["train"].num_rows == 24
    with pytest.raises(ValueError, match="unknown dataset 'yelp-2015'"):
        load_named_dataset("yelp-2015")


def _tang_lines(prefix: str, count: int, high: int) -> str:
    sep = TANG_SENTENCE_SEPARATOR  # made-up sentences
    return "".join(
        f"{prefix}u{i % 3}\t\tp{i % 2}\t\t{i % high + 1}\t\tthe {prefix} soup {i} . {sep} fine .\n"
        for i in range(count)
    )


def test_named_tang_datasets(tmp_path):
    """`yelp-2013` / `yelp-2014` / `imdb` are found in the documented layout, plain or gzip."""
    (tmp_path / "yelp-2013").mkdir()
    (tmp_path / "imdb").mkdir()
    for split, count in (("train", 6), ("dev", 2), ("test", 3)):
        (tmp_path / "yelp-2013" / f"yelp-2013-seg-20-20.{split}.ss").write_text(_tang_lines("y", count, 5))
        _write_gz(tmp_path / "imdb" / f"imdb.{split}.txt.ss.gz", _tang_lines("i", count, 10))
    yelp = load_named_dataset("Yelp-2013", data_dir=tmp_path)
    assert [yelp[split].num_rows for split in SPLITS] == [6, 2, 3]
    assert yelp["train"][1] == {
        "id": "train:2",
        "text": "the y soup 1 . fine .",
        "label": 1,
        "user": "yu1",
        "product": "p1",
    }
    assert load_tang_dataset("yelp-2013", tmp_path / "yelp-2013")["test"]["id"] == yelp["test"]["id"]  # dataset folder
    imdb = load_named_dataset("imdb", data_dir=tmp_path)
    assert [imdb[split].num_rows for split in SPLITS] == [6, 2, 3] and max(imdb["train"]["label"]) == 5
    with pytest.raises(FileNotFoundError) as error:
        load_named_dataset("yelp_2014", data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "yelp-2014" / "yelp-2014-seg-20-20.train.ss") in message
    assert "Expected layout: <data_dir>/yelp-2014/yelp-2014-seg-20-20.{train,dev,test}.ss" in message
    (tmp_path / "imdb" / "imdb.dev.txt.ss.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"imdb\.dev\.txt\.ss'.*imdb\.dev\.txt\.ss\.gz'"):
        load_named_dataset("imdb", data_dir=tmp_path)


def test_named_drugs_com_dataset(tmp_path, monkeypatch):
    """`drugs-com` reads both UCI files from `<data_dir>/drugs-com/`; a missing one is named with the layout."""
    folder = tmp_path / "drugs-com"
    folder.mkdir()
    _drugs_tsv(folder / "drugsComTrain_raw.tsv", _drug_rows(0, 30))
    test = _drugs_tsv(folder / "drugsComTest_raw.tsv", _drug_rows(100, 5), unnamed_first=False)
    dsd = load_named_dataset("drugs.com", data_dir=tmp_path, seed=0)
    assert [dsd[split].num_rows for split in SPLITS] == [27, 3, 5]
    assert dsd["test"]["id"] == ["1100", "1101", "1102", "1103", "1104"]
    assert load_drugs_com(folder, seed=0)["train"]["id"] == dsd["train"]["id"]
    monkeypatch.setenv("M2A_DATA_DIR", str(tmp_path))
    assert load_drugs_com(seed=0)["validation"]["id"] == dsd["validation"]["id"]
    with pytest.raises(ValueError, match="test_path"):
        load_drugs_com(folder, test)
    test.unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_named_dataset("drugs-com", data_dir=tmp_path)
    assert str(folder / "drugsComTest_raw.tsv") in str(error.value)
    assert "<data_dir>/drugs-com/{drugsComTrain_raw.tsv,drugsComTest_raw.tsv}" in str(error.value)


def test_cli_data_arguments_load_named_tang_dataset(tmp_path):
    """`m2a-hf train --dataset yelp-2014 --data_dir ...` goes through `load_data`, which takes the new names."""
    from m2a_hf.training import DataArguments, load_data

    (tmp_path / "yelp-2014").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "yelp-2014" / f"yelp-2014-seg-20-20.{split}.ss").write_text(_tang_lines("z", 4, 5))
    data = load_data(DataArguments(dataset="yelp-2014", data_dir=str(tmp_path)))
    assert [data[split].num_rows for split in SPLITS] == [4, 4, 4] and "user" in data["train"].column_names


# ---------------------------------------------------------------------------------------------------------------
# Attribute vocab
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def toy_splits() -> DatasetDict:
    def split(users, items):
        n = len(users)
        return Dataset.from_dict({"text": ["t"] * n, "label": [0] * n, "user": users, "item": items})

    return DatasetDict(
        {
            "train": split(["u2", "u1", "u2", None, ""], ["767", "12", "767", "12", "5"]),
            "validation": split(["u1"], ["12"]),
            "test": split(["u3", "u1"], ["999", "5"]),
        }
    )


def test_vocab_built_from_train_only(toy_splits):
    vocab = AttributeVocab.build(toy_splits, ["user", "item"])
    assert vocab.names == ["user", "item"] and vocab.sizes == [2, 3]
    assert vocab.values("user") == ["u1", "u2"] and vocab.values("item") == ["12", "5", "767"]  # sorted
    assert vocab.config_attributes() == [{"name": "user", "num_values": 2}, {"name": "item", "num_values": 3}]
    assert vocab.encode_batch(toy_splits["test"][:]) == [[-1, -1], [0, 1]]  # u3 and 999 only in test
    assert vocab.encode({"user": None, "item": ""}) == [-1, -1]
    assert vocab.encode({"item": 767}) == [-1, 2]  # missing key = unknown; numbers str-ed
    assert vocab.encode({"user": " u2 ", "item": 767.0}) == [1, 2]
    assert vocab.encode_batch([{"user": "u1", "item": "5"}]) == [[0, 1]]
    assert vocab.decode([1, -1]) == {"user": "u2", "item": None}
    assert vocab.decode_batch(torch.tensor([[0, 2]])) == [{"user": "u1", "item": "767"}]
    assert AttributeVocab.build(toy_splits, ["item"], min_count=2).values("item") == ["12", "767"]


def test_vocab_errors(toy_splits):
    vocab = AttributeVocab.build(toy_splits, ["user"])
    with pytest.raises(ValueError, match=r"unknown attribute 'usr'; known attributes: \['user'\]"):
        vocab.add_values("usr", ["x"])
    with pytest.raises(ValueError, match=r"not in the training data; available: \['text'"):
        AttributeVocab.build(toy_splits, ["shop"])
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([5])
    with pytest.raises(ValueError, match="more than once"):
        AttributeVocab({"user": ["a", "a"]})


def test_vocab_add_values_and_round_trip(toy_splits, tmp_path):
    vocab = AttributeVocab.build(toy_splits, ["user", "item"])
    assert vocab.add_values("user", ["u9", "u1", "u10"]) == [2, 0, 3]
    assert vocab.add_values("item", 999) == [3]
    assert vocab.sizes == [4, 4] and vocab.encode({"user": "u10", "item": "999"}) == [3, 3]
    with pytest.raises(ValueError, match="missing/empty"):
        vocab.add_values("user", [""])
    path = vocab.save(tmp_path / "ckpt")
    assert path.name == "attribute_vocab.json" and json.loads(path.read_text())["version"] == 1
    assert AttributeVocab.load(tmp_path / "ckpt") == vocab
    assert AttributeVocab.load(path).values("user") == ["u1", "u2", "u9", "u10"]
    path.write_text(json.dumps({**vocab.to_dict(), "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        AttributeVocab.load(path)


def test_normalize_attribute_value():
    assert normalize_attribute_value(767) == normalize_attribute_value("767") == normalize_attribute_value(767.0)
    assert normalize_attribute_value(np.int64(5)) == "5" and normalize_attribute_value(2.5) == "2.5"
    assert normalize_attribute_value(float("nan")) is None and normalize_attribute_value("  ") is None


# ---------------------------------------------------------------------------------------------------------------
# Tokenisation
# ---------------------------------------------------------------------------------------------------------------


def test_head_tail_truncation_minilm(minilm_tokenizer):
    tok = minilm_tokenizer
    words = [f"word{i}" for i in range(400)]
    long_text = "alpha " + " ".join(words) + " omega"
    out = tokenize_head_tail(tok, [long_text, "short text"], max_length=64)
    ids = out["input_ids"][0]
    content = tok(long_text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 64 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert ids[1:32] == content[:31] and ids[32:63] == content[-31:]  # 31 head + 31 tail content tokens
    assert tok.convert_ids_to_tokens(ids[1]) == "alpha" and tok.convert_ids_to_tokens(ids[-2]) == "omega"
    assert out["input_ids"][1] == tok("short text")["input_ids"]
    assert out["attention_mask"][1] == [1] * len(out["input_ids"][1])
    assert out["token_type_ids"][0] == [0] * 64
    odd = tokenize_head_tail(tok, long_text, max_length=7)["input_ids"][0]
    assert odd[1:-1] == content[:3] + content[-2:]
    with pytest.raises(ValueError, match="no room"):
        tokenize_head_tail(tok, ["x"], max_length=2)
    with pytest.raises(ValueError, match="index 1"):
        tokenize_head_tail(tok, ["x", None], max_length=8)


def test_head_tail_truncation_roberta_like(roberta_like_tokenizer):
    tok = roberta_like_tokenizer
    out = tokenize_head_tail(tok, ["abcdefghijklmnopqrstuvwxyz", "hi"], max_length=10)
    assert set(out) == {"input_ids", "attention_mask"}
    assert tok.convert_ids_to_tokens(out["input_ids"][0]) == ["<s>", "a", "b", "c", "d", "w", "x", "y", "z", "</s>"]
    assert out["input_ids"][1] == tok("hi")["input_ids"]


def test_prepare_dataset(data_dir, minilm_tokenizer):
    dsd = load_fdu_mtl(data_dir, domains=["apparel", "baby"])
    dsd = DatasetDict({split: dsd[split].select(range(0, dsd[split].num_rows, 97)) for split in SPLITS})
    vocab = AttributeVocab({"domain": ["apparel"]})  # baby unknown on purpose
    features = prepare_dataset(dsd, minilm_tokenizer, vocab, max_length=32)
    assert set(features["train"].column_names) == {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "attribute_ids",
        "labels",
    }
    ids = features["test"]["attribute_ids"]
    assert ids == [[0] if domain == "apparel" else [-1] for domain in dsd["test"]["domain"]]
    assert features["train"]["labels"] == dsd["train"]["label"]
    assert max(len(row) for row in features["train"]["input_ids"]) <= 32
    with pytest.raises(ValueError, match=r"missing column\(s\) \['user'\]"):
        prepare_dataset(dsd, minilm_tokenizer, AttributeVocab({"user": ["a"]}))


# ---------------------------------------------------------------------------------------------------------------
# Collator
# ---------------------------------------------------------------------------------------------------------------


def _features(tok, texts, attribute_ids, labels):
    encoded = tokenize_head_tail(tok, texts, max_length=128)
    return [
        {**{key: encoded[key][i] for key in encoded}, "attribute_ids": attribute_ids[i], "labels": labels[i]}
        for i in range(len(texts))
    ]


def test_collator_batch(minilm_tokenizer):
    tok = minilm_tokenizer
    texts = [" ".join(["cotton"] * 40), "tiny", "a dress that fits well and looks lovely on me"]
    features = _features(tok, texts, [[3, -1], [-1, -1], [0, 7]], [4, 0, 2])
    batch = M2ADataCollator(tok, seed=0)(features)
    lengths = [len(f["input_ids"]) for f in features]
    assert batch["input_ids"].shape == (3, max(lengths)) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert batch["token_type_ids"].shape == batch["input_ids"].shape
    assert batch["attribute_ids"].tolist() == [[3, -1], [-1, -1], [0, 7]]
    assert batch["labels"].tolist() == [4, 0, 2]
    for row, feature in enumerate(features):  # input_ids unchanged (the model masks, not the collator)
        assert batch["input_ids"][row, : lengths[row]].tolist() == feature["input_ids"]
        assert (batch["input_ids"][row, lengths[row] :] == tok.pad_token_id).all()

    mlm = batch["mlm_labels"]
    assert mlm.shape == batch["input_ids"].shape
    special = torch.tensor(tok.all_special_ids)
    for row in range(len(lengths)):
        eligible = batch["attention_mask"][row].bool() & ~torch.isin(batch["input_ids"][row], special)
        chosen = mlm[row] != -100
        n = int(eligible.sum())
        assert int(chosen.sum()) == max(int(0.15 * n), 1)
        assert not (chosen & ~eligible).any()  # never a special or pad position
        assert (mlm[row][chosen] == batch["input_ids"][row][chosen]).all()


def test_collator_sampling_is_without_replacement_and_seeded(minilm_tokenizer):
    tok = minilm_tokenizer
    features = _features(tok, ["a b c d e f g h i j"] * 4, [[0]] * 4, [1] * 4)
    collator = M2ADataCollator(tok, mlm_probability=0.5, seed=123)
    first = collator(features)["mlm_labels"]
    assert ((first != -100).sum(dim=1) == 5).all()  # 5 distinct positions of 10
    assert torch.equal(M2ADataCollator(tok, mlm_probability=0.5, seed=123)(features)["mlm_labels"], first)
    assert not torch.equal(collator(features)["mlm_labels"], first)  # fresh draw on the next call
    everything = M2ADataCollator(tok, mlm_probability=1.0)(features)["mlm_labels"]
    assert ((everything != -100).sum(dim=1) == 10).all()


def test_collator_options_and_errors(minilm_tokenizer):
    tok = minilm_tokenizer
    features = _features(tok, ["one two three", "four"], [[1], [2]], [0, 1])
    batch = M2ADataCollator(tok, mlm_probability=0.0, pad_to_multiple_of=8)(features)
    assert "mlm_labels" not in batch and batch["input_ids"].shape == (2, 8)
    unlabelled = [{k: v for k, v in f.items() if k != "labels"} for f in features]
    assert "labels" not in M2ADataCollator(tok)(unlabelled)
    empty_text = _features(tok, [""], [[0]], [0])
    assert (M2ADataCollator(tok)(empty_text)["mlm_labels"] == -100).all()
    with pytest.raises(ValueError, match="feature 1 has no 'attribute_ids'"):
        M2ADataCollator(tok)([features[0], {k: v for k, v in features[1].items() if k != "attribute_ids"}])
    with pytest.raises(ValueError, match="feature 1 has 2 attribute_ids; feature 0 has 1"):
        M2ADataCollator(tok)([features[0], {**features[1], "attribute_ids": [1, 2]}])
    with pytest.raises(ValueError, match="feature 1 has no 'labels'"):
        M2ADataCollator(tok)([features[0], unlabelled[1]])
    with pytest.raises(ValueError, match="mlm_probability"):
        M2ADataCollator(tok, mlm_probability=1.5)
    with pytest.raises(ValueError, match="empty"):
        M2ADataCollator(tok)([])


def test_collator_is_a_data_collator_with_padding_and_takes_its_padding_options(minilm_tokenizer):
    from transformers import DataCollatorWithPadding

    tok = minilm_tokenizer
    features = _features(tok, ["one two three", "four"], [[1, -1], [2, 0]], [0, 1])
    tokens = [{k: f[k] for k in ("input_ids", "attention_mask", "token_type_ids")} for f in features]
    collator = M2ADataCollator(tok, mlm_probability=0.0)
    assert isinstance(collator, DataCollatorWithPadding)
    batch, plain = collator(features), DataCollatorWithPadding(tok)(tokens)
    assert all(torch.equal(batch[key], plain[key]) for key in plain)  # the same padding as the stock collator

    fixed = M2ADataCollator(tok, mlm_probability=0.5, padding="max_length", max_length=16, seed=0)(features)
    assert fixed["input_ids"].shape == fixed["mlm_labels"].shape == (2, 16)
    assert fixed["attention_mask"].sum(dim=1).tolist() == [len(f["input_ids"]) for f in features]
    assert (fixed["mlm_labels"][fixed["attention_mask"] == 0] == -100).all()  # no target in the padding
    assert fixed["attribute_ids"].tolist() == [[1, -1], [2, 0]] and fixed["labels"].tolist() == [0, 1]
    multiple = M2ADataCollator(tok, padding="max_length", max_length=10, pad_to_multiple_of=8)(features)
    assert multiple["input_ids"].shape == (2, 16)
    with pytest.raises(ValueError, match="return_tensors must be 'pt'"):
        M2ADataCollator(tok, return_tensors="np")
