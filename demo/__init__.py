"""Synthetic demo studies: fixture data for `pacs demo`, the tests and the benchmarks."""
