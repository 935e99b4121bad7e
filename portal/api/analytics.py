"""`GET /api/v1/analytics/turnaround`: the dashboards' turnaround figures for programs."""

from __future__ import annotations

from typing import Any

from apiflask import Schema, abort
from apiflask.fields import Date, Float, Integer, List, Nested, String
from marshmallow import RAISE

from core.accounts import ANALYTICS_ROLES
from portal.analytics import warehouse_reader
from portal.analytics.filters import TurnaroundArgs, to_filters
from portal.api import bp
from portal.security import roles
from warehouse.queries import WarehouseMissing, query_turnaround, read_status


class TurnaroundPoint(Schema):
    period = Date()
    group = String()
    count = Integer()
    p50_minutes = Float(allow_none=True)
    p90_minutes = Float(allow_none=True)


class TurnaroundOut(Schema):
    metric = String()
    group_by = String(allow_none=True)
    period = String()
    timezone = String()
    built_at = String()
    items = List(Nested(TurnaroundPoint))


@bp.get("/analytics/turnaround")
@roles(*ANALYTICS_ROLES)
@bp.input(TurnaroundArgs, location="query", arg_name="args", unknown=RAISE)
@bp.output(TurnaroundOut)
@bp.doc(
    summary="Turnaround p50/p90 (minutes) and counts per period and group",
    description="Finalized studies only, by local day of the final report (the department's"
    " PACS_TIMEZONE); `from`/`to` are those days, inclusive. Percentiles interpolate linearly.",
)
def get_turnaround(args: dict[str, Any]) -> dict[str, Any]:
    try:
        with warehouse_reader().connect() as con:
            rows = query_turnaround(
                con,
                to_filters(args),
                group_by=args["group_by"],
                period=args["period"],
                metric=args["metric"],
            )
            status = read_status(con)
    except WarehouseMissing as missing:
        abort(404, str(missing))
    return {
        "metric": args["metric"],
        "group_by": args["group_by"],
        "period": args["period"],
        "timezone": status["timezone"],
        "built_at": status["built_at_utc"].isoformat() + "Z",
        "items": [{**row, "group": row["group_value"]} for row in rows],
    }
