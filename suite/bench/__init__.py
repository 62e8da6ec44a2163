"""Benchmarks (run as modules: python -m suite.bench.NAME)."""
