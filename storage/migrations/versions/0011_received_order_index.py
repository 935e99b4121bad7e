"""PostgreSQL: an index in the worklist's default order, `(received_at, id)`.

The default page lists every status newest first. SQLite reads it from the per-status
ranges of the `(key, status, received_at)` indexes; PostgreSQL cannot merge those and sorted
the whole table instead (50 ms at 100,000 studies, ten times that at a million). Walked
backwards, this index gives the page's 50 rows at once. PostgreSQL only: SQLite's planner,
without statistics, would take it for the filtered pages too.

Revision ID: 0011_received_order_index
Revises: 0010_study_totals
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0011_received_order_index"
down_revision = "0010_study_totals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_studies_received_id", "studies", ["received_at", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_studies_received_id", table_name="studies")
