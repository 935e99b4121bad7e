"""Priors' index of a patient's studies; critical results, their calls and webhook outbox.

The index serves the priors list (storage/priors.py); the three tables are new: critical
results, their telephone communications and the outbox of their escalation webhook.

Revision ID: 0007_priors_critical
Revises: 0009_order_times
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_priors_critical"
down_revision = "0009_order_times"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_studies_patient_issuer_date",
            ["patient_id", "issuer_of_patient_id", "study_date"],
            unique=False,
        )
    op.create_table(
        "critical_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("flagged_by", sa.String(length=255), nullable=False),
        sa.Column("flagged_by_name", sa.String(length=324), nullable=False),
        sa.Column("flagged_at", sa.DateTime(), nullable=False),
        sa.Column("document_sequence", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=False),
        sa.Column("escalated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id"),
    )
    with op.batch_alter_table("critical_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_critical_results_open", ["acknowledged_at", "escalated_at", "due_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_critical_results_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "critical_communications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("communicated_at", sa.DateTime(), nullable=False),
        sa.Column("read_back", sa.Boolean(), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_by_name", sa.String(length=324), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["result_id"], ["critical_results.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("critical_communications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_critical_communications_result_id"), ["result_id"], unique=False
        )

    op.create_table(
        "critical_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["result_id"], ["critical_results.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("critical_notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_critical_notifications_pending", ["delivered_at", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_critical_notifications_result_id"), ["result_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("critical_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_critical_notifications_result_id"))
        batch_op.drop_index("ix_critical_notifications_pending")

    op.drop_table("critical_notifications")
    with op.batch_alter_table("critical_communications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_critical_communications_result_id"))

    op.drop_table("critical_communications")
    with op.batch_alter_table("critical_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_critical_results_study_id"))
        batch_op.drop_index("ix_critical_results_open")

    op.drop_table("critical_results")
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index("ix_studies_patient_issuer_date")
