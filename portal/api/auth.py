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
@bp.doc(
    summary="Exchange e-mail and password for a bearer token",
    description="401 on a wrong password; 429 with Retry-After while repeated failures of "
    "the e-mail or the client address back off; 403 while the password is temporary.",
)
def create_token(credentials: dict[str, str]) -> dict[str, object]:
    now = utc_now()
    email = credentials["email"].strip().lower()
    result = check_sign_in(
        db.session, email, credentials["password"], request.remote_addr or "", now
    )
    user = result.user
    temporary = user is not None and user.password_temporary
    problem = result.problem or ("temporary password" if temporary else "")
    write_audit(
        db.session,
        action="token",
        outcome="denied" if problem else "success",
        now=now,
        user=user,
        email=email,
        client_ip=request.remote_addr or "",
        detail=problem,
    )
    db.session.commit()
    if result.problem == "throttled":
        abort(
            429,
            f"too many failed sign-ins: try again in {result.retry_after} seconds",
            headers={"Retry-After": str(result.retry_after)},
        )
    if user is None:
        abort(401, "unknown e-mail or wrong password")
    if temporary:
        abort(403, "the password is temporary: sign in to the portal and choose your own first")
    token, record = issue_token(db.session, user, now)
    db.session.commit()
    return {"token": token, "expires_at": record.expires_at}
