"""The benchmark of issue 11: `make bench` (see bench/run.py), `make bench-smoke`."""
