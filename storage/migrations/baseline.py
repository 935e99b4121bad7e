"""The schema of the last release made by `create_all` (commit bdbaca0), frozen.

The baseline revision creates it on a new database; `pacs db upgrade` completes a database
made by that release with it (the tables and indexes it lacks) before stamping the
baseline. It never follows the models: later changes are revisions of their own.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

BASELINE = MetaData()

# Indexes of databases made before the release and dropped since (so an upgraded database
# ends with the same indexes as a new one).
STALE_INDEXES = {"studies": ("ix_studies_modality_received",)}

Table(
    "studies",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("study_instance_uid", String(64), nullable=False, unique=True),
    Column("orthanc_id", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False, index=True),
    Column("patient_name", String(324), nullable=False),
    Column("patient_id", String(64), nullable=False, index=True),
    Column("patient_birth_date", Date),
    Column("patient_sex", String(16), nullable=False),
    Column("accession_number", String(64), nullable=False, index=True),
    Column("study_date", Date),
    Column("study_datetime", DateTime),
    Column("modality", String(16), nullable=False),
    Column("modalities", String(128), nullable=False),
    Column("description", String(256), nullable=False),
    Column("body_part", String(64), nullable=False),
    Column("referring_physician", String(324), nullable=False),
    Column("institution", String(128), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("ordered_at", DateTime),
    Column("received_at", DateTime, nullable=False),
    Column("ingested_at", DateTime, nullable=False, index=True),
    Column("removed_at", DateTime, index=True),
    Column("series_count", Integer, nullable=False),
    Column("instance_count", Integer, nullable=False),
    Column("warnings", JSON, nullable=False),
    Column("assignee_id", Integer, ForeignKey("users.id"), index=True),
    Index("ix_studies_status_received", "status", "received_at"),
    Index("ix_studies_modality_status_received", "modality", "status", "received_at"),
    Index("ix_studies_assignee_status_received", "assignee_id", "status", "received_at"),
    Index("ix_studies_priority_status_received", "priority", "status", "received_at"),
    Index("ix_studies_study_date_status", "study_date", "status"),
    Index("ix_studies_study_datetime", "study_datetime", "id"),
    Index("ix_studies_patient_name", "patient_name"),
    *(
        Index(f"ix_studies_{name}_nocase", text(f"{expression} COLLATE NOCASE"), "status").ddl_if(
            dialect="sqlite"
        )
        for name, expression in (
            ("patient_name", "patient_name"),
            ("given_name", "substr(patient_name, instr(patient_name, '^') + 1)"),
            ("patient_id", "patient_id"),
            ("accession", "accession_number"),
        )
    ),
)

Table(
    "series",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("series_instance_uid", String(64), nullable=False),
    Column("modality", String(16), nullable=False),
    Column("series_number", Integer),
    Column("description", String(256), nullable=False),
    Column("body_part", String(64), nullable=False),
    Column("instance_count", Integer, nullable=False),
    UniqueConstraint("study_id", "series_instance_uid"),
)

Table(
    "study_events",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("study_id", Integer, ForeignKey("studies.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("user_email", String(255), nullable=False),
    Column("detail", String(512), nullable=False),
    Index("ix_study_events_study_at", "study_id", "at"),
)

Table(
    "quarantine",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("orthanc_id", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False, index=True),
    Column("study_instance_uid", String(255), nullable=False),
    Column("patient_id", String(255), nullable=False),
    Column("patient_name", String(324), nullable=False),
    Column("modalities", String(128), nullable=False),
    Column("description", String(256), nullable=False),
    Column("instance_count", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("quarantined_at", DateTime, nullable=False),
    Column("checked_at", DateTime, nullable=False),
    Column("resolved_at", DateTime),
    Column("resolved_by", String(255)),
)

Table(
    "pipeline_state",
    BASELINE,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

Table(
    "ingest_retries",
    BASELINE,
    Column("orthanc_id", String(64), primary_key=True),
    Column("reason", String(1024), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failed_at", DateTime, nullable=False),
)

Table(
    "users",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("email", String(255), nullable=False, unique=True),
    Column("display_name", String(255), nullable=False),
    Column("dicom_name", String(324), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(128), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("failed_logins", Integer, nullable=False),
    Column("locked_until", DateTime),
    Column("session_version", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_login_at", DateTime),
)

Table(
    "api_tokens",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column(
        "user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

Table(
    "audit_events",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("user_email", String(255), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("action", String(64), nullable=False, index=True),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(255), nullable=False),
    Column("study_uid", String(64), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("detail", String(1024), nullable=False),
)

Table(
    "reports",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column(
        "study_id",
        Integer,
        ForeignKey("studies.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("key", String(32), nullable=False, unique=True),
    Column("status", String(16), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("sections", JSON, nullable=False),
    Column("template_key", String(64), nullable=False),
    Column("author_id", Integer, ForeignKey("users.id")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", String(255), nullable=False),
)

Table(
    "report_documents",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("report_id", Integer, ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sections", JSON, nullable=False),
    Column("addendum_text", Text, nullable=False),
    Column("signed_by", String(255), nullable=False),
    Column("signer_name", String(324), nullable=False),
    Column("signed_at", DateTime, nullable=False),
    Column("series_instance_uid", String(64), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    Column("archived_at", DateTime),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(1024), nullable=False),
    UniqueConstraint("report_id", "sequence"),
    Index("ix_report_documents_archived_at", "archived_at"),
)

Table(
    "report_templates",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("modality", String(16), nullable=False),
    Column("body_part", String(64), nullable=False),
    Column("sections", JSON, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", String(255), nullable=False),
)

Table(
    "imports",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("users.id"), index=True),
    Column("actor", String(255), nullable=False),
    Column("source", String(16), nullable=False),
    Column("counts", JSON, nullable=False),
    Column("summary", JSON, nullable=False),
)

Table(
    "research_exports",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column("requester_id", Integer, ForeignKey("users.id"), index=True),
    Column("requested_by", String(255), nullable=False),
    Column("purpose", String(2048), nullable=False),
    Column("cohort", JSON, nullable=False),
    Column("profile", String(255), nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("reason", String(1024), nullable=False),
    Column("decided_by", String(255), nullable=False),
    Column("requested_at", DateTime, nullable=False),
    Column("decided_at", DateTime),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("salt", String(64), nullable=False),
    Column("total_instances", Integer, nullable=False),
    Column("processed_instances", Integer, nullable=False),
    Column("exported_instances", Integer, nullable=False),
    Column("excluded_instances", Integer, nullable=False),
    Column("withheld_instances", Integer, nullable=False),
    Column("destination", String(1024), nullable=False),
    Column("report", JSON, nullable=False),
)

Table(
    "export_pseudonyms",
    BASELINE,
    Column("id", Integer, primary_key=True),
    Column(
        "export_id", Integer, ForeignKey("research_exports.id", ondelete="CASCADE"), nullable=False
    ),
    Column("patient_key", String(512), nullable=False),
    Column("pseudonym", String(64), nullable=False),
    Column("shift_days", Integer, nullable=False),
    UniqueConstraint("export_id", "patient_key"),
)
