"""Benchmarks: `make bench` measures the tool on this machine and writes results.json and results.md."""
