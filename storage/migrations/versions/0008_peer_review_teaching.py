"""Peer reviews (RADPEER scores, assignments, the discussion queue) and teaching cases.

New tables only, nothing changed in existing ones.

Revision ID: 0008_peer_review_teaching
Revises: 0006_name_search_index
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_peer_review_teaching"
down_revision = "0006_name_search_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teaching_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("diagnosis", sa.String(length=200), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("keywords", sa.String(length=500), nullable=False),
        sa.Column("difficulty", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("source_study_id", sa.Integer(), nullable=True),
        sa.Column("source_series_uids", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("copy_study_uid", sa.String(length=64), nullable=False),
        sa.Column("copy_orthanc_id", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("left_out", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=1024), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(["source_study_id"], ["studies.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("copy_study_uid"),
    )
    with op.batch_alter_table("teaching_cases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_teaching_cases_author_id"), ["author_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_teaching_cases_copy_orthanc_id"), ["copy_orthanc_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_teaching_cases_modality"), ["modality"], unique=False)
        batch_op.create_index(batch_op.f("ix_teaching_cases_state"), ["state"], unique=False)

    op.create_table(
        "peer_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reviewee_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("context_study_id", sa.Integer(), nullable=True),
        sa.Column("assigned_by", sa.String(length=255), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("score", sa.String(length=2), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("discussion", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("outcome_score", sa.String(length=2), nullable=False),
        sa.Column("outcome_note", sa.Text(), nullable=False),
        sa.Column("outcome_by", sa.String(length=255), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["context_study_id"], ["studies.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["report_id"], ["reports.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["reviewee_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", "reviewer_id", name="uq_peer_reviews_report_reviewer"),
    )
    with op.batch_alter_table("peer_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_peer_reviews_discussion"), ["discussion"], unique=False
        )
        batch_op.create_index("ix_peer_reviews_period", ["period"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_peer_reviews_reviewee_id"), ["reviewee_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_peer_reviews_reviewer_id"), ["reviewer_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_peer_reviews_score"), ["score"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("peer_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_peer_reviews_score"))
        batch_op.drop_index(batch_op.f("ix_peer_reviews_reviewer_id"))
        batch_op.drop_index(batch_op.f("ix_peer_reviews_reviewee_id"))
        batch_op.drop_index("ix_peer_reviews_period")
        batch_op.drop_index(batch_op.f("ix_peer_reviews_discussion"))

    op.drop_table("peer_reviews")
    with op.batch_alter_table("teaching_cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teaching_cases_state"))
        batch_op.drop_index(batch_op.f("ix_teaching_cases_modality"))
        batch_op.drop_index(batch_op.f("ix_teaching_cases_copy_orthanc_id"))
        batch_op.drop_index(batch_op.f("ix_teaching_cases_author_id"))

    op.drop_table("teaching_cases")
