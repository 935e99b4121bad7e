"""The worklist query: server-side filters, sorting and pages over the studies table."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, replace

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.functions import FunctionElement, ReturnTypeFromArgs

from core.records import Priority, StudyStatus
from storage.models.accounts import User
from storage.models.arrivals import StudyArrival
from storage.models.studies import ModalityTotal, Study, StudyTotal

# Statuses a radiologist works through; quarantined and removed studies never show.
WORKLIST_STATUSES = (
    StudyStatus.RECEIVED,
    StudyStatus.IN_PROGRESS,
    StudyStatus.PRELIMINARY,
    StudyStatus.FINAL,
    StudyStatus.AMENDED,
)
# Statuses of a study still to read: "next unread" walks these.
UNREAD_STATUSES = (StudyStatus.RECEIVED, StudyStatus.IN_PROGRESS)
# Urgency: sorting by priority "descending" (the first click) puts STAT first.
PRIORITY_RANK = case(
    {Priority.STAT.value: 2, Priority.URGENT.value: 1}, value=Study.priority, else_=0
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
    arriving: frozenset[int] = frozenset()  # ids of the page's studies still arriving


def filter_studies(query: WorklistQuery, *, me: User | None) -> Select:
    """The studies on the worklist under every filter of `query` but its statuses."""
    return _filtered(select(Study), query, me, WORKLIST_STATUSES, _lead(query, counting=False))


def query_worklist(session: Session, query: WorklistQuery, *, me: User | None) -> WorklistPage:
    """One page of the worklist with its total and the counts per status."""
    counts = _count_statuses(session, query, me)
    wanted = tuple(s for s in WORKLIST_STATUSES if s in query.statuses) or (
        () if query.statuses else WORKLIST_STATUSES
    )
    # The counts are taken under every filter but the status one: the total is their sum.
    total = sum(counts.get(status, 0) for status in wanted)
    offset = (query.page - 1) * query.per_page
    if offset >= total:
        return WorklistPage(items=[], total=total, counts=counts)
    column = SORT_COLUMNS[query.sort]
    order = column.desc() if query.descending else column.asc()
    items = session.scalars(
        _filtered(select(Study), query, me, wanted, _page_lead(query, total))
        .options(selectinload(Study.assignee))
        .order_by(order, Study.id.desc() if query.descending else Study.id.asc())
        .limit(query.per_page)
        .offset(offset)
    ).all()
    arriving = find_arriving(session, [study.id for study in items])
    return WorklistPage(items=list(items), total=total, counts=counts, arriving=arriving)


def fingerprint_page(page: WorklistPage) -> str:
    """A short hash of what the page shows: the worklist's ETag, so that a browser polling
    for changes gets 304 until a study arrives, changes status, assignee, priority or size."""
    digest = hashlib.sha256(repr((page.total, sorted(page.counts.items()))).encode())
    for study in page.items:
        row = (
            study.study_instance_uid,
            study.status,
            study.priority,
            study.assignee_id,
            study.instance_count,
            study.id in page.arriving,
        )
        digest.update(repr(row).encode())
    return digest.hexdigest()[:32]


def find_next_unread(
    session: Session, query: WorklistQuery, *, me: User, after: Study | None
) -> Study | None:
    """The next study still to read (received or in progress, not someone else's) in the
    list `query` describes, in its order, after `after`; from the top when none follows.

    Keyset on (sort column, id) from `after`'s own values, so `after` may have left the list
    (just signed) and the walk still continues from where it was."""
    statuses = tuple(s for s in UNREAD_STATUSES if not query.statuses or s in query.statuses)
    if not statuses:
        return None
    column = SORT_COLUMNS[query.sort]
    unread = _filtered(select(Study), query, me, statuses, _lead(query, counting=False)).where(
        or_(Study.assignee_id.is_(None), Study.assignee_id == me.id)
    )
    order = (column.desc(), Study.id.desc()) if query.descending else (column.asc(), Study.id.asc())
    if after is not None:
        unread = unread.where(Study.id != after.id)
        value = session.scalar(select(column).where(Study.id == after.id))
        if value is not None:
            if query.descending:
                later = or_(column < value, and_(column == value, Study.id < after.id))
            else:
                later = or_(column > value, and_(column == value, Study.id > after.id))
            found = session.scalars(unread.where(later).order_by(*order).limit(1)).first()
            if found is not None:
                return found
    return session.scalars(unread.order_by(*order).limit(1)).first()


def find_arriving(session: Session, study_ids: list[int]) -> frozenset[int]:
    """Which of these studies are still arriving (a page's worth: one primary-key lookup)."""
    if not study_ids:
        return frozenset()
    query = select(StudyArrival.study_id).where(StudyArrival.study_id.in_(study_ids))
    return frozenset(session.scalars(query))


# How the queries stay fast at a million studies (see benchmarks/worklist.py).
#
# SQLite plans without statistics (nothing runs ANALYZE on the database the migrations made): it
# takes any `column = value` on an indexed column for ~10 rows, so `status IN (5 statuses)` looks
# as selective as `modality = 'CT'`, though `final` is ~98 % of the table. So each query lets
# one group of conditions lead, as `_lead` and `_page_lead` decide, and writes the others
# with `no_index`: the same test, but no index of theirs can drive the plan.
#
# - "filters": status, modality, priority and assignee are index keys. Every composite index
#   is (key, status, received_at): the counts are one index range per status, and the
#   default received_at order comes from the index per status value (SQLite stops each
#   status's walk once the page is full), so there is no sort of the matching rows either.
# - "text": the search, a case-insensitive prefix match served by the ix_studies_*_nocase
#   indexes (ix_studies_*_lower on PostgreSQL; see `_text_conditions`). Its counts are one
#   range of each field's index, read as (id, status) from the index alone.
# - "date": a study_date range, when it is short (or the only filter of the counts): the
#   (study_date, status) index covers the counts.
# - "sort": a page in another order than received_at, of more studies than SORT_LIMIT: the
#   planner walks that column's index (INDEXED_SORTS) and keeps the matches, rather than
#   sort them all.
# Counts with no filter, or the modality alone, read the totals the database keeps
# (`_count_all_statuses`).
#
# Still slow at a million (hundreds of ms): sorting by a column without an index (modality,
# priority, description, images) over many studies; a search matching tens of thousands
# (a 2-3 letter prefix) sorted otherwise than by received_at; a long date range together with
# a key filter (the key's index leads, the date is checked row by row).
MAX_LEADING_DATE_RANGE = datetime.timedelta(days=31)
SORT_LIMIT = 5_000  # the most matching studies a page sorts itself
# The orders an index gives as `ORDER BY column, id`: ix_studies_study_datetime,
# ix_studies_patient_name, ix_studies_patient_id, ix_studies_accession_number, ix_studies_status
# (an index ends with the rowid, which is `id`). received_at has the composite indexes.
INDEXED_SORTS = {"study_date", "patient_name", "patient_id", "accession_number", "status"}


def _lead(query: WorklistQuery, *, counting: bool) -> str:
    if query.text:
        return "text"
    keys = bool(query.modality or query.priority or query.assignee)
    dated = query.date_from is not None or query.date_to is not None
    short = (
        query.date_from is not None
        and query.date_to is not None
        and query.date_to - query.date_from <= MAX_LEADING_DATE_RANGE
    )
    if short or (counting and dated and not keys):
        return "date"
    return "filters"


def _page_lead(query: WorklistQuery, total: int) -> str:
    """The lead for a page of `total` matching studies."""
    lead = _lead(query, counting=False)
    if total <= SORT_LIMIT:
        return lead
    if lead == "filters" and query.sort in INDEXED_SORTS:
        return "sort"
    # A short name prefix: walk the received order and keep the matches, which come soon as
    # names are spread over time. Not for digits: IDs and accession numbers, given out in
    # sequence, cluster in time, and the walk could cross most of the table to reach them.
    if lead == "text" and query.sort == "received_at" and not any(c.isdigit() for c in query.text):
        return "filters"
    return lead


def _filtered(
    statement: Select,
    query: WorklistQuery,
    me: User | None,
    statuses: tuple[str, ...],
    lead: str,
) -> Select:
    """`statement` under the filters of `query` and `statuses`, planned for `lead`."""

    def key(column):
        return column if lead == "filters" else no_index(column)

    statement = statement.where(key(Study.status).in_(statuses))
    if query.modality:
        statement = statement.where(key(Study.modality) == query.modality.upper())
    if query.priority:
        statement = statement.where(key(Study.priority) == query.priority.upper())
    if query.assignee == "me":
        statement = statement.where(key(Study.assignee_id) == (me.id if me else -1))
    elif query.assignee == "unassigned":
        statement = statement.where(key(Study.assignee_id).is_(None))
    elif query.assignee:
        statement = statement.join(User, Study.assignee_id == User.id).where(
            User.email == query.assignee.lower()
        )
    if query.text and lead == "text":
        # SQLite's MULTI-INDEX OR: a range of each ix_studies_*_nocase index, ids deduplicated.
        statement = statement.where(or_(*_text_conditions(query.text)))
    elif query.text:
        # Another index leads: the search is a test of each row it gives.
        statement = statement.where(matches_elsewhere(*_text_conditions(query.text)))
    study_date = Study.study_date if lead == "date" else no_index(Study.study_date)
    if query.date_from:
        statement = statement.where(study_date >= query.date_from)
    if query.date_to:
        statement = statement.where(study_date <= query.date_to)
    return statement


def _text_conditions(text: str) -> list:
    """Patient name, patient ID or accession number starts with `text`, ignoring case; a name
    matches by its family or its given name.

    Trade-off: a prefix match, not a substring one as before. `%text%` cannot use an index
    and costs a scan of every study (seconds a query at a million); a case-insensitive prefix
    range is an index lookup. "smi" finds Smith^John, "john" finds him too, but
    "ohn" or the middle of an ID no longer do.
    """
    # DICOM names are stored as "Family^Given": match either way the user types them.
    needle = text.strip().replace(", ", "^").replace(",", "^")
    return [
        starts_with_ignoring_case(expression, needle)
        for expression in (
            Study.patient_name,
            given_name(Study.patient_name),
            Study.patient_id,
            Study.accession_number,
        )
    ]


def _count_statuses(session: Session, query: WorklistQuery, me: User | None) -> dict[str, int]:
    filtered = query.priority or query.assignee or query.text or query.date_from or query.date_to
    if not filtered:
        return _count_all_statuses(session, query.modality.upper() if query.modality else None)
    lead = _lead(query, counting=True)
    if lead == "filters":
        # One count per status, each a range of a (key, status, ...) index: half the time of
        # grouping the key's whole range by status.
        statement = union_all(
            *(
                _filtered(
                    select(literal(status.value), func.count()).select_from(Study),
                    query,
                    me,
                    (status,),
                    lead,
                )
                for status in WORKLIST_STATUSES
            )
        )
        return {status: count for status, count in session.execute(statement).all() if count}
    status = no_index(Study.status)
    if lead == "text":
        # Each field's range of its search index, counted per status from the index alone
        # (a short prefix's tens of thousands of matches are never visited). A study an
        # earlier field matched is left out of the later fields' counts, so none is counted
        # twice and no id is deduplicated (a hash of every match: half the count's time).
        # The searched columns are NOT NULL: NOT of a condition is never unknown.
        others = replace(query, text=None)
        counts = select(status, func.count()).select_from(Study)
        conditions = _text_conditions(query.text)
        statement = union_all(
            *(
                _filtered(counts, others, me, WORKLIST_STATUSES, lead)
                .where(condition, *(not_(earlier) for earlier in conditions[:field]))
                .group_by(status)
                for field, condition in enumerate(conditions)
            )
        )
        totals: dict[str, int] = {}
        for name, count in session.execute(statement):
            totals[name] = totals.get(name, 0) + count
        return totals
    # A date range (few rows, from its own index): grouped by `+status`, lest the planner walk
    # a status index for the groups to come in order.
    statement = _filtered(
        select(status, func.count()).select_from(Study), query, me, WORKLIST_STATUSES, lead
    ).group_by(status)
    return dict(session.execute(statement).all())


STUDY_TOTAL = select(StudyTotal.studies).where(StudyTotal.id == 1)
MODALITY_TOTAL = select(ModalityTotal.studies).where(
    ModalityTotal.modality == bindparam("modality")
)


def _count_all_statuses(session: Session, modality: str | None) -> dict[str, int]:
    """The counts per status of the whole worklist, or of one modality's studies, without
    walking their hundreds of thousands of final studies.

    The number of studies (of each modality) is a row the database keeps (`study_totals`,
    `modality_totals`); the statuses other than `final` are a few thousand rows of the
    (modality,) status indexes; final is the difference.
    """
    dominant = StudyStatus.FINAL.value
    if modality is None:
        everything = session.scalar(STUDY_TOTAL) or 0
        kept = true()
    else:
        everything = session.scalar(MODALITY_TOTAL, {"modality": modality}) or 0
        kept = Study.modality == modality
    others = dict(
        session.execute(
            union_all(
                select(Study.status, func.count())
                .where(kept, Study.status < dominant)
                .group_by(Study.status),
                select(Study.status, func.count())
                .where(kept, Study.status > dominant)
                .group_by(Study.status),
            )
        ).all()
    )
    counts = {status: n for status, n in others.items() if status in WORKLIST_STATUSES}
    if final := everything - sum(others.values()):
        counts[dominant] = final
    return counts


class no_index(ReturnTypeFromArgs):
    """`column` unchanged; on SQLite `+column`, which no index can serve (the SQLite way of
    keeping a condition from driving the plan)."""

    _register = False
    inherit_cache = True


@compiles(no_index)
def _no_index(element: no_index, compiler, **kw) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(no_index, "sqlite")
def _no_index_sqlite(element: no_index, compiler, **kw) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


class matches_elsewhere(FunctionElement):
    """Any of these search conditions holds, tested on each row another index gives.

    On SQLite `+id IN (the ids of each condition's index range)`: the OR itself would make
    SQLite read the search indexes instead of the one meant to lead. Elsewhere the OR, which
    PostgreSQL tests on each row of the index it walks (the IN became a join that read the
    whole table: 470 ms at a million studies, against 3 ms)."""

    inherit_cache = True
    name = "matches_elsewhere"  # typeless, as starts_with_ignoring_case


@compiles(matches_elsewhere, "sqlite")
def _matches_elsewhere_sqlite(element: matches_elsewhere, compiler, **kw) -> str:
    matches = union(*(select(Study.id).where(condition) for condition in element.clauses))
    return compiler.process(no_index(Study.id).in_(matches), **kw)


@compiles(matches_elsewhere)
def _matches_elsewhere(element: matches_elsewhere, compiler, **kw) -> str:
    return f"({compiler.process(or_(*element.clauses), **kw)})"


class given_name(ReturnTypeFromArgs):
    """What follows the first "^" of a DICOM person name (all of it when there is none).

    On SQLite the very expression of the index ix_studies_given_name_nocase."""

    _register = False
    inherit_cache = True


@compiles(given_name, "sqlite")
def _given_name_sqlite(element: given_name, compiler, **kw) -> str:
    name = compiler.process(element.clauses, **kw)
    return f"substr({name}, instr({name}, '^') + 1)"


@compiles(given_name)
def _given_name(element: given_name, compiler, **kw) -> str:
    name = compiler.process(element.clauses, **kw)
    return f"substr({name}, strpos({name}, '^') + 1)"


class starts_with_ignoring_case(FunctionElement):
    """`expression` starts with `prefix`, ignoring case (as `lower()`, `ILIKE` and SQLite's
    NOCASE do: ASCII letters only, on SQLite).

    On SQLite a NOCASE range, which the `ix_studies_*_nocase` indexes serve; on PostgreSQL a
    range of `lower()` in "C" order, which the `ix_studies_*_lower` ones serve. Elsewhere
    `lower()` of both, compared."""

    inherit_cache = True
    name = "starts_with_ignoring_case"  # typeless: a Boolean would compare to 1 on SQLite


@compiles(starts_with_ignoring_case, "sqlite")
def _starts_with_sqlite(element: starts_with_ignoring_case, compiler, **kw) -> str:
    expression, prefix = (compiler.process(clause, **kw) for clause in element.clauses)
    # U+10FFFF sorts after every character: [prefix, prefix + U+10FFFF) is "starts with".
    return (
        f"({expression} COLLATE NOCASE >= {prefix}"
        f" AND {expression} COLLATE NOCASE < {prefix} || char(1114111))"
    )


@compiles(starts_with_ignoring_case, "postgresql")
def _starts_with_postgresql(element: starts_with_ignoring_case, compiler, **kw) -> str:
    expression, prefix = (compiler.process(clause, **kw) for clause in element.clauses)
    # In bytewise ("C") order [lower(prefix), lower(prefix) || U+10FFFF) is "starts with",
    # the range the ix_studies_*_lower indexes (revision 0006) serve.
    folded = f'lower({expression}) COLLATE "C"'
    return f"({folded} >= lower({prefix}) AND {folded} < lower({prefix}) || chr(1114111))"


@compiles(starts_with_ignoring_case)
def _starts_with(element: starts_with_ignoring_case, compiler, **kw) -> str:
    expression, prefix = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(substr(lower({expression}), 1, length({prefix})) = lower({prefix}))"
