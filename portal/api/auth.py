"""Bearer tokens for programs: POST /api/v1/auth/token with e-mail and password."""

from __future__ import annotations

from apiflask import Schema, abort
from apiflask.fields import DateTime, Email, String
from apiflask.validators import Length
from flask import request

from portal.api import bp
from portal.extensions import db
from portal.security import public, utc_now
from storage.accounts import check_sign_in, issue_token, write_audit


class Credentials(Schema):
    email = Email(required=True, validate=Length(max=255))
    password = String(required=True, validate=Length(min=1, max=256))


class IssuedToken(Schema):
    token = String()
    expires_at = DateTime()


@bp.post("/auth/token")
@public
@bp.input(Credentials, arg_name="credentials")
@bp.output(IssuedToken, status_code=201)
@bp.doc(summary="Exchange e-mail and password for a bearer token (423 once locked)")
def create_token(credentials: dict[str, str]) -> dict[str, object]:
    now = utc_now()
    user, problem = check_sign_in(db.session, credentials["email"], credentials["password"], now)
    write_audit(
        db.session,
        action="token",
        outcome="denied" if problem else "success",
        now=now,
        user=user if not problem else None,
        email=credentials["email"].lower(),
        client_ip=request.remote_addr or "",
        detail=problem,
    )
    if problem:
        db.session.commit()
        if problem == "locked":
            abort(423, "the account is locked after repeated failures; try again later")
        abort(401, "unknown e-mail or wrong password")
    token, record = issue_token(db.session, user, now)
    db.session.commit()
    return {"token": token, "expires_at": record.expires_at}
