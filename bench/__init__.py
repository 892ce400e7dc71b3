"""Benchmarks (`make bench` runs bench/bench_*.py); helpers and bench-only Django modules."""
