"""The analytics filters, one schema for the dashboard's query string and the API's."""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Date, String
from apiflask.validators import Length, OneOf
from marshmallow import ValidationError, validates_schema

from core.records import Priority
from core.turnaround import GROUP_BY_COLUMNS, METRICS, PERIODS, TurnaroundFilters


class AnalyticsArgs(Schema):
    date_from = Date(data_key="from")
    date_to = Date(data_key="to")
    modality = String(validate=Length(max=16), load_default="")
    priority = String(validate=OneOf(["", *(p.value for p in Priority)]), load_default="")
    radiologist = String(validate=Length(max=255), load_default="")
    institution = String(validate=Length(max=128), load_default="")
    period = String(validate=OneOf(PERIODS), load_default="week")

    @validates_schema
    def check_range(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise ValidationError("`from` is after `to`", "from")


class TurnaroundArgs(AnalyticsArgs):
    group_by = String(validate=OneOf(list(GROUP_BY_COLUMNS)), load_default=None)
    metric = String(validate=OneOf(list(METRICS)), load_default="received_to_final")


def to_filters(args: dict[str, Any]) -> TurnaroundFilters:
    return TurnaroundFilters(
        date_from=args.get("date_from"),
        date_to=args.get("date_to"),
        modality=args["modality"],
        priority=args["priority"],
        radiologist=args["radiologist"],
        institution=args["institution"],
    )
