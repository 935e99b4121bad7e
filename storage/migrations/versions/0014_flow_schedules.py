"""Whose turn it is to run each scheduled flow: a row a flow, with its next due time.

`pacs worker` runs the platform's scheduled flows (reconciliation, the outboxes, the
warehouse) in its own long-running process. Before, each run was a run of a scheduled
deployment: a new Python process a run (imports and Prefect's engine, about 4 s of CPU),
four a minute, on an idle site a quarter of a core and bursts that held back the portal.
However many workers there are, one takes each turn: an UPDATE that moves `due_at` on only
where it is due and no live worker is still running the last turn (`running_since`, as the
deployments' concurrency limit of 1 did); see `storage/pipeline_queue.py` `take_turn`.

Revision ID: 0014_flow_schedules
Revises: 0013_covering_search_indexes
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_flow_schedules"
down_revision = "0013_covering_search_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_schedules",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_by", sa.String(length=128), nullable=True),
        sa.Column("running_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("flow_schedules")
