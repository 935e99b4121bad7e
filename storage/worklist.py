"""The worklist query: server-side filters, sorting and pages over the studies table."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from core.records import Priority, StudyStatus
from storage.database import Study, User

# Statuses a radiologist works through; quarantined and removed studies never show.
WORKLIST_STATUSES = (
    StudyStatus.RECEIVED,
    StudyStatus.IN_PROGRESS,
    StudyStatus.PRELIMINARY,
    StudyStatus.FINAL,
    StudyStatus.AMENDED,
)
PRIORITY_RANK = case(
    {Priority.STAT.value: 0, Priority.URGENT.value: 1}, value=Study.priority, else_=2
)
SORT_COLUMNS = {
    "received_at": Study.received_at,
    "study_date": Study.study_datetime,
    "patient_name": Study.patient_name,
    "patient_id": Study.patient_id,
    "accession_number": Study.accession_number,
    "modality": Study.modality,
    "priority": PRIORITY_RANK,
    "status": Study.status,
    "description": Study.description,
    "instances": Study.instance_count,
}


@dataclass(frozen=True)
class WorklistQuery:
    statuses: tuple[str, ...] = ()
    modality: str | None = None
    priority: str | None = None
    assignee: str | None = None  # "me", "unassigned" or an e-mail
    text: str | None = None  # patient name or ID, accession number
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    sort: str = "received_at"
    descending: bool = True
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class WorklistPage:
    items: list[Study]
    total: int
    counts: dict[str, int]  # per status, under every filter but the status one


def filter_studies(query: WorklistQuery, *, me: User | None) -> Select:
    statement = select(Study).where(Study.status.in_(WORKLIST_STATUSES))
    if query.modality:
        statement = statement.where(Study.modality == query.modality.upper())
    if query.priority:
        statement = statement.where(Study.priority == query.priority.upper())
    if query.assignee == "me":
        statement = statement.where(Study.assignee_id == (me.id if me else -1))
    elif query.assignee == "unassigned":
        statement = statement.where(Study.assignee_id.is_(None))
    elif query.assignee:
        statement = statement.join(User, Study.assignee_id == User.id).where(
            User.email == query.assignee.lower()
        )
    if query.text:
        # DICOM names are stored as "Family^Given": match either way the user types them.
        needle = query.text.strip().replace(", ", "^").replace(",", "^")
        pattern = f"%{escape_like(needle)}%"
        statement = statement.where(
            or_(
                Study.patient_name.ilike(pattern, escape="\\"),
                Study.patient_id.ilike(pattern, escape="\\"),
                Study.accession_number.ilike(pattern, escape="\\"),
            )
        )
    if query.date_from:
        statement = statement.where(Study.study_date >= query.date_from)
    if query.date_to:
        statement = statement.where(Study.study_date <= query.date_to)
    return statement


def query_worklist(session: Session, query: WorklistQuery, *, me: User | None) -> WorklistPage:
    """One page of the worklist with its total and the counts per status."""
    base = filter_studies(query, me=me)
    matching = base.subquery()
    counts = dict(
        session.execute(select(matching.c.status, func.count()).group_by(matching.c.status)).all()
    )
    filtered = base.where(Study.status.in_(query.statuses)) if query.statuses else base
    total = session.scalar(select(func.count()).select_from(filtered.subquery())) or 0
    column = SORT_COLUMNS[query.sort]
    order = column.desc() if query.descending else column.asc()
    items = session.scalars(
        filtered.options(selectinload(Study.assignee))
        .order_by(order, Study.id.desc() if query.descending else Study.id.asc())
        .limit(query.per_page)
        .offset((query.page - 1) * query.per_page)
    ).all()
    return WorklistPage(items=list(items), total=total, counts=counts)


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
