"""Seed the report templates of a new installation (core/report_templates.json).

A data migration: it runs once per database, and only into an empty table, so a site whose
templates were seeded by an earlier release (or edited by its admins) keeps its own.

Revision ID: 0002_seed_report_templates
Revises: 0001_baseline
Create Date: 2026-11-30
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from alembic import op

from core.report_templates import load_default_templates

revision = "0002_seed_report_templates"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None

templates = sa.table(
    "report_templates",
    sa.column("key", sa.String),
    sa.column("name", sa.String),
    sa.column("modality", sa.String),
    sa.column("body_part", sa.String),
    sa.column("sections", sa.JSON),
    sa.column("updated_at", sa.DateTime),
    sa.column("updated_by", sa.String),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.scalar(sa.select(sa.func.count()).select_from(templates)):
        return
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # stored as naive UTC
    op.bulk_insert(
        templates,
        [
            {
                "key": spec.key,
                "name": spec.name,
                "modality": spec.modality,
                "body_part": spec.body_part,
                "sections": spec.sections,
                "updated_at": now,
                "updated_by": "",
            }
            for spec in load_default_templates()
        ],
    )


def downgrade() -> None:
    pass
