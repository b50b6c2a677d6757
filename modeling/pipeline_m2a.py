"""`M2ATextClassificationPipeline`: text classification with per-sample attributes, for M2A checkpoints.

Self-contained (torch + transformers only): this file ships inside checkpoints as remote code, so that

    >>> from transformers import pipeline
    >>> clf = pipeline(model="user/m2a-yelp", trust_remote_code=True, revision="<commit sha>")  # doctest: +SKIP
    >>> clf({"text": "Great pizza.", "attributes": {"user": "u17", "item": "b42"}})  # doctest: +SKIP
    {'label': '5', 'score': 0.61}
    >>> clf("Great pizza.")  # doctest: +SKIP
    [{'label': '5', 'score': 0.58}]

works without `m2a_hf` installed. `pipeline()` finds this class through the checkpoint's `config.json`:

    "custom_pipelines": {"text-classification": {"impl": "pipeline_m2a.M2ATextClassificationPipeline",
                                                  "pt": ["AutoModelForSequenceClassification"], "tf": [],
                                                  "type": "text"}}

and loads `pipeline_m2a.py` from the checkpoint (local folder or Hub repo) with `trust_remote_code=True`.

Inputs: a string (every attribute unknown), a dict `{"text": ..., "attributes": {"user": "u17", ...}}` (optionally
`"text_pair"`; or `"attribute_ids": [3, -1]` to give ids directly), or a list of those. Attribute values are matched
as normalised strings (`17`, `17.0` and `" 17"` are `"17"`) against the checkpoint's vocabulary (value `i` of an
attribute has id `i`), read from `config.attribute_vocab` (same revision as the weights) or `attribute_vocab.json`; a
value that is missing, `None` or not in the vocabulary becomes `-1`, which the model routes to that attribute's coarse
"unknown value" adapter. `view="coarse"` ignores the attributes altogether (attribute-free use).

Outputs follow the stock `TextClassificationPipeline`: without `top_k`, the best `{"label", "score"}` per input, a
single string giving a one-element list `[{...}]` (a single dict input gives the dict); with `top_k` (`None`: every
label), a list of dicts sorted by score per input.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import Pipeline
from transformers.utils import logging


logger = logging.get_logger(__name__)

ATTRIBUTE_VOCAB_NAME = "attribute_vocab.json"
ATTRIBUTE_VOCAB_FORMAT_VERSION = 1
ATTRIBUTE_VOCAB_FORMAT_NAME = "m2a-attribute-vocab"
PIPELINE_TASK = "text-classification"
# The `config.json` entry that makes `transformers.pipeline(model=<checkpoint>, trust_remote_code=True)` build this
# pipeline. `pt` names must be attributes of the top-level `transformers` module (they are resolved with getattr).
CUSTOM_PIPELINES = {
    PIPELINE_TASK: {
        "impl": "pipeline_m2a.M2ATextClassificationPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "tf": [],
        "type": "text",
    }
}
_UNSET = object()


MISSING_VALUE_STRINGS: frozenset[str] = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA"}
    | {"NULL", "NaN", "NaT", "None", "n/a", "nan", "null"}
)
"""Strings that mean "no value": the ones `pandas.read_csv` reads as missing by default, plus `NaT`."""
_DECIMAL = re.compile(r"([+-]?[0-9]+)\.([0-9]*)")


def normalize_attribute_value(value: Any) -> str | None:
    """The string an attribute value is looked up as, or `None` for a missing value (unknown id -1).

    The single definition of the rule: `m2a_hf` (loaders, `AttributeVocab`) imports it from here, so training and
    this pipeline key on the same strings.

    - Missing (`None`): `None`, float NaN (`float("nan")`, `np.nan`), `pd.NA`, `pd.NaT`, and the strings of
      `MISSING_VALUE_STRINGS` after stripping (`""`, blanks, `"NaN"`, `"nan"`, `"None"`, `"null"`, `"NULL"`, `"N/A"`,
      `"NA"`, `"<NA>"`, ...; case-sensitive, as in pandas). Every missing value is unknown, never a value of its own.
    - Numbers: integers and integral floats give the decimal integer (`767`, `767.0`, `np.float32(767)` -> `"767"`,
      as pandas reads an integer column with gaps); other floats give `repr` (`1.5` -> `"1.5"`, `inf` -> `"inf"`).
    - Strings are stripped of surrounding whitespace. A decimal number written with a point loses its trailing
      fractional zeros, and the point when nothing is left (`"767.0"` -> `"767"`, `"1.50"` -> `"1.5"`), so a column
      read as text matches the same column read as numbers; the integer part is kept as written (`"0767"` and
      `"0767.0"` -> `"0767"`). Other strings are kept as they are (`"1e3"`, `"u17"`).
    - Booleans give `"True"` / `"False"` (what pandas writes to a CSV, so a bool column read back as text matches);
      they are not merged with `1` / `0`.
    - numpy scalars and 0-d tensors are unwrapped with `.item()` first; anything else is `str()`-ed and then
      treated as a string.
    """
    if value is None:
        return None
    if not isinstance(value, (str, bool, int, float)) and callable(getattr(value, "item", None)):
        try:  # numpy scalars, 0-d tensors
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, str):
        return _normalize_text(value)
    if isinstance(value, bool):
        return str(bool(value))
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        value = float(value)  # np.float64 is a float whose repr is "np.float64(...)"
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return _normalize_text(str(value))


def _normalize_text(text: str) -> str | None:
    text = str(text).strip()  # str(): np.str_ -> str
    if text in MISSING_VALUE_STRINGS:
        return None
    if "." in text:
        match = _DECIMAL.fullmatch(text)
        if match is not None:
            whole, fraction = match.group(1), match.group(2).rstrip("0")
            return f"{whole}.{fraction}" if fraction else whole
    return text


def parse_attribute_vocab(vocab: Mapping[str, Any]) -> dict[str, list[str]]:
    """Validate an attribute vocabulary (`attribute_vocab.json`) and return `{name: [value_0, value_1, ...]}`.

    Accepted: `{"format_version": 1, "attributes": [{"name": "user", "values": ["u1", ...]}, ...]}` and the form
    `m2a_hf.vocab.AttributeVocab.save` writes, `{"format": "m2a-attribute-vocab", "version": 1, "attributes": [...]}`.
    The single reader of the file format: `AttributeVocab.from_dict` calls it too. Values are normalised with
    `normalize_attribute_value`; one that is missing, or a repeat of an earlier one, is an error (ids are positions).
    """
    if not isinstance(vocab, Mapping):
        raise ValueError(f"the attribute vocabulary must be a JSON object, got {type(vocab).__name__}.")
    if "format" in vocab:
        if vocab["format"] != ATTRIBUTE_VOCAB_FORMAT_NAME:
            raise ValueError(
                f"attribute vocabulary `format` is {vocab['format']!r}, expected {ATTRIBUTE_VOCAB_FORMAT_NAME!r}."
            )
        version = vocab.get("version")
    else:
        version = vocab.get("format_version")
    if version != ATTRIBUTE_VOCAB_FORMAT_VERSION:
        raise ValueError(
            f"attribute vocabulary version {version!r} is not supported; expected {ATTRIBUTE_VOCAB_FORMAT_VERSION}."
        )
    entries = vocab.get("attributes")
    if not isinstance(entries, list):
        raise ValueError("attribute vocabulary: `attributes` must be a list of {'name': ..., 'values': [...]}.")
    out: dict[str, list[str]] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or "values" not in entry:
            raise ValueError(f"attribute vocabulary: each entry needs `name` and `values`, got {entry!r}.")
        name, values = entry["name"], entry["values"]
        if name in out:
            raise ValueError(f"attribute vocabulary: attribute {name!r} is listed twice.")
        if not isinstance(values, list):
            raise ValueError(f"attribute vocabulary: `values` of {name!r} must be a list.")
        normalised = [normalize_attribute_value(v) for v in values]
        missing = [raw for raw, value in zip(values, normalised, strict=True) if value is None]
        if missing:
            raise ValueError(f"attribute vocabulary: attribute {name!r} lists missing value(s) {missing[:5]}.")
        repeated = sorted(value for value, count in Counter(normalised).items() if count > 1)
        if repeated:
            raise ValueError(
                f"attribute vocabulary: attribute {name!r} lists value(s) {repeated[:5]} more than once (duplicates "
                "after normalisation)."
            )
        out[name] = normalised
    return out


class M2ATextClassificationPipeline(Pipeline):
    """Text classification with an M2A model: maps attribute strings to ids and passes `attribute_ids` to the model.

    Args (beyond those of `transformers.Pipeline`):
        attribute_vocab (`dict` or `str`, *optional*):
            The vocabulary (`attribute_vocab.json` format) or a path to such a file. By default it is read from
            `model.config.attribute_vocab` (stored in `config.json`, so it always matches the loaded revision), else
            from `attribute_vocab.json` next to the weights. Without any, attribute values cannot be mapped to ids:
            an input that gives some is an error naming the checkpoint, unless `allow_missing_vocab`.
        allow_missing_vocab (`bool`, *optional*, defaults to `False`):
            Without a vocabulary, treat every attribute value as unknown (-1, the coarse unknown-value adapters)
            instead of raising.

    Call arguments:
        view (`str`, *optional*): `None` (attribute-aware, default), `"coarse"` (attribute-free) or `"iid"`.
        top_k (`int` or `None`, *optional*): when given, return a list of the `top_k` best labels sorted by score
            (`None`: all labels) instead of the single best `{"label", "score"}`, as the stock pipeline does.
        function_to_apply (`str`, *optional*): `"softmax"`, `"sigmoid"` or `"none"` (the raw logits); default:
            none for `problem_type="regression"`, sigmoid for one label or `"multi_label_classification"`, else
            softmax.

    Returns, as `TextClassificationPipeline`: for a single string without `top_k`, `[{"label", "score"}]` (a list of
    one); for a single dict input, the dict; for a list of inputs, one such result per input; with `top_k`, a list of
    dicts (per input).
        truncation, max_length: passed to the tokenizer (truncation defaults to `True`).
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(
        self,
        *args: Any,
        attribute_vocab: Mapping[str, Any] | str | os.PathLike | None = None,
        allow_missing_vocab: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.attribute_names: list[str] = list(getattr(self.model.config, "attribute_names", None) or [])
        sizes = list(getattr(self.model.config, "attribute_sizes", None) or [None] * len(self.attribute_names))
        self.allow_missing_vocab = bool(allow_missing_vocab)
        vocab = self._load_attribute_vocab(attribute_vocab)
        self.has_attribute_vocab = vocab is not None
        self._value_ids: list[dict[str, int]] = []
        for name, size in zip(self.attribute_names, sizes, strict=True):
            values = vocab.get(name) if vocab is not None else None
            if values is None:
                if vocab is not None:
                    logger.warning(
                        "attribute %r is not in the attribute vocabulary: its values are all unknown.", name
                    )
                values = []
            if size is not None and len(values) > size:
                raise ValueError(
                    f"the attribute vocabulary lists {len(values)} values for {name!r} but the model has only {size}."
                )
            self._value_ids.append({value: i for i, value in enumerate(values)})
        if vocab is not None:
            extra = sorted(set(vocab) - set(self.attribute_names))
            if extra:
                logger.warning("attribute vocabulary entries %s are not attributes of this model; ignored.", extra)

    # ---------------------------------------------------------------------------------------------- vocabulary
    def _load_attribute_vocab(self, source: Mapping[str, Any] | str | os.PathLike | None) -> dict[str, list] | None:
        if source is None:
            source = getattr(self.model.config, "attribute_vocab", None)
        if source is None:
            source = self._find_vocab_file()
        if source is None:
            if self.attribute_names and self.allow_missing_vocab:
                logger.warning(
                    "No attribute vocabulary found (config `attribute_vocab` or %s): every attribute value is treated "
                    "as unknown (-1), i.e. the model's unknown LoRAs are used.",
                    ATTRIBUTE_VOCAB_NAME,
                )
            return None
        if not isinstance(source, Mapping):
            with open(source, encoding="utf-8") as handle:
                source = json.load(handle)
        return parse_attribute_vocab(source)

    def _find_vocab_file(self) -> str | None:
        name_or_path = getattr(self.model.config, "_name_or_path", None) or getattr(self.model, "name_or_path", "")
        if not name_or_path:
            return None
        if os.path.isdir(name_or_path):
            path = os.path.join(name_or_path, ATTRIBUTE_VOCAB_NAME)
            return path if os.path.isfile(path) else None
        try:  # a Hub repo id: the file is fetched from the default branch (see the warning below)
            from transformers.utils import cached_file

            path = cached_file(
                name_or_path,
                ATTRIBUTE_VOCAB_NAME,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )
        except Exception as err:  # noqa: BLE001 - an absent vocabulary must not stop inference
            logger.warning("Could not fetch %s from %s: %s", ATTRIBUTE_VOCAB_NAME, name_or_path, err)
            return None
        if path is not None:
            logger.warning(
                "Read %s from the default branch of %s, which may differ from the loaded revision; store the "
                "vocabulary in config.json (`attribute_vocab`) or pass `attribute_vocab=` to pin it.",
                ATTRIBUTE_VOCAB_NAME,
                name_or_path,
            )
        return path

    def _model_location(self) -> str:
        name_or_path = getattr(self.model.config, "_name_or_path", None) or getattr(self.model, "name_or_path", "")
        return repr(str(name_or_path)) if name_or_path else "this model"

    def attribute_ids_for(self, attributes: Mapping[str, Any] | None, check_vocab: bool = True) -> list[int]:
        """Ids in `config.attribute_names` order; unknown, unseen or missing values give -1.

        Raises:
            ValueError: An attribute the model does not have; or (with `check_vocab`) attribute values given while
                the model has no vocabulary and `allow_missing_vocab` is not set.
        """
        attributes = attributes or {}
        if not isinstance(attributes, Mapping):
            raise ValueError(f"`attributes` must be a mapping of attribute name to value, got {attributes!r}.")
        unknown_names = sorted(set(attributes) - set(self.attribute_names))
        if unknown_names:
            raise ValueError(
                f"unknown attribute(s) {unknown_names}; this model has attributes {self.attribute_names}."
            )
        given = sorted(name for name, value in attributes.items() if normalize_attribute_value(value) is not None)
        if given and check_vocab and not self.has_attribute_vocab and not self.allow_missing_vocab:
            where = self._model_location()
            raise ValueError(
                f"{where} has no attribute vocabulary (no `attribute_vocab` in its config.json, no "
                f"{ATTRIBUTE_VOCAB_NAME}), so the values of {given} cannot be mapped to the ids the model was trained "
                f"with. Copy {ATTRIBUTE_VOCAB_NAME} from the training run's output folder into {where}, or pass "
                "`attribute_vocab=` (a dict or the file's path); `allow_missing_vocab=True` treats every value as "
                "unknown (the coarse unknown-value adapters)."
            )
        ids = []
        for name, value_ids in zip(self.attribute_names, self._value_ids, strict=True):
            value = normalize_attribute_value(attributes.get(name))
            ids.append(-1 if value is None else value_ids.get(value, -1))
        return ids

    # -------------------------------------------------------------------------------------------- Pipeline API
    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, str) and isinstance(result, dict):  # the stock pipeline's single-string shape
            return [result]
        return result

    def _sanitize_parameters(self, view=None, function_to_apply=None, truncation=None, max_length=None, **kwargs):
        preprocess_params: dict[str, Any] = {"check_vocab": view is None}  # other views ignore the attributes
        if truncation is not None:
            preprocess_params["truncation"] = truncation
        if max_length is not None:
            preprocess_params["max_length"] = max_length
        forward_params = {"view": view} if view is not None else {}
        postprocess_params: dict[str, Any] = {}
        if function_to_apply is not None:
            function_to_apply = getattr(function_to_apply, "value", function_to_apply)  # a ClassificationFunction
            function_to_apply = str(function_to_apply).lower()
            if function_to_apply not in ("softmax", "sigmoid", "none"):
                raise ValueError(
                    f"`function_to_apply` must be 'softmax', 'sigmoid' or 'none', got {function_to_apply!r}."
                )
            postprocess_params["function_to_apply"] = function_to_apply
        if "top_k" in kwargs:
            top_k = kwargs.pop("top_k")
            if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
                raise ValueError(f"`top_k` must be an int >= 0 or None (every label), got {top_k!r}.")
            postprocess_params["top_k"] = top_k
        if kwargs:
            raise TypeError(f"unexpected argument(s) for M2ATextClassificationPipeline: {sorted(kwargs)}.")
        return preprocess_params, forward_params, postprocess_params

    def preprocess(
        self, inputs: Any, truncation: bool = True, max_length: int | None = None, check_vocab: bool = True
    ) -> dict[str, Any]:
        text_pair = None
        if isinstance(inputs, str):
            text, ids = inputs, self.attribute_ids_for(None)
        elif isinstance(inputs, Mapping):
            if not isinstance(inputs.get("text"), str):
                raise ValueError(f"a dict input needs a string `text`, got keys {sorted(inputs)}.")
            allowed = {"text", "text_pair", "attributes", "attribute_ids"}
            if set(inputs) - allowed:
                raise ValueError(
                    f"unexpected keys {sorted(set(inputs) - allowed)} in input; allowed: {sorted(allowed)}."
                )
            text, text_pair = inputs["text"], inputs.get("text_pair")
            if inputs.get("attribute_ids") is not None:
                if inputs.get("attributes") is not None:
                    raise ValueError("give either `attributes` or `attribute_ids`, not both.")
                ids = inputs["attribute_ids"]
                if not isinstance(ids, Sequence) or len(ids) != len(self.attribute_names):
                    raise ValueError(
                        f"`attribute_ids` must be a list of {len(self.attribute_names)} ints "
                        f"({self.attribute_names}), got {ids!r}."
                    )
                ids = [int(i) for i in ids]
            else:
                ids = self.attribute_ids_for(inputs.get("attributes"), check_vocab=check_vocab)
        else:
            raise TypeError(
                "inputs must be a string, a dict {'text': ..., 'attributes': {...}} or a list of those, "
                f"got {type(inputs).__name__}."
            )
        encoding = self.tokenizer(
            text, text_pair=text_pair, truncation=truncation, max_length=max_length, return_tensors="pt"
        )
        model_inputs = dict(encoding)
        model_inputs["attribute_ids"] = torch.tensor([ids], dtype=torch.long)  # (1, num_attributes)
        return model_inputs

    def _forward(self, model_inputs: dict[str, Any], view: str | None = None) -> dict[str, torch.Tensor]:
        if view is not None:
            model_inputs = {**model_inputs, "view": view}
        outputs = self.model(**model_inputs)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        return {"logits": logits}

    def postprocess(self, model_outputs: dict[str, torch.Tensor], function_to_apply: str | None = None, top_k=_UNSET):
        logits = model_outputs["logits"][0].float()
        config = self.model.config
        if function_to_apply is None:
            problem_type = getattr(config, "problem_type", None)
            if problem_type == "regression":
                function_to_apply = "none"
            elif problem_type == "multi_label_classification" or config.num_labels == 1:
                function_to_apply = "sigmoid"
            else:
                function_to_apply = "softmax"
        if function_to_apply == "softmax":
            scores = torch.softmax(logits, dim=-1)
        elif function_to_apply == "sigmoid":
            scores = torch.sigmoid(logits)
        else:
            scores = logits
        scores = scores.tolist()
        id2label = config.id2label
        results = [{"label": id2label.get(i, f"LABEL_{i}"), "score": float(s)} for i, s in enumerate(scores)]
        if top_k is _UNSET:
            return max(results, key=lambda r: r["score"])
        results.sort(key=lambda r: r["score"], reverse=True)
        return results if top_k is None else results[:top_k]


__all__ = [
    "ATTRIBUTE_VOCAB_FORMAT_NAME",
    "ATTRIBUTE_VOCAB_FORMAT_VERSION",
    "ATTRIBUTE_VOCAB_NAME",
    "CUSTOM_PIPELINES",
    "PIPELINE_TASK",
    "MISSING_VALUE_STRINGS",
    "M2ATextClassificationPipeline",
    "normalize_attribute_value",
    "parse_attribute_vocab",
]
