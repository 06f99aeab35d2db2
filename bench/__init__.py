"""Benchmarks: run by hand or by `make bench`, never inside the test suite."""
