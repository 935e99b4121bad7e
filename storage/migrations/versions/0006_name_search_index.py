"""Name search by case-insensitive prefix on an index on PostgreSQL; UTC times as timestamptz.

PostgreSQL only (SQLite has its NOCASE indexes since 0001 and no time zones):
- `lower(...) COLLATE "C"` indexes (with status, for the counts) of the four search
  expressions: a prefix is the range [lower(p), lower(p) || U+10FFFF) in bytewise order,
  which an index serves with a bound parameter too (a LIKE pattern needs its value at plan
  time). storage/worklist.py's `starts_with_ignoring_case` asks for that range.
- every UtcDateTime column becomes `timestamptz`, its naive UTC values read as UTC.

Revision ID: 0006_name_search_index
Revises: 0007_priors_critical
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006_name_search_index"
down_revision = "0007_priors_critical"
branch_labels = None
depends_on = None

SEARCH_INDEXES = {
    "ix_studies_patient_name_lower": "patient_name",
    "ix_studies_given_name_lower": "substr(patient_name, strpos(patient_name, '^') + 1)",
    "ix_studies_patient_id_lower": "patient_id",
    "ix_studies_accession_lower": "accession_number",
}
# The UtcDateTime columns at this revision, per table.
UTC_COLUMNS = {
    "api_tokens": ("created_at", "expires_at", "revoked_at"),
    "audit_events": ("at",),
    "critical_communications": ("communicated_at", "recorded_at"),
    "critical_notifications": ("created_at", "next_attempt_at", "delivered_at"),
    "critical_results": ("flagged_at", "due_at", "acknowledged_at", "escalated_at"),
    "dicom_modalities": ("added_at",),
    "hl7_messages": ("received_at",),
    "imports": ("at",),
    "ingest_retries": ("failed_at",),
    "orders": ("status_changed_at", "created_at", "updated_at"),
    "pipeline_queue": ("queued_at", "claimed_until"),
    "pipeline_workers": ("started_at", "seen_at"),
    "quarantine": ("quarantined_at", "checked_at", "resolved_at"),
    "report_documents": ("signed_at", "archived_at"),
    "report_templates": ("updated_at",),
    "reports": ("created_at", "updated_at"),
    "research_exports": ("requested_at", "decided_at", "started_at", "finished_at"),
    "result_messages": ("created_at", "sent_at"),
    "sign_in_throttle": ("last_failure_at", "blocked_until"),
    "studies": ("received_at", "ingested_at", "removed_at"),
    "study_arrivals": ("listed_at",),
    "study_events": ("at",),
    "user_sessions": ("created_at", "last_seen_at"),
    "users": ("created_at", "last_login_at"),
}


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for table, columns in UTC_COLUMNS.items():
        changes = ", ".join(
            f"ALTER COLUMN {column} TYPE timestamptz USING {column} AT TIME ZONE 'UTC'"
            for column in columns
        )
        op.execute(f"ALTER TABLE {table} {changes}")
    for name, expression in SEARCH_INDEXES.items():
        op.execute(f'CREATE INDEX {name} ON studies ((lower({expression}) COLLATE "C"), status)')


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name in SEARCH_INDEXES:
        op.execute(f"DROP INDEX {name}")
    for table, columns in UTC_COLUMNS.items():
        changes = ", ".join(
            f"ALTER COLUMN {column} TYPE timestamp USING {column} AT TIME ZONE 'UTC'"
            for column in columns
        )
        op.execute(f"ALTER TABLE {table} {changes}")
