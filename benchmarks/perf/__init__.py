"""Performance benchmark: `python -m benchmarks.perf.run` (one child process per arm), `python -m benchmarks.perf.report`."""
