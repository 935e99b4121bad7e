"""What `pacs up` (and `pacs demo`) print, and where the rest goes.

The terminal gets one line per event an operator acts on: what started where, each study
ingested or quarantined, each report archived, each warning (`pacs.events` and anything at
WARNING or above; a failure's traceback stays in the file). Everything else, Prefect's flow
and task run logs among it, goes to `PACS_HOME/logs/pacs.log` (rotated), and the runs' logs
to the Prefect UI as well. `--verbose` puts the detail back on the terminal.
"""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path

from config.settings import Settings

EVENTS = logging.getLogger("pacs.events")
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
DETAIL = "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(name)s - %(message)s"


class OperatorFilter(logging.Filter):
    """Events and warnings only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == EVENTS.name


class OperatorFormatter(logging.Formatter):
    """`pacs: message`, `pacs: warning: message`; a traceback is left to the log file."""

    def __init__(self, log_path: str) -> None:
        super().__init__("%(message)s")
        self.log_path = log_path

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().splitlines()[0] if record.getMessage() else ""
        if record.levelno < logging.WARNING:
            return f"pacs: {message}"
        detail = f" (details in {self.log_path})" if record.exc_info else ""
        return f"pacs: {record.levelname.lower()}: {message}{detail}"


def log_path(settings: Settings) -> Path:
    return settings.home / "logs" / "pacs.log"


def configure_logging(settings: Settings, *, verbose: bool = False) -> Path:
    """Replace Prefect's console logging (set up when it is imported) with ours; returns
    the log file's path."""
    import prefect  # noqa: F401  its own set-up runs at import: ours must come after

    path = log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefect_format = {
        "()": "prefect.logging.formatters.PrefectFormatter",
        "format": DETAIL,
        "flow_run_fmt": "%(asctime)s.%(msecs)03d | %(levelname)-7s | Flow run %(flow_run_name)r"
        " - %(message)s",
        "task_run_fmt": "%(asctime)s.%(msecs)03d | %(levelname)-7s | Task run %(task_run_name)r"
        " - %(message)s",
        "datefmt": "%Y-%m-%d %H:%M:%S",
    }
    console = (
        {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "detail"}
        if verbose
        else {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "operator",
            "filters": ["operator"],
        }
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "detail": prefect_format,
                "operator": {"()": OperatorFormatter, "log_path": str(path)},
            },
            "filters": {"operator": {"()": OperatorFilter}},
            "handlers": {
                "file": {
                    "class": "logging.handlers.RotatingFileHandler",
                    "filename": str(path),
                    "maxBytes": LOG_MAX_BYTES,
                    "backupCount": LOG_BACKUPS,
                    "encoding": "utf-8",
                    "formatter": "detail",
                },
                "console": console,
                "api": {"class": "prefect.logging.handlers.APILogHandler"},
            },
            "loggers": {
                "prefect": {"level": "INFO"},
                "prefect.flow_runs": {"level": "NOTSET", "handlers": ["api"]},
                "prefect.task_runs": {"level": "NOTSET", "handlers": ["api"]},
                "prefect.extra": {"level": "INFO", "handlers": ["api"]},
                "prefect._internal": {"level": "ERROR", "handlers": ["file"], "propagate": False},
                "uvicorn": {"level": "WARNING"},
                "fastapi": {"level": "WARNING"},
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
            },
            "root": {"level": "INFO", "handlers": ["file", "console"]},
        }
    )
    return path
