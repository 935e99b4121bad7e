"""Arriving studies, signing evidence, identity changes in quarantine.

The models of the bigstudies and boundary branches, merged before their revision existed;
existing rows get empty values for the new columns.

Revision ID: 0004_arrivals_evidence_identity
Revises: 0003_sign_in_audit_modalities
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_arrivals_evidence_identity"
down_revision = "0003_sign_in_audit_modalities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_headers",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("header", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("study_id"),
    )
    op.create_table(
        "evidence_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "sop_instance_uid"),
    )
    with op.batch_alter_table("evidence_instances", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evidence_instances_study_series", ["study_id", "series_instance_uid"], unique=False
        )

    op.create_table(
        "study_arrivals",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("listed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("study_id"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("identity_changes", sa.JSON(), nullable=False, server_default="[]")
        )

    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("issuer_of_patient_id", sa.String(64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("identity_acknowledged", sa.JSON(), nullable=False, server_default="{}")
        )


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("identity_acknowledged")
        batch_op.drop_column("issuer_of_patient_id")

    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_column("identity_changes")

    op.drop_table("study_arrivals")
    with op.batch_alter_table("evidence_instances", schema=None) as batch_op:
        batch_op.drop_index("ix_evidence_instances_study_series")

    op.drop_table("evidence_instances")
    op.drop_table("evidence_headers")
