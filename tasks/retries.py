"""The pipeline's task policies, defined once: what is retried, how often, how long apart.

No task result is cached (every run reads the archive and the database as they are now).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.archive import ArchiveUnavailable

ARCHIVE_RETRY_DELAYS = [1, 2, 4, 8]  # seconds: an archive restart takes a few
DATABASE_RETRY_DELAYS = [1, 5]  # a locked SQLite or a PostgreSQL failover


def retry_if_unavailable(task: Any, task_run: Any, state: Any) -> bool:
    """Retry outages (down, timeout, 5xx); anything else will not improve by waiting."""
    try:
        state.result()
    except ArchiveUnavailable:
        return True
    except Exception:
        return False
    return False


# Talks to the archive: retried with backoff while it is unavailable, and only then.
archive_task = task(
    retries=len(ARCHIVE_RETRY_DELAYS),
    retry_delay_seconds=ARCHIVE_RETRY_DELAYS,
    retry_condition_fn=retry_if_unavailable,
    cache_policy=NO_CACHE,
)
# Writes the operational database (or reads it for the warehouse): retried a little.
database_task = task(
    retries=len(DATABASE_RETRY_DELAYS),
    retry_delay_seconds=DATABASE_RETRY_DELAYS,
    cache_policy=NO_CACHE,
)
# Tried once: reads whose flow runs again soon, local work a retry would not change, and
# the export's outcome (a failure leaves the export running; it can be run again).
once_task = task(cache_policy=NO_CACHE)
