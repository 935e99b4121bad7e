"""Turnaround dashboards for managers and admins, drawn from the DuckDB warehouse.

The page holds the filters and empty chart panels; portal/static/analytics.js fetches
`data.json` with the same query string and draws the Plotly figures in it, again on every
filter change. Every chart's rows download as CSV. Patient names (in the breaches table)
are for admins only: the warehouse has none, they come from the operational database.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import plotly
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user
from marshmallow import ValidationError

from core.accounts import ANALYTICS_ROLES, Role
from core.critical_results import LABELS, percentile
from core.csv_cells import SafeCsvWriter
from core.records import Priority, format_person_name
from core.turnaround import PERIODS, TurnaroundFilters
from portal.analytics import charts
from portal.analytics.filters import AnalyticsArgs, to_filters
from portal.extensions import db
from portal.security import audit, roles, utc_now
from storage.analytics import find_patients
from storage.critical_results import summarize_critical_results
from warehouse import queries
from warehouse.queries import WarehouseMissing, WarehouseReader

bp = Blueprint("analytics", __name__, url_prefix="/analytics", template_folder="../templates")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

# Chart name -> its rows for the filters and period.
Rows = list[dict[str, Any]]
CHART_ROWS: dict[str, Callable[[duckdb.DuckDBPyConnection, TurnaroundFilters, str], Rows]] = {
    "turnaround_modality": lambda con, f, period: queries.query_turnaround(
        con, f, group_by="modality", period=period
    ),
    "turnaround_priority": lambda con, f, period: queries.query_turnaround(
        con, f, group_by="priority", period=period
    ),
    "order_turnaround_modality": lambda con, f, period: queries.query_order_turnaround(
        con, f, group_by="modality"
    ),
    "order_turnaround_priority": lambda con, f, period: queries.query_order_turnaround(
        con, f, group_by="priority"
    ),
    "volume": lambda con, f, period: queries.query_volume(con, f),
    "backlog": lambda con, f, period: queries.query_backlog(con, f),
    "productivity": lambda con, f, period: queries.query_productivity(con, f),
    "breaches": lambda con, f, period: queries.query_breaches(con, f),
}
FIGURES = {
    "turnaround_modality": charts.turnaround_figure,
    "turnaround_priority": charts.turnaround_figure,
    "order_turnaround_modality": charts.order_turnaround_figure,
    "order_turnaround_priority": charts.order_turnaround_figure,
    "volume": charts.volume_figure,
    "backlog": charts.backlog_figure,
    "productivity": charts.productivity_figure,
}


def warehouse_reader() -> WarehouseReader:
    """The app's one reader of the warehouse file (made on first use)."""
    settings = current_app.config["PACS_SETTINGS"]
    return current_app.extensions.setdefault(
        "pacs_warehouse", WarehouseReader(settings.warehouse_path)
    )


def parse_filters(con: duckdb.DuckDBPyConnection) -> tuple[TurnaroundFilters, str]:
    """The query string's filters (400 when they make no sense); without dates, the 90 days
    up to the latest final report."""
    try:
        args = AnalyticsArgs().load(request.args, unknown="exclude")
    except ValidationError as error:
        abort(400, f"bad filters: {error.messages}")
    filters = to_filters(args)
    if not args.get("date_from") and not args.get("date_to"):
        latest = queries.default_date_range(con)
        if latest:
            filters = replace(filters, date_from=latest[0], date_to=latest[1])
    return filters, args["period"]


CRITICAL_WINDOW = datetime.timedelta(days=90)


def summarize_critical() -> dict[str, Any]:
    """Critical results of the last 90 days, from the operational database (few rows, always
    current): per category, signature -> acknowledgement p50/p90, those past their limit."""
    now = utc_now()
    summary = summarize_critical_results(db.session, now - CRITICAL_WINDOW, now)
    return {
        "per_category": summary.per_category,
        "labels": {c.value: label for c, label in LABELS.items()},
        "p50": percentile(summary.minutes_to_acknowledge, 0.5),
        "p90": percentile(summary.minutes_to_acknowledge, 0.9),
        "acknowledged": len(summary.minutes_to_acknowledge),
        "open": summary.open,
        "breached": summary.breached,
        "now": now,
    }


