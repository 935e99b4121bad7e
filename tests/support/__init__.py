"""Helpers shared by the tests (and the benchmarks): services on free ports, portal apps and
users, studies, browser sign-in. Fixtures live in `tests/conftest.py`; no test imports
another test module or conftest."""
