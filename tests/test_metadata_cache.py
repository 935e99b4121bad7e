"""The series metadata folder's memory of the viewers it served (storage/metadata_cache.py):
which origins and media types the pipeline prepares a new series' metadata for."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from config.settings import load_settings
from storage import metadata_cache
from storage.metadata_cache import (
    MAX_PENDING,
    MAX_VIEWERS,
    PARTIAL_MAX_AGE,
    VIEWER_MAX_AGE,
    VIEWER_REFRESH,
    VIEWERS_FILE,
    MetadataCache,
    MetadataPreparer,
)
from tests.support.services import make_env

SITE = ("host=pacs.example.org;proto=https", "application/dicom+json")
OTHER = ("host=10.1.2.3:5000;proto=http", "application/dicom+json")


def test_the_newest_viewers_are_remembered_and_a_few_at_most(tmp_path: Path) -> None:
    cache = MetadataCache(tmp_path / "cache")
    assert cache.list_viewers() == []  # no folder yet
    cache.remember_viewer(*SITE, now=1000.0)
    cache.remember_viewer(*OTHER, now=1001.0)
    assert cache.list_viewers(now=1002.0) == [OTHER, SITE]
    # A client sending Host headers of its own pushes out old pairs, never grows the list:
    # what the pipeline prepares per series stays bounded.
    for number in range(10):
        cache.remember_viewer(f"host=junk{number}.example;proto=http", "*/*", now=1003.0 + number)
    assert len(cache.list_viewers(now=1020.0)) == MAX_VIEWERS
    cache.remember_viewer(*SITE, now=1030.0)
    assert cache.list_viewers(now=1031.0)[0] == SITE


def test_the_newest_pair_is_rewritten_only_when_its_time_is_stale(tmp_path: Path) -> None:
    """Called for every body served: a file write each time would be a write per click."""
    cache = MetadataCache(tmp_path)
    cache.remember_viewer(*SITE, now=1000.0)
    written = (tmp_path / VIEWERS_FILE).stat().st_mtime_ns
    cache.remember_viewer(*SITE, now=1000.0 + VIEWER_REFRESH / 2)
    assert (tmp_path / VIEWERS_FILE).stat().st_mtime_ns == written
    assert json.loads((tmp_path / VIEWERS_FILE).read_text())[0][2] == 1000.0
    cache.remember_viewer(*SITE, now=1000.0 + VIEWER_REFRESH + 1)
    assert json.loads((tmp_path / VIEWERS_FILE).read_text())[0][2] == 1000.0 + VIEWER_REFRESH + 1


def test_a_viewer_unused_for_a_week_is_not_prepared_for(tmp_path: Path) -> None:
    cache = MetadataCache(tmp_path)
    cache.remember_viewer(*SITE, now=1000.0)
    cache.remember_viewer(*OTHER, now=1000.0 + VIEWER_MAX_AGE)
    assert cache.list_viewers(now=1000.0 + VIEWER_MAX_AGE + 1) == [OTHER]


def test_a_damaged_viewers_file_is_read_as_none_and_replaced(tmp_path: Path) -> None:
    cache = MetadataCache(tmp_path)
    for damaged in ("{not json", '{"a": 1}', "[[1, 2]]", '[["a", "b", "yesterday"]]'):
        (tmp_path / VIEWERS_FILE).write_text(damaged)
        assert cache.list_viewers() == [], damaged
    cache.remember_viewer(*SITE)
    assert cache.list_viewers() == [SITE]
    assert not list(tmp_path.glob("*.partial"))


def test_what_a_killed_writer_left_is_removed_once_stale(tmp_path: Path) -> None:
    """A portal or worker killed mid-body leaves its temporary file: the next body kept
    removes it once nobody can still be writing it; a body being written now stays."""
    cache = MetadataCache(tmp_path)
    left = tmp_path / "tmpkilled.partial"
    left.write_bytes(b"half a body")
    cache.prune(now=left.stat().st_mtime + PARTIAL_MAX_AGE / 2)
    assert left.exists()
    list(cache.write_through("1.2/3.4", "key", [b"a body"]))
    with cache.open("1.2/3.4", "key") as body:
        assert body.read() == b"a body"
    cache.prune(now=left.stat().st_mtime + PARTIAL_MAX_AGE + 1)
    assert not left.exists()
    assert cache.has("1.2/3.4", "key")


def test_an_archive_down_leaves_series_unprepared_never_the_ingestion_waiting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on the archive's port: each series fails with a warning, the
    thread ends, and submitting never blocks, however many series come."""
    settings = load_settings(make_env(tmp_path))
    MetadataCache(settings.metadata_cache_dir).remember_viewer(*SITE)
    preparer = MetadataPreparer(settings)
    series = [("1.2.3", f"1.2.3.{number}", 10) for number in range(MAX_PENDING * 2)]
    taken = preparer.submit(series)
    assert 0 < taken <= len(series)
    assert preparer.wait(60), "the thread ends once the queue is empty"
    warnings = [r for r in caplog.records if "viewer metadata not prepared" in r.getMessage()]
    assert len(warnings) == taken
    assert not list(settings.metadata_cache_dir.glob("*.json.gz"))
    assert preparer.submit(series[:1]) == 1 and preparer.wait(60), "a new thread when needed"


def test_a_preparer_thread_ended_by_a_bug_is_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(make_env(tmp_path))
    prepared: list[str] = []

    def prepare(client, cache, study_uid: str, series_uid: str, count: int) -> int:
        if series_uid == "1.2.3.1":
            raise RuntimeError("a bug")
        prepared.append(series_uid)
        return 1

    monkeypatch.setattr(metadata_cache, "prepare_series_metadata", prepare)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # expected: no noise
    preparer = MetadataPreparer(settings)
    assert preparer.submit([("1.2.3", "1.2.3.1", 1)]) == 1
    assert preparer.wait(10), "the thread's end is noted, error or not"
    assert preparer.submit([("1.2.3", "1.2.3.2", 1)]) == 1
    assert preparer.wait(10)
    assert prepared == ["1.2.3.2"]
