"""Benchmarks (not tests): `python -m bench --help`. See docs/PERFORMANCE.md."""
