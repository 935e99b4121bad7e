"""The dashboards' and the API's questions to the warehouse, read-only.

Percentiles do not add up across groups, so every filtered figure is computed from
`fct_study_turnaround` (one row per study) rather than from the daily aggregates. A long-lived
process (the portal) keeps one `WarehouseReader`, which re-attaches the file when the
refresh has swapped in a new one; read-only connections never block the refresh.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import Any

import duckdb

from core.turnaround import GROUP_BY_COLUMNS, METRICS, ORDER_METRICS, PERIODS, TurnaroundFilters
from warehouse.build import WarehouseError, attach_read_only

Row = dict[str, Any]


class WarehouseMissing(WarehouseError):
    """No warehouse has been built yet."""


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse file as it is now."""
    if not path.exists():
        raise WarehouseMissing("no data yet: run `pacs warehouse refresh`")
    try:
        return attach_read_only(path)
    except duckdb.IOException as error:
        raise WarehouseMissing(f"no data yet: run `pacs warehouse refresh` ({error})") from None


class WarehouseReader:
    """One attached warehouse shared by a process's requests (attaching costs ~25 ms, a
    cursor ~1 ms); attached again when the refresh has replaced the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.version: tuple[int, int] | None = None
        self.connection: duckdb.DuckDBPyConnection | None = None

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for the caller (close it, or use it in `with`)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise WarehouseMissing("no data yet: run `pacs warehouse refresh`") from None
        with self.lock:
            if self.connection is None or self.version != (stat.st_ino, stat.st_mtime_ns):
                self.connection = open_warehouse(self.path)
                self.version = (stat.st_ino, stat.st_mtime_ns)
            cursor = self.connection.cursor()
        cursor.execute("use warehouse")
        return cursor


def fetch_rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[Row]:
    cursor = con.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def filter_sql(
    filters: TurnaroundFilters, date_column: str | None, *, radiologist: bool = True
) -> tuple[str, dict[str, Any]]:
    """A WHERE clause (with parameters) for `filters`; dates apply to `date_column`."""
    conditions, params = [], {}
    if date_column and filters.date_from:
        conditions.append(f"{date_column} >= $date_from")
        params["date_from"] = filters.date_from
    if date_column and filters.date_to:
        conditions.append(f"{date_column} <= $date_to")
        params["date_to"] = filters.date_to
    for name, column in (
        ("modality", "modality"),
        ("priority", "priority"),
        ("institution", "institution"),
        *((("radiologist", "radiologist_email"),) if radiologist else ()),
    ):
        value = getattr(filters, name)
        if value:
            conditions.append(f"{column} = ${name}")
            params[name] = value.lower() if name == "radiologist" else value
    return " and ".join(conditions) or "true", params


def read_status(con: duckdb.DuckDBPyConnection) -> Row:
    """When the warehouse was built (UTC), in which time zone, and how."""
    return fetch_rows(con, "select built_at_utc, timezone, mode from meta_refresh", {})[0]


def query_turnaround(
    con: duckdb.DuckDBPyConnection,
    filters: TurnaroundFilters,
    *,
    group_by: str | None = None,
    period: str = "week",
    metric: str = "received_to_final",
    use_aggregates: bool = True,
) -> list[Row]:
    """Count, p50 and p90 (minutes) of `metric` per period of finalization (local days)
    and per group; studies without a final report are not in it."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    aggregate = {"day": ("agg_turnaround_daily", "day"), "week": ("agg_turnaround_weekly", "week")}
    whole_weeks = (filters.date_from is None or filters.date_from.weekday() == 0) and (
        filters.date_to is None or filters.date_to.weekday() == 6
    )
    if (
        use_aggregates
        and period in aggregate
        and (period == "day" or whole_weeks)
        and metric == "received_to_final"
        and group_by in (None, "modality", "priority", "radiologist")
        and not (filters.modality or filters.priority or filters.radiologist or filters.institution)
    ):
        return query_turnaround_aggregate(con, filters, group_by, *aggregate[period])
    column = METRICS[metric]
    group = GROUP_BY_COLUMNS[group_by] if group_by else "'all'"
    where, params = filter_sql(filters, "final_date")
    return fetch_rows(
        con,
        f"select date_trunc('{period}', final_date)::date as period, {group} as group_value,"
        f" count({column}) as count,"
        f" round(quantile_cont({column}, 0.5), 2) as p50_minutes,"
        f" round(quantile_cont({column}, 0.9), 2) as p90_minutes"
        f" from fct_study_turnaround where final_at_utc is not null and {where}"
        f" group by all order by period, group_value",
        params,
    )


