"""The operational database's models, one module per feature, on one `Base`.

Importing this package imports every model module, so `Base.metadata` (which
the migrations read) holds every table. A new feature's models go in a
module of their own here, added to the imports below.

SQLite by default (WAL, so the portal reads while the pipeline writes), PostgreSQL at
scale: only the URL changes. The portal uses these same models through Flask-SQLAlchemy
(`model_class=Base`).
"""

from storage.models import (
    accounts,
    arrivals,
    critical_results,
    evidence,
    exports,
    imports,
    modalities,
    orders,
    peer_review,
    pipeline,
    pipeline_queue,
    quarantine,
    reports,
    sign_in,
    studies,
    teaching,
)
from storage.models.base import Base

__all__ = [
    "Base",
    "accounts",
    "arrivals",
    "critical_results",
    "evidence",
    "exports",
    "imports",
    "modalities",
    "orders",
    "peer_review",
    "pipeline",
    "pipeline_queue",
    "quarantine",
    "reports",
    "sign_in",
    "studies",
    "teaching",
]
