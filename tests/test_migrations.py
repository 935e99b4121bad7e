"""Schema migrations: a new database, a database of the release before migrations, two
upgrades at once, and the servers refusing a database that is behind."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from config.settings import load_settings
from portal import create_app
from storage.database import create_database_engine, get_engine, open_session
from storage.migrations.baseline import BASELINE
from storage.models import Base
from storage.models.studies import Study
from storage.reports import list_templates
from storage.schema import (
    SchemaError,
    comparable_objects,
    head_revisions,
    list_index_names,
    migration_lock,
    upgrade_database,
)
from tests.support.services import PACS_COMMAND, run_pacs

RELEASE_DUMP = Path(__file__).with_name("data") / "bdbaca0-site.sql"
# Indexes that databases made before the release's last changes lack (and one they had).
LATER_INDEXES = (
    "ix_studies_assignee_id",
    "ix_studies_ingested_at",
    "ix_studies_removed_at",
    "ix_studies_modality_status_received",
    "ix_studies_assignee_status_received",
    "ix_studies_priority_status_received",
    "ix_studies_study_date_status",
    "ix_studies_study_datetime",
    "ix_studies_patient_name",
    "ix_studies_patient_name_nocase",
    "ix_studies_given_name_nocase",
    "ix_studies_patient_id_nocase",
    "ix_studies_accession_nocase",
    "ix_report_documents_archived_at",
)


def load_release_database(path: Path, *, later_indexes: bool = True) -> str:
    """The fixture site made by the release before migrations, as a SQLite file."""
    with sqlite3.connect(path) as connection:
        connection.executescript(RELEASE_DUMP.read_text(encoding="utf-8"))
        if not later_indexes:
            for name in LATER_INDEXES:
                connection.execute(f"DROP INDEX {name}")
            connection.execute(
                "CREATE INDEX ix_studies_modality_received ON studies (modality, received_at)"
            )
    connection.close()
    return f"sqlite:///{path}"


def fingerprint_rows(engine: Engine) -> dict[str, tuple[int, str]]:
    """Per table of the release: the row count and a checksum of the columns it still has
    (later revisions drop the users' lock columns and add the audit chain's links)."""
    result = {}
    with engine.connect() as connection:
        for table in BASELINE.sorted_tables:
            kept = [c.name for c in table.columns if c.name in Base.metadata.tables[table.name].c]
            query = f"SELECT {', '.join(kept)} FROM {table.name} ORDER BY 1"
            rows = connection.execute(text(query)).all()
            digest = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
            result[table.name] = (len(rows), digest)
    return result


def describe_schema(engine: Engine) -> dict[str, Any]:
    """What MetaData reflection sees: tables, columns (type, nullability), keys, indexes."""
    schema: dict[str, Any] = {}
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in sorted(inspector.get_table_names()):
            schema[table] = {
                "columns": [
                    (column["name"], str(column["type"]), column["nullable"])
                    for column in inspector.get_columns(table)
                ],
                "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted(
                    tuple(unique["column_names"])
                    for unique in inspector.get_unique_constraints(table)
                ),
                "foreign keys": sorted(
                    (
                        tuple(key["constrained_columns"]),
                        key["referred_table"],
                        tuple(key["referred_columns"]),
                        key["options"].get("ondelete"),
                    )
                    for key in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                    for index in inspector.get_indexes(table)
                ),
                "index names": sorted(list_index_names(connection, table)),
            }
        if connection.dialect.name == "sqlite":
            ddl = "SELECT type, name, sql FROM sqlite_master WHERE name != 'alembic_version'"
            schema["sqlite ddl"] = sorted(connection.execute(text(ddl)).all())
    return schema


# Reflection skips SQLite's expression indexes (compared by name and DDL instead).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression"),
]


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Engine]:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("later_indexes", [True, False], ids=["as-released", "older-indexes"])
def test_a_release_database_is_upgraded_with_every_row_and_the_new_schema(
    tmp_path: Path, fresh: Engine, later_indexes: bool
) -> None:
    url = load_release_database(tmp_path / "pacs.sqlite3", later_indexes=later_indexes)
    engine = create_database_engine(url)
    before = fingerprint_rows(engine)
    assert before["studies"][0] == 5 and before["users"][0] == 5
    assert before["audit_events"][0] == 12 and before["report_documents"][0] == 3

    done = run_pacs({"PACS_HOME": str(tmp_path)}, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"pacs: database upgraded from made before migrations (no revision) to "
        f"{', '.join(head_revisions())}\n"
    )

    assert fingerprint_rows(engine) == before  # the site's edited template included
    assert describe_schema(engine) == describe_schema(fresh)
    with engine.connect() as connection:  # revisions 0010 and 0012 counted the studies there
        assert connection.execute(text("SELECT id, studies FROM study_totals")).all() == [(1, 5)]
        by_modality = connection.execute(text("SELECT modality, studies FROM modality_totals"))
        modalities = connection.execute(
            text("SELECT modality, count(*) FROM studies GROUP BY modality")
        )
        assert sorted(by_modality.all()) == sorted(modalities.all())
    with engine.connect() as connection:
        indexes = list_index_names(connection, "studies")
    assert set(LATER_INDEXES) - {"ix_report_documents_archived_at"} <= indexes
    assert "ix_studies_modality_received" not in indexes
    assert run_pacs({"PACS_HOME": str(tmp_path)}, "db", "upgrade").stdout.startswith(
        "pacs: database already at"
    )
    engine.dispose()


def test_the_migrations_make_what_the_models_describe(database_url: str) -> None:
    """A model changed without a revision of its own fails here (on both backends: column
    types differ there, `timestamptz` on PostgreSQL)."""
    engine = create_database_engine(database_url)
    with engine.connect() as connection:
        options = {
            "compare_type": True,
            "include_object": comparable_objects(Base.metadata, connection.dialect.name),
        }
        context = MigrationContext.configure(connection, opts=options)
        assert compare_metadata(context, Base.metadata) == []
        if connection.dialect.name == "postgresql":  # expression indexes: not compared above
            made = {i["name"]: i for i in inspect(connection).get_indexes("studies")}
            for index in Study.__table__.indexes:
                if index.name.endswith("_lower"):
                    included = index.dialect_options["postgresql"]["include"]
                    reflected = (
                        made[index.name].get("dialect_options", {}).get("postgresql_include")
                    )
                    assert reflected == included, index.name
    engine.dispose()


def test_a_new_database_gets_the_report_templates_from_a_data_migration(fresh: Engine) -> None:
    url = str(fresh.url)
    with open_session(url) as session:
        keys = {template.key for template in list_templates(session)}
    assert {"generic", "ct-chest"} <= keys
    with fresh.begin() as connection:
        connection.execute(text("DELETE FROM report_templates"))
    with open_session(url) as session:
        assert list_templates(session) == []  # reading never writes


def test_the_portal_and_the_pipeline_refuse_a_database_that_is_behind(tmp_path: Path) -> None:
    for name, url in (
        ("empty", f"sqlite:///{tmp_path / 'empty.sqlite3'}"),
        ("release", load_release_database(tmp_path / "release.sqlite3")),
    ):
        settings = load_settings({"PACS_HOME": str(tmp_path), "PACS_DATABASE_URL": url})
        with pytest.raises(SchemaError) as refused:
            create_app({"PACS_SETTINGS": settings, "TESTING": True})
        message = str(refused.value)
        assert "\n" not in message and "run `pacs db upgrade`" in message, (name, message)
        with pytest.raises(SchemaError, match="run `pacs db upgrade`"):
            get_engine(url)  # what every flow's open_session starts with


def test_db_current_and_history_name_the_revisions(tmp_path: Path) -> None:
    env = {"PACS_HOME": str(tmp_path)}
    head = ", ".join(head_revisions())
    current = run_pacs(env, "db", "current")
    assert current.returncode == 0
    assert current.stdout == (
        f"empty (no revision) (behind this release's {head}: run `pacs db upgrade`)\n"
    )
    assert run_pacs(env, "db", "upgrade").returncode == 0
    assert run_pacs(env, "db", "current").stdout == f"{head} (head)\n"
    history = run_pacs(env, "db", "history").stdout.splitlines()
    assert history[0].startswith(f"{head}: ") and history[0].endswith("(head, current)")
    assert history[-1].startswith("0001_baseline: Baseline")


def test_two_upgrades_at_once_wait_for_each_other(tmp_path: Path) -> None:
    env = {"PACS_HOME": str(tmp_path)}
    engine = create_database_engine(f"sqlite:///{tmp_path / 'pacs.sqlite3'}")
    with migration_lock(engine):
        waiting = start_pacs(env, "db", "upgrade")
        time.sleep(3)
        assert waiting.poll() is None  # blocked on the lock while another upgrade holds it
    assert waiting.wait(timeout=120) == 0

    racing = tmp_path / "race"
    racing.mkdir()
    env = {"PACS_HOME": str(racing)}
    first, second = start_pacs(env, "db", "upgrade"), start_pacs(env, "db", "upgrade")
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert sorted(out.split(" from ")[0].split(" at ")[0] for out, _ in outputs) == [
        "pacs: database already",
        "pacs: database upgraded",
    ]
    with sqlite3.connect(racing / "pacs.sqlite3") as connection:
        assert connection.execute("SELECT count(*) FROM report_templates").fetchone()[0] == 6
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (revision,) for revision in head_revisions()
        ]
    connection.close()
    engine.dispose()


def start_pacs(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(PACS_COMMAND), *args],
        env={**env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_database_it_cannot_upgrade_is_refused_with_one_line(tmp_path: Path) -> None:
    env = {"PACS_HOME": str(tmp_path)}
    path = tmp_path / "pacs.sqlite3"
    load_release_database(path)
    with sqlite3.connect(path) as connection:
        connection.execute("ALTER TABLE users DROP COLUMN dicom_name")
    connection.close()
    refused = run_pacs(env, "db", "upgrade")
    assert refused.returncode == 1
    assert refused.stderr == (
        "pacs: table users has no column dicom_name: this database was not made by the release "
        "before migrations, and cannot be upgraded\n"
    )

    newer = tmp_path / "newer"
    newer.mkdir()
    assert run_pacs({"PACS_HOME": str(newer)}, "db", "upgrade").returncode == 0
    with sqlite3.connect(newer / "pacs.sqlite3") as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'f00d_from_the_future'")
    connection.close()
    for args in (["db", "upgrade"], ["user", "list"]):
        refused = run_pacs({"PACS_HOME": str(newer)}, *args)
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1
        assert "was upgraded by a newer release (revision f00d_from_the_future)" in refused.stderr


def test_the_scaled_out_portal_and_worker_refuse_a_database_that_is_behind(
    tmp_path: Path,
) -> None:
    """`pacs portal` checks once before gunicorn forks its processes (found dead in the
    scaled-out platform, where the `/changes` feed hid that no portal answered)."""
    env = {"PACS_HOME": str(tmp_path), "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    for args in (["portal"], ["worker"]):
        refused = run_pacs(env, *args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert refused.stderr.count("\n") == 1 and "run `pacs db upgrade`" in refused.stderr


def test_every_revision_id_fits_alembic_version_on_postgresql() -> None:
    """`alembic_version.version_num` is VARCHAR(32): SQLite ignores the length, PostgreSQL
    refuses the upgrade (found by the scaled-out test)."""
    versions = Path(__file__).resolve().parents[1] / "storage" / "migrations" / "versions"
    ids = [path.stem for path in versions.glob("0*.py")]
    assert ids and all(len(revision) <= 32 for revision in ids), ids
    for path in versions.glob("0*.py"):
        assert f'revision = "{path.stem}"' in path.read_text(), path.name
