"""Sign-in throttle and sessions, audit chain, temporary passwords, DICOM modalities.

The models of the auth and dicomport branches, merged before migrations existed. The
users' lock columns go (the throttle replaces them); the audit chain's head is made by the
seed step of every upgrade (storage.schema.seed_database), which chains the existing trail.

Revision ID: 0003_sign_in_audit_modalities
Revises: 0002_seed_report_templates
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sign_in_audit_modalities"
down_revision = "0002_seed_report_templates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "dicom_modalities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("aet", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=256), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("aet"),
    )
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sa.String(length=320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("sign_in_throttle", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sign_in_throttle_last_failure_at"), ["last_failure_at"], unique=False
        )

    op.create_table(
        "user_sessions",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_sessions_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_hash", sa.String(length=64), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("password_temporary", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.drop_column("session_version")
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("locked_until")


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DATETIME(), nullable=True))
        batch_op.add_column(sa.Column("failed_logins", sa.INTEGER(), nullable=False))
        batch_op.add_column(sa.Column("session_version", sa.INTEGER(), nullable=False))
        batch_op.drop_column("password_temporary")

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("chain_hash")

    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_sessions_user_id"))

    op.drop_table("user_sessions")
    with op.batch_alter_table("sign_in_throttle", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_in_throttle_last_failure_at"))

    op.drop_table("sign_in_throttle")
    op.drop_table("dicom_modalities")
    op.drop_table("audit_chain")
