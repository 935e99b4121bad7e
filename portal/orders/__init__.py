"""Orders in the portal: the Scheduled tab (what the modalities will perform) and, for admins,
orders still without images and studies that no order claims."""

from __future__ import annotations

import datetime

from flask import Blueprint, abort, render_template, request

from core.accounts import WORKLIST_ROLES, Role
from core.orders import OPEN_STATUSES, WorklistQuery
from portal.extensions import db
from portal.security import audit, roles
from storage.orders import (
    find_worklist_orders,
    list_orders_without_studies,
    list_studies_without_orders,
)

bp = Blueprint("orders", __name__, template_folder="../templates")


def parse_day(text: str | None) -> datetime.date | None:
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        abort(400, description=f"not a date: {text!r} (YYYY-MM-DD)")


@bp.get("/orders")
@roles(*WORKLIST_ROLES)
def show_scheduled():
    """Scheduled and in-progress orders, by scheduled time; filters: modality, day."""
    modality = (request.args.get("modality") or "").strip().upper()[:16]
    day = parse_day(request.args.get("day"))
    query = WorklistQuery(modality=modality, date_from=day, date_to=day)
    orders = find_worklist_orders(db.session, query, limit=500)
    audit("view_orders", object_type="orders", detail=request.query_string.decode()[:1024])
    db.session.commit()
    return render_template(
        "orders/scheduled.html",
        orders=orders,
        modality=modality,
        day=day,
        statuses=sorted(OPEN_STATUSES),
    )


@bp.get("/admin/orders")
@roles(Role.ADMIN)
def show_unmatched():
    """Orders waiting for their images, and studies without an order."""
    orders = list_orders_without_studies(db.session)
    studies = list_studies_without_orders(db.session)
    audit("view_unmatched_orders", object_type="orders")
    db.session.commit()
    return render_template("orders/unmatched.html", orders=orders, studies=studies)
