"""Data for M2A: loaders, attribute vocabularies, head+tail tokenisation and the batch collator.

Everything between a file on disk and a batch for the model is reachable from here (``from m2a_hf.data import ...``):

* **Loaders** (:mod:`m2a_hf.data.loaders`, one module per source) turn each supported format into a
  :class:`datasets.DatasetDict` with the splits ``train``, ``validation`` and ``test`` and the columns

  ==============  ==========  ====================================================================
  column          type        meaning
  ==============  ==========  ====================================================================
  ``id``          ``str``     where the row came from (source row id, or ``<file>:<line>``)
  ``text``        ``str``     the document
  ``label``       ``int``     0-based class (``rating - 1`` for review ratings)
  one per attr.   ``str``     the attribute value, ``None`` when missing
  ==============  ==========  ====================================================================

  Attribute values are normalised by :func:`normalize_attribute_value` (``767``, ``767.0``, ``"767.0"`` and
  ``"767"`` are the same value ``"767"``; ``None``, NaN, ``pd.NA``, blanks and strings such as ``"NaN"``, ``"null"``
  or ``"N/A"`` are missing, i.e. ``None``).
* :func:`load_hf_dataset` reads a `datasets` dataset (a ``save_to_disk`` folder, a Hub id) for :func:`load_table`.
* :func:`split_indices` (:mod:`m2a_hf.data.splits`) is the single seeded 80/10/10 split used by every loader that
  has no official split; :func:`resolve_data_dir` (:mod:`m2a_hf.data.paths`) finds the shared data dir.
* :class:`AttributeVocab` (:mod:`m2a_hf.vocab`) maps attribute values to ids, built from the **training split
  only**; unknown values map to ``-1``.
* :func:`tokenize_head_tail` and :func:`prepare_dataset` (:mod:`m2a_hf.features`) tokenise with the head+tail
  truncation of the reference implementation; :class:`M2ADataCollator` (:mod:`m2a_hf.collator`) pads a batch and
  picks the MLM targets.

Example:
    >>> from transformers import AutoTokenizer
    >>> dsd = load_fdu_mtl(domains=["books", "dvd"])  # doctest: +SKIP
    >>> vocab = AttributeVocab.build(dsd, ["domain"])  # doctest: +SKIP
    >>> tok = AutoTokenizer.from_pretrained(path)  # doctest: +SKIP
    >>> features = prepare_dataset(dsd, tok, vocab, max_length=256)  # doctest: +SKIP
    >>> batch = M2ADataCollator(tok)(list(features["train"].select(range(8))))  # doctest: +SKIP
"""

from __future__ import annotations

from m2a_hf.collator import M2ADataCollator
from m2a_hf.data.columns import SPLITS, Columns
from m2a_hf.data.loaders import (
    AMAZON_MI_DIR,
    AMAZON_MI_FILES,
    CLOTHING_ATTRIBUTES,
    CLOTHING_DIR,
    CLOTHING_FILE,
    DATASET_NAMES,
    DRUGS_COM_DIR,
    DRUGS_COM_FILES,
    FDU_MTL_DIR,
    FDU_MTL_DOMAINS,
    TANG_DATASETS,
    TANG_SENTENCE_SEPARATOR,
    class_label_names,
    is_saved_dataset,
    load_amazon_reviews,
    load_clothing_reviews,
    load_drugs_com,
    load_fdu_mtl,
    load_hf_dataset,
    load_named_dataset,
    load_table,
    load_tang_dataset,
    load_tang_ss,
)
from m2a_hf.data.paths import DATA_DIR_ENV, resolve_data_dir
from m2a_hf.data.splits import SPLIT_FRACTIONS, split_indices
from m2a_hf.features import prepare_dataset, tokenize_head_tail
from m2a_hf.values import RESERVED_COLUMNS, normalize_attribute_value
from m2a_hf.vocab import AttributeVocab


__all__ = [
    "AMAZON_MI_DIR",
    "AMAZON_MI_FILES",
    "CLOTHING_ATTRIBUTES",
    "CLOTHING_DIR",
    "CLOTHING_FILE",
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "DRUGS_COM_DIR",
    "DRUGS_COM_FILES",
    "FDU_MTL_DIR",
    "FDU_MTL_DOMAINS",
    "RESERVED_COLUMNS",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "TANG_DATASETS",
    "TANG_SENTENCE_SEPARATOR",
    "AttributeVocab",
    "Columns",
    "M2ADataCollator",
    "class_label_names",
    "is_saved_dataset",
    "load_amazon_reviews",
    "load_clothing_reviews",
    "load_drugs_com",
    "load_fdu_mtl",
    "load_hf_dataset",
    "load_named_dataset",
    "load_table",
    "load_tang_dataset",
    "load_tang_ss",
    "normalize_attribute_value",
    "prepare_dataset",
    "resolve_data_dir",
    "split_indices",
    "tokenize_head_tail",
]
