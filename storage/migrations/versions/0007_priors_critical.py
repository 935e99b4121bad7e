"""Priors and critical results: the index of a patient's studies by date.

Revision ID: 0007_priors_critical
Revises: 0005_pipeline_queue_orders
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007_priors_critical"
down_revision = "0005_pipeline_queue_orders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_studies_patient_issuer_date",
            ["patient_id", "issuer_of_patient_id", "study_date"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_index("ix_studies_patient_issuer_date")
