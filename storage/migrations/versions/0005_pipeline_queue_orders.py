"""The pipeline's work queue and workers; HL7 orders, received messages and the ORU^R01 outbox.

The models of the engine and orders branches, merged before their revision existed; all
new tables, nothing changed in existing ones.

Revision ID: 0005_pipeline_queue_orders
Revises: 0004_arrivals_evidence_identity
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_pipeline_queue_orders"
down_revision = "0004_arrivals_evidence_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hl7_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("message_type", sa.String(length=16), nullable=False),
        sa.Column("control_id", sa.String(length=64), nullable=False),
        sa.Column("sending_application", sa.String(length=64), nullable=False),
        sa.Column("sending_facility", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("ack_text", sa.String(length=256), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
    )
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hl7_messages_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "pipeline_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pipeline_queue", schema=None) as batch_op:
        batch_op.create_index("ix_pipeline_queue_claim", ["claimed_until", "id"], unique=False)

    op.create_table(
        "pipeline_workers",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("placer_order_number", sa.String(length=64), nullable=False),
        sa.Column("filler_order_number", sa.String(length=64), nullable=False),
        sa.Column("accession_number", sa.String(length=64), nullable=False),
        sa.Column("requested_procedure_id", sa.String(length=64), nullable=False),
        sa.Column("scheduled_step_id", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("scheduled_station_aet", sa.String(length=16), nullable=False),
        sa.Column("scheduled_station_name", sa.String(length=64), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(), nullable=True),
        sa.Column("ordered_at", sa.DateTime(), nullable=True),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("procedure_scheme", sa.String(length=32), nullable=False),
        sa.Column("procedure_text", sa.String(length=256), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=False),
        sa.Column("referring_physician", sa.String(length=324), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id_issuer", sa.String(length=64), nullable=False),
        sa.Column("patient_name", sa.String(length=324), nullable=False),
        sa.Column("patient_birth_date", sa.Date(), nullable=True),
        sa.Column("patient_sex", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(), nullable=False),
        sa.Column("mpps_uid", sa.String(length=64), nullable=True),
        sa.Column("exam_started_at", sa.DateTime(), nullable=True),
        sa.Column("exam_ended_at", sa.DateTime(), nullable=True),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mpps_uid"),
        sa.UniqueConstraint("placer_order_number"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_orders_accession_number"), ["accession_number"], unique=False
        )
        batch_op.create_index(
            "ix_orders_modality_status_scheduled",
            ["modality", "status", "scheduled_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_orders_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(
            "ix_orders_station_status_scheduled", ["scheduled_station_aet", "status"], unique=False
        )
        batch_op.create_index(
            "ix_orders_status_scheduled", ["status", "scheduled_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_orders_study_id"), ["study_id"], unique=False)

    op.create_table(
        "result_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_document_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("control_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["report_document_id"], ["report_documents.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("control_id"),
        sa.UniqueConstraint("report_document_id"),
    )
    with op.batch_alter_table("result_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_result_messages_sent_at"), ["sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("result_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_result_messages_sent_at"))

    op.drop_table("result_messages")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_study_id"))
        batch_op.drop_index("ix_orders_status_scheduled")
        batch_op.drop_index("ix_orders_station_status_scheduled")
        batch_op.drop_index(batch_op.f("ix_orders_patient_id"))
        batch_op.drop_index("ix_orders_modality_status_scheduled")
        batch_op.drop_index(batch_op.f("ix_orders_accession_number"))

    op.drop_table("orders")
    op.drop_table("pipeline_workers")
    with op.batch_alter_table("pipeline_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_pipeline_queue_claim")

    op.drop_table("pipeline_queue")
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hl7_messages_received_at"))

    op.drop_table("hl7_messages")
