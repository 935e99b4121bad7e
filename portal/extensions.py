"""Flask extensions, created unbound and `init_app`-ed by the factory."""

from __future__ import annotations

from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from storage.models import Base

# Views commit their audit event before rendering: keep what they loaded (no reload per row).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
login_manager = LoginManager()
csrf = CSRFProtect()
