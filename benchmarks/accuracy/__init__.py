"""Accuracy benchmark: `python -m benchmarks.accuracy.run` (training runs), `python -m benchmarks.accuracy.report`."""
