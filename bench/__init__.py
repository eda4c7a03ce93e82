"""Benchmarks for jobyard's speed and packing targets, each measured beside a peer in the
same run (ratios, not absolute times, since these machines are noisy): `python -m bench`."""
