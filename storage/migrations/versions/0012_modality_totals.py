"""The number of studies of each modality, kept by the database as `study_totals` is.

A worklist filtered by modality counts its studies per status. The statuses other than
`final` are a few thousand rows; `final` is most of the table (a third of a million CT
studies at a million), which PostgreSQL counted entry by entry (55 ms). With the modality's
total kept, `final` is that total less the other statuses, as for the unfiltered counts.

`modality_totals` has a row per modality value (`studies.modality`, '' included), changed
by triggers on insert, delete and a change of a study's modality; a status change, the
usual update, does not touch it.
- SQLite: a trigger a row, as for `study_totals`.
- PostgreSQL: a trigger a statement for inserts and deletes, from its transition table (a
  COPY of a million rows is one upsert a modality), and a trigger a row for the rare update
  that changes the modality (PostgreSQL allows no column list on a trigger with transition
  tables).
No deadlock over the rows: PostgreSQL fires a statement's triggers in the order of their
names, so `study_totals_modality_*` fire after `study_totals_*` (0010). An inserting or
deleting transaction therefore waits for the one `study_totals` row, held to the commit,
before it takes any modality row. An update writes its two rows in key order.

Revision ID: 0012_modality_totals
Revises: 0011_received_order_index
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_modality_totals"
down_revision = "0011_received_order_index"
branch_labels = None
depends_on = None

ADD = (
    "INSERT INTO modality_totals (modality, studies) {rows}"
    " ON CONFLICT (modality) DO UPDATE SET studies = modality_totals.studies + excluded.studies"
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER study_totals_modality_insert AFTER INSERT ON studies BEGIN "
    + ADD.format(rows="VALUES (NEW.modality, 1)")
    + "; END",
    "CREATE TRIGGER study_totals_modality_delete AFTER DELETE ON studies BEGIN "
    + ADD.format(rows="VALUES (OLD.modality, -1)")
    + "; END",
    "CREATE TRIGGER study_totals_modality_update AFTER UPDATE OF modality ON studies"
    " WHEN OLD.modality IS NOT NEW.modality BEGIN "
    + ADD.format(rows="VALUES (OLD.modality, -1)")
    + "; "
    + ADD.format(rows="VALUES (NEW.modality, 1)")
    + "; END",
)


def postgresql_function(name: str, rows: str) -> str:
    """A trigger function that adds `rows` (modality, change) to the totals."""
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {ADD.format(rows=rows)};"
        " RETURN NULL;"
        " END $$"
    )


POSTGRESQL_TRIGGERS = (
    postgresql_function(
        "count_inserted_modalities",
        "SELECT modality, count(*) FROM inserted GROUP BY modality ORDER BY modality",
    ),
    postgresql_function(
        "count_deleted_modalities",
        "SELECT modality, -count(*) FROM deleted GROUP BY modality ORDER BY modality",
    ),
    postgresql_function(
        "count_changed_modality",
        "SELECT modality, change FROM (VALUES (OLD.modality, -1), (NEW.modality, 1))"
        " AS changes (modality, change) ORDER BY modality",
    ),
    "CREATE FUNCTION count_truncated_modalities() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN DELETE FROM modality_totals; RETURN NULL; END $$",
    "CREATE TRIGGER study_totals_modality_insert AFTER INSERT ON studies"
    " REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT"
    " EXECUTE FUNCTION count_inserted_modalities()",
    "CREATE TRIGGER study_totals_modality_delete AFTER DELETE ON studies"
    " REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT"
    " EXECUTE FUNCTION count_deleted_modalities()",
    "CREATE TRIGGER study_totals_modality_update AFTER UPDATE OF modality ON studies FOR EACH ROW"
    " WHEN (OLD.modality IS DISTINCT FROM NEW.modality)"
    " EXECUTE FUNCTION count_changed_modality()",
    "CREATE TRIGGER study_totals_modality_truncate AFTER TRUNCATE ON studies"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_truncated_modalities()",
)
POSTGRESQL_FUNCTIONS = (
    "count_inserted_modalities",
    "count_deleted_modalities",
    "count_changed_modality",
    "count_truncated_modalities",
)


def upgrade() -> None:
    op.create_table(
        "modality_totals",
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("studies", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("modality"),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)
    # Nothing else writes meanwhile: the portal and the workers refuse a database behind.
    op.execute(
        "INSERT INTO modality_totals (modality, studies)"
        " SELECT modality, count(*) FROM studies GROUP BY modality"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in POSTGRESQL_FUNCTIONS:  # with the triggers that call them
            op.execute(f"DROP FUNCTION {name}() CASCADE")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER study_totals_modality_{name}")
    op.drop_table("modality_totals")