def query_turnaround_aggregate(
    con: duckdb.DuckDBPyConnection,
    filters: TurnaroundFilters,
    group_by: str | None,
    table: str,
    period_column: str,
) -> list[Row]:
    """The same figures from the daily or weekly mart, when only dates filter (whole weeks
    for weeks): computed at build time per group and period, as the fact table would give."""
    conditions, params = ["dimension = $dimension"], {"dimension": group_by or "all"}
    if filters.date_from:
        conditions.append(f"{period_column} >= $date_from")
        params["date_from"] = filters.date_from
    if filters.date_to:
        conditions.append(f"{period_column} <= $date_to")
        params["date_to"] = filters.date_to
    return fetch_rows(
        con,
        f"select {period_column} as period, value as group_value, reports_finalized as count,"
        " round(p50_received_to_final_minutes, 2) as p50_minutes,"
        " round(p90_received_to_final_minutes, 2) as p90_minutes"
        f" from {table} where {' and '.join(conditions)} order by period, group_value",
        params,
    )


def query_order_turnaround(
    con: duckdb.DuckDBPyConnection, filters: TurnaroundFilters, *, group_by: str
) -> list[Row]:
    """Per group, over the finalized studies of the date range: count, p50 and p90 (minutes)
    of each order interval (ordered -> exam, exam -> final, ordered -> final). A study counts
    in an interval only when both its ends are known; groups without any are left out."""
    group = GROUP_BY_COLUMNS[group_by]
    where, params = filter_sql(filters, "final_date")
    figures = ", ".join(
        f"count({METRICS[metric]}) as {metric}_count,"
        f" round(quantile_cont({METRICS[metric]}, 0.5), 2) as {metric}_p50_minutes,"
        f" round(quantile_cont({METRICS[metric]}, 0.9), 2) as {metric}_p90_minutes"
        for metric in ORDER_METRICS
    )
    return fetch_rows(
        con,
        f"select {group} as group_value, {figures} from fct_study_turnaround"
        f" where final_at_utc is not null and {where} group by all"
        f" having {' + '.join(f'count({METRICS[m]})' for m in ORDER_METRICS)} > 0"
        " order by group_value",
        params,
    )


def query_volume(con: duckdb.DuckDBPyConnection, filters: TurnaroundFilters) -> list[Row]:
    """Studies received per local day and modality (reported or not)."""
    where, params = filter_sql(filters, "received_date")
    return fetch_rows(
        con,
        "select received_date as day, modality, count(*) as studies"
        f" from fct_study_turnaround where {where} group by all order by day, modality",
        params,
    )


def query_backlog(con: duckdb.DuckDBPyConnection, filters: TurnaroundFilters) -> list[Row]:
    """Studies waiting for a final report at build time, by age bucket and priority. The
    backlog is "now": the date range and the radiologist (nobody signed yet) do not apply."""
    where, params = filter_sql(filters, None, radiologist=False)
    return fetch_rows(
        con,
        "select b.position, b.bucket as age_bucket, f.priority, count(*) as studies,"
        " count(*) filter (where f.backlog_overdue) as overdue"
        " from fct_study_turnaround as f join meta_age_buckets as b"
        f" on b.bucket = f.backlog_age_bucket where {where}"
        " group by all order by b.position, f.priority",
        params,
    )


def query_breaches(
    con: duckdb.DuckDBPyConnection, filters: TurnaroundFilters, *, limit: int = 200
) -> list[Row]:
    """Finalized studies that missed their priority's target, latest first."""
    where, params = filter_sql(filters, "final_date")
    return fetch_rows(
        con,
        "select study_instance_uid, accession_number, modality, priority, institution,"
        " radiologist_email, radiologist_name, received_at_utc, final_at_utc,"
        " round(received_to_final_minutes, 1) as received_to_final_minutes, target_minutes"
        f" from fct_study_turnaround where target_breached and {where}"
        f" order by final_at_utc desc, study_id limit {int(limit)}",
        params,
    )


def query_productivity(con: duckdb.DuckDBPyConnection, filters: TurnaroundFilters) -> list[Row]:
    """Reports finalized and median received -> final per radiologist."""
    where, params = filter_sql(filters, "final_date")
    return fetch_rows(
        con,
        "select radiologist_email, any_value(radiologist_name) as radiologist_name,"
        " count(*) as reports_finalized,"
        " round(median(received_to_final_minutes), 2) as median_minutes"
        f" from fct_study_turnaround where final_at_utc is not null and {where}"
        " group by radiologist_email order by reports_finalized desc, radiologist_email",
        params,
    )


def default_date_range(
    con: duckdb.DuckDBPyConnection, days: int = 90
) -> tuple[datetime.date, datetime.date] | None:
    """The last `days` local days up to the latest final report, or None when empty."""
    latest = fetch_rows(con, "select max(final_date) as day from fct_study_turnaround", {})
    day = latest[0]["day"]
    return None if day is None else (day - datetime.timedelta(days=days - 1), day)


def query_options(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """The values the dashboard's filters offer: those present in the warehouse."""
    options = {}
    for name, column in (
        ("modality", "modality"),
        ("radiologist", "radiologist_email"),
        ("institution", "institution"),
    ):
        rows = con.sql(
            f"select distinct {column} from fct_study_turnaround where {column} <> '' order by 1"
        ).fetchall()
        options[name] = [value for (value,) in rows]
    return options
