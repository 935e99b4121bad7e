"""Order times: each study's first and last image times; the worklist's station index.

The exam's span when no MPPS gave it, for turnaround analytics. The Modality Worklist's
index by station gains the scheduled time its queries ask a range of.

Revision ID: 0009_order_times
Revises: 0005_pipeline_queue_orders
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_order_times"
down_revision = "0005_pipeline_queue_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_instance_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_instance_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_station_status_scheduled")
        batch_op.create_index(
            "ix_orders_station_status_scheduled",
            ["scheduled_station_aet", "status", "scheduled_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_station_status_scheduled")
        batch_op.create_index(
            "ix_orders_station_status_scheduled", ["scheduled_station_aet", "status"], unique=False
        )
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("last_instance_at")
        batch_op.drop_column("first_instance_at")
