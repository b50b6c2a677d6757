"""Benchmarks of m2a-hf, run from the repository root as modules:

    python -m benchmarks.accuracy.run ...    python -m benchmarks.perf.run ...    python -m benchmarks.adapter_sizes

Not part of the installed library; `benchmarks.common` holds what the runners share (git and machine information).
"""