@bp.get("")
@roles(*ANALYTICS_ROLES)
def show_dashboard():
    critical = summarize_critical()
    try:
        with warehouse_reader().connect() as con:
            filters, period = parse_filters(con)
            options = queries.query_options(con)
            status = queries.read_status(con)
    except WarehouseMissing as missing:
        return render_template("analytics/dashboard.html", missing=str(missing), critical=critical)
    audit("view_analytics", object_type="analytics", detail=request.query_string.decode()[:1024])
    db.session.commit()
    return render_template(
        "analytics/dashboard.html",
        missing=None,
        filters=filters,
        period=period,
        periods=PERIODS,
        priorities=[p.value for p in Priority],
        options=options,
        status=status,
        charts=list(CHART_ROWS),
        critical=critical,
    )


@bp.get("/data.json")
@roles(*ANALYTICS_ROLES)
def get_dashboard_data():
    """Every chart's figure and the tables' rows, for the filters in the query string."""
    try:
        with warehouse_reader().connect() as con:
            filters, period = parse_filters(con)
            rows = {name: load(con, filters, period) for name, load in CHART_ROWS.items()}
            status = queries.read_status(con)
    except WarehouseMissing as missing:
        abort(404, str(missing))
    breaches = describe_breaches(rows["breaches"])
    return {
        "built_at": status["built_at_utc"].isoformat() + "Z",
        "timezone": status["timezone"],
        "from": filters.date_from.isoformat() if filters.date_from else None,
        "to": filters.date_to.isoformat() if filters.date_to else None,
        "figures": {name: figure(rows[name]) for name, figure in FIGURES.items()},
        "breaches": breaches,
        "productivity": rows["productivity"],
    }


@bp.get("/<chart>.csv")
@roles(*ANALYTICS_ROLES)
def download_csv(chart: str):
    if chart not in CHART_ROWS:
        abort(404)
    try:
        with warehouse_reader().connect() as con:
            filters, period = parse_filters(con)
            rows = CHART_ROWS[chart](con, filters, period)
    except WarehouseMissing as missing:
        abort(404, str(missing))
    if chart == "breaches":
        rows = describe_breaches(rows)
        for row in rows:
            row.pop("url", None)
    audit(
        "download_analytics_csv",
        object_type="analytics",
        object_id=chart,
        detail=request.query_string.decode()[:1024],
    )
    db.session.commit()
    out = io.StringIO()
    SafeCsvWriter(out).write_dicts(list(rows[0]) if rows else ["no rows"], rows)
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{chart}.csv"'},
    )


def describe_breaches(rows: Rows) -> Rows:
    """Times as text; for admins, the patient and a link to the study (audited). Managers
    see accession numbers and UIDs only: the study page is not theirs."""
    described = [
        {
            **row,
            "received_at_utc": str(row["received_at_utc"]),
            "final_at_utc": str(row["final_at_utc"]),
        }
        for row in rows
    ]
    if current_user.role != Role.ADMIN or not described:
        return described
    patients = find_patients(db.session, (row["study_instance_uid"] for row in described))
    for row in described:
        name, patient_id = patients.get(row["study_instance_uid"], ("", ""))
        row["patient_name"] = format_person_name(name)
        row["patient_id"] = patient_id
        row["url"] = url_for("worklist.show_study", study_uid=row["study_instance_uid"])
    audit("view_breaches", object_type="analytics", detail=f"{len(described)} studies")
    db.session.commit()
    return described


@bp.get("/plotly.min.js")
@roles(*ANALYTICS_ROLES)
def serve_plotly():
    """plotly.js as the `plotly` wheel ships it."""
    response = send_file(PLOTLY_JS, mimetype="text/javascript", max_age=86_400)
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response
