"""Plotly figures (plain JSON: data + layout) from the warehouse's rows; the browser draws
them with plotly.js. Turnaround is shown in hours, the rows keep minutes.

Every figure has a legend and axis titles with their units; a figure without data says so in
words instead of drawing empty axes; periods are dates on a date axis, and a single one is
labelled as that date (not as hours of it)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from core.turnaround import AGE_BUCKETS, ORDER_METRICS

Figure = dict[str, Any]
PRIORITY_COLOURS = {"STAT": "#c62828", "URGENT": "#ef6c00", "ROUTINE": "#1f6feb"}
ORDER_METRIC_COLOURS = {
    "ordered_to_exam": "#6a1b9a",
    "exam_to_final": "#00897b",
    "ordered_to_final": "#455a64",
}


def base_layout(y_title: str, **more: Any) -> dict[str, Any]:
    return {
        "height": 320,
        "margin": {"l": 56, "r": 16, "t": 16, "b": 40},
        "legend": {"orientation": "h", "y": -0.18},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
        "hovermode": "x unified",
        **more,
    }


def say_when_empty(figure: Figure, message: str) -> Figure:
    """No points: `empty` carries `message`, which the page shows as text instead of a
    chart (no axes running from -1 to 6)."""
    if any(trace.get("x") or trace.get("y") for trace in figure["data"]):
        return figure
    return {"data": [], "layout": figure["layout"], "empty": message}


def date_axis(periods: list[str], title: str) -> dict[str, Any]:
    """A date axis; one period alone gets one tick, labelled with its date."""
    axis: dict[str, Any] = {"type": "date", "title": {"text": title}, "tickformat": "%d %b %Y"}
    distinct = sorted(set(periods))
    if len(distinct) == 1:
        axis.update(tickvals=distinct, ticktext=distinct)
    return axis


def turnaround_figure(rows: list[dict[str, Any]]) -> Figure:
    """p50 (solid) and p90 (dotted) per group over time."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row["group_value"])].append(row)
    data = []
    for group, points in sorted(groups.items()):
        x = [str(point["period"]) for point in points]
        line = {"color": PRIORITY_COLOURS[group]} if group in PRIORITY_COLOURS else {}
        for percentile, dash in (("p50", "solid"), ("p90", "dot")):
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": f"{group} {percentile}",
                    "legendgroup": group,
                    "x": x,
                    "y": [hours(point[f"{percentile}_minutes"]) for point in points],
                    "customdata": [point["count"] for point in points],
                    "hovertemplate": f"{group} {percentile}: %{{y}} h (%{{customdata}} reports)"
                    "<extra></extra>",
                    "line": {**line, "dash": dash},
                    "marker": {"size": 4},
                }
            )
    layout = base_layout("hours, received → final", showlegend=True)
    layout["xaxis"] = date_axis([str(row["period"]) for row in rows], "period (start date)")
    layout["margin"]["b"] = 60
    layout["legend"]["y"] = -0.3
    return say_when_empty(
        {"data": data, "layout": layout}, "No finalized studies for these filters yet."
    )


def order_turnaround_figure(rows: list[dict[str, Any]]) -> Figure:
    """Per group, the order's three intervals side by side: p50 (solid bar) and p90 (pale bar
    beside it), in hours, with the number of studies measured in the hover text."""
    groups = [str(row["group_value"]) for row in rows]
    data = []
    for metric, label in ORDER_METRICS.items():
        for percentile, opacity in (("p50", 1.0), ("p90", 0.45)):
            data.append(
                {
                    "type": "bar",
                    "name": f"{label} {percentile}",
                    "legendgroup": metric,
                    "x": groups,
                    "y": [hours(row[f"{metric}_{percentile}_minutes"]) for row in rows],
                    "customdata": [row[f"{metric}_count"] for row in rows],
                    "hovertemplate": f"%{{x}} {label} {percentile}: %{{y}} h"
                    " (%{customdata} studies)<extra></extra>",
                    "marker": {"color": ORDER_METRIC_COLOURS[metric], "opacity": opacity},
                }
            )
    layout = base_layout("hours", barmode="group")
    layout["hovermode"] = "closest"
    return {"data": data, "layout": layout}


def volume_figure(rows: list[dict[str, Any]]) -> Figure:
    by_modality: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        by_modality[row["modality"]][str(row["day"])] = row["studies"]
    data = [
        {
            "type": "bar",
            "name": modality,
            "x": list(days),
            "y": list(days.values()),
        }
        for modality, days in sorted(by_modality.items())
    ]
    layout = base_layout("studies received", barmode="stack", showlegend=True)
    layout["xaxis"] = date_axis([str(row["day"]) for row in rows], "day received")
    layout["margin"]["b"] = 60
    layout["legend"]["y"] = -0.3
    return say_when_empty({"data": data, "layout": layout}, "No studies received in this period.")


def backlog_figure(rows: list[dict[str, Any]]) -> Figure:
    buckets = [label for label, _, _ in AGE_BUCKETS]
    by_priority: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for row in rows:
        by_priority[row["priority"]][row["age_bucket"]] = row
    data = [
        {
            "type": "bar",
            "name": priority,
            "x": buckets,
            "y": [counts.get(b, {}).get("studies", 0) for b in buckets],
            "customdata": [counts.get(b, {}).get("overdue", 0) for b in buckets],
            "hovertemplate": f"{priority}: %{{y}} waiting, %{{customdata}} past target"
            "<extra></extra>",
            "marker": {"color": PRIORITY_COLOURS.get(priority)},
        }
        for priority, counts in sorted(by_priority.items())
    ]
    layout = base_layout("studies waiting", barmode="stack", showlegend=True)
    layout["xaxis"] = {
        "title": {"text": "time waiting since received"},
        "categoryorder": "array",
        "categoryarray": buckets,
    }
    layout["margin"]["b"] = 60
    layout["legend"]["y"] = -0.3
    return say_when_empty(
        {"data": data, "layout": layout}, "No study is waiting for a report: the backlog is empty."
    )


def productivity_figure(rows: list[dict[str, Any]]) -> Figure:
    names = [row["radiologist_name"] or row["radiologist_email"] for row in rows][::-1]
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": "reports finalized",
            "y": names,
            "x": [row["reports_finalized"] for row in rows][::-1],
            "text": [f"median {hours(row['median_minutes'])} h" for row in rows][::-1],
            "textposition": "auto",
        }
    ]
    layout = base_layout("radiologist", height=max(240, 28 * len(rows) + 110), showlegend=True)
    layout["margin"]["l"] = 160
    layout["margin"]["b"] = 60
    layout["legend"]["y"] = -0.3
    layout["xaxis"] = {"title": {"text": "reports finalized (count); median turnaround in hours"}}
    layout["hovermode"] = "closest"
    return say_when_empty(
        {"data": data if rows else [], "layout": layout}, "No report finalized in this period."
    )


def hours(minutes: float | None) -> float | None:
    return None if minutes is None else round(minutes / 60, 2)
