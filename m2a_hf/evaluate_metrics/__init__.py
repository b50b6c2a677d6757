"""`evaluate` metric modules shipped with m2a-hf (each folder loads with `evaluate.load(<folder>)`, offline, and can be
pushed to the Hub as a metric Space). `M2A_CLASSIFICATION_PATH` is the folder of `m2a_classification`."""

from __future__ import annotations

from pathlib import Path


M2A_CLASSIFICATION_PATH = str(Path(__file__).resolve().parent / "m2a_classification")

__all__ = ["M2A_CLASSIFICATION_PATH"]
