"""The leak scan of the de-identification tests: no source identifier in an output's bytes."""

from __future__ import annotations


def assert_clean(data: bytes, identifiers: set[str]) -> None:
    """None of `identifiers` in `data`, case-insensitively, as UTF-8 or Latin-1."""
    lowered = data.lower()
    for value in identifiers:
        for encoding in ("utf-8", "latin-1"):
            try:
                needle = value.lower().encode(encoding)
            except UnicodeEncodeError:
                continue
            assert needle not in lowered, value
