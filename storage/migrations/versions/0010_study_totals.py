"""The number of studies, kept by the database: the worklist's counts without a table scan.

`study_totals` holds one row, the number of rows in `studies`, changed by triggers on every
insert and delete. Counting a million studies costs PostgreSQL a walk of a whole index on
every unfiltered worklist request (61 ms at 100,000 studies); reading one row costs nothing.
- SQLite: a trigger a row (SQLite has no others; it has one writer at a time).
- PostgreSQL: a trigger a statement, from its transition table, so a COPY of a million rows
  is one update; a statement that inserts nothing takes no lock on the row.

Revision ID: 0010_study_totals
Revises: 0008_peer_review_teaching
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_study_totals"
down_revision = "0008_peer_review_teaching"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    "CREATE TRIGGER study_totals_insert AFTER INSERT ON studies"
    " BEGIN UPDATE study_totals SET studies = studies + 1 WHERE id = 1; END",
    "CREATE TRIGGER study_totals_delete AFTER DELETE ON studies"
    " BEGIN UPDATE study_totals SET studies = studies - 1 WHERE id = 1; END",
)


def postgresql_function(name: str, change: str) -> str:
    """A trigger function that adds `change` (an expression of the statement's rows)."""
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE change bigint;"
        f" BEGIN change := {change};"
        " IF change <> 0 THEN"
        " UPDATE study_totals SET studies = studies + change WHERE id = 1;"
        " END IF;"
        " RETURN NULL;"
        " END $$"
    )


POSTGRESQL_TRIGGERS = (
    postgresql_function("count_inserted_studies", "(SELECT count(*) FROM inserted)"),
    postgresql_function("count_deleted_studies", "-(SELECT count(*) FROM deleted)"),
    postgresql_function("count_truncated_studies", "-(SELECT studies FROM study_totals)"),
    "CREATE TRIGGER study_totals_insert AFTER INSERT ON studies"
    " REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT"
    " EXECUTE FUNCTION count_inserted_studies()",
    "CREATE TRIGGER study_totals_delete AFTER DELETE ON studies"
    " REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT"
    " EXECUTE FUNCTION count_deleted_studies()",
    "CREATE TRIGGER study_totals_truncate AFTER TRUNCATE ON studies"
    " FOR EACH STATEMENT EXECUTE FUNCTION count_truncated_studies()",
)
POSTGRESQL_FUNCTIONS = (
    "count_inserted_studies",
    "count_deleted_studies",
    "count_truncated_studies",
)


def upgrade() -> None:
    op.create_table(
        "study_totals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("studies", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL_TRIGGERS if postgresql else SQLITE_TRIGGERS:
        op.execute(statement)
    # Nothing else writes meanwhile: the portal and the workers refuse a database behind.
    op.execute("INSERT INTO study_totals (id, studies) SELECT 1, count(*) FROM studies")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in POSTGRESQL_FUNCTIONS:  # with the triggers that call them
            op.execute(f"DROP FUNCTION {name}() CASCADE")
    else:
        op.execute("DROP TRIGGER study_totals_insert")
        op.execute("DROP TRIGGER study_totals_delete")
    op.drop_table("study_totals")
