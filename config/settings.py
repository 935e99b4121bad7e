"""The platform's settings, read once from `PACS_*` environment variables.

Defaults give a working single machine with everything under `PACS_HOME`.
Secrets are never hard-coded: unless the environment gives them, they are
generated on first use and kept in `PACS_HOME/secrets/` with mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Turnaround targets (received -> final), in minutes: STAT 1 h, urgent 12 h, routine 4 days.
DEFAULT_TAT_TARGETS = {"STAT": 60, "URGENT": 12 * 60, "ROUTINE": 4 * 24 * 60}

# Critical results, minutes from signature to acknowledgement: immediate 1 h, urgent 6 h,
# non-urgent actionable 3 days (core/critical_results.py names the categories).
DEFAULT_CRITICAL_LIMITS = {"immediate": 60, "urgent": 6 * 60, "non_urgent": 3 * 24 * 60}

# The prepared OHIF bundle is an installed artefact like .venv, not runtime data: one copy
# per checkout (git-ignored build/), shared by every PACS_HOME.
DEFAULT_VIEWER_DIR = Path(__file__).resolve().parents[1] / "build" / "viewer"


class SettingsError(ValueError):
    """A `PACS_*` variable holds a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    warehouse_path: Path
    orthanc_url: str
    orthanc_user: str
    orthanc_password: str
    orthanc_http_port: int
    orthanc_dicom_port: int
    orthanc_aet: str
    orthanc_stable_age: int
    orthanc_binary: Path
    orthanc_plugins_dir: Path
    allowed_modalities: frozenset[str] | None
    portal_host: str
    portal_port: int
    portal_proxies: int
    portal_https: bool
    secret_key: str
    webhook_secret: str
    viewer_dir: Path
    import_max_mb: int = 2048
    import_radiologists: bool = False
    timezone: str = "UTC"
    tat_targets: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_TAT_TARGETS)
    )  # minutes received -> final, per priority
    warehouse_refresh_every: int = 300  # seconds
    # When a study still arriving first shows on the worklist: its first instance, the first
    # complete (stable) series, or only once the whole study is stable.
    worklist_arriving: str = "series"
    # A second, research Orthanc that research exports are sent to by STOW instead of a ZIP.
    research_orthanc_url: str = ""
    research_orthanc_user: str = ""
    research_orthanc_password: str = ""
    # The viewer's own archive account: Orthanc's plugin lets it GET /dicom-web/ and no more.
    orthanc_viewer_user: str = "pacs-viewer"
    orthanc_viewer_password: str = ""
    # The DICOM port: any AE may store (and echo) when open; else registered modalities only.
    dicom_accept_any: bool = False
    dicom_check_host: bool = True
    session_idle_minutes: int = 30  # a portal session unused this long ends
    session_max_hours: int = 12  # and none lives longer than this
    # HL7 v2 orders in (MLLP; 0 = off) and ORU^R01 results out (no host = nowhere).
    hl7_port: int = 2575
    hl7_results_host: str = ""
    hl7_results_port: int = 2575
    # The modality-services SCP: Modality Worklist C-FIND and MPPS.
    mwl_port: int = 4243
    mwl_aet: str = "ORTHANC"
    # The site's Prefect server: PREFECT_API_URL when the platform is scaled out, else the one
    # `pacs up` supervises on loopback at PACS_PREFECT_PORT.
    prefect_api_url: str = ""
    prefect_port: int = 4200
    # Scaled out: the address `pacs engine up` binds (loopback unless workers are elsewhere),
    # the Prefect server's own database (SQLite under PACS_HOME/prefect when unset), the
    # portal's gunicorn processes, and Orthanc's index on PostgreSQL (unset: SQLite index).
    prefect_host: str = "127.0.0.1"
    prefect_database_url: str = ""
    portal_workers: int = 4
    orthanc_database_url: str = ""
    # Critical results: minutes to acknowledgement per category before escalation, the
    # on-call contact's portal e-mail, the paging system's webhook and its signing secret.
    critical_limits: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_CRITICAL_LIMITS)
    )
    critical_oncall: str = ""
    critical_webhook_url: str = ""
    critical_webhook_secret: str = ""
    # The department as its reports name it (read page and PDF); the address may span lines.
    department_name: str = "Department of Radiology"
    department_address: str = ""
    # Peer review: reports drawn per radiologist per month by an admin's random assignment,
    # and whether the reviewed radiologist sees who scored them (admins always do).
    peer_review_sample: int = 5
    peer_review_reveal_reviewers: bool = False

    @property
    def orthanc_dir(self) -> Path:
        """Where the project's own Orthanc keeps its config, storage, log and pid file."""
        return self.home / "orthanc"

    @property
    def exports_dir(self) -> Path:
        """Where research exports (ZIP files and their staging folders) are written."""
        return self.home / "exports"

    @property
    def metadata_cache_dir(self) -> Path:
        """Series metadata the viewer asked for, as the archive gave it (gzip), reused while
        the series is unchanged: the archive takes seconds to minutes to build it for
        thousands of instances (portal/viewer/__init__.py)."""
        return self.home / "cache" / "series-metadata"

    @property
    def prefect_dir(self) -> Path:
        """The embedded Prefect server's PREFECT_HOME: its database, log and pid file."""
        return self.home / "prefect"

    @property
    def engine_url(self) -> str:
        """The API of the site's one Prefect server."""
        return self.prefect_api_url or f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def portal_url(self) -> str:
        return f"http://{self.portal_host}:{self.portal_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.portal_url}/api/v1/hooks/orthanc"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    home = Path(env.get("PACS_HOME", "var")).expanduser().resolve()
    http_port = _read_port(env, "PACS_ORTHANC_HTTP_PORT", 8042)
    orthanc_user = env.get("PACS_ORTHANC_USER") or "pacs"
    return Settings(
        home=home,
        database_url=env.get("PACS_DATABASE_URL") or f"sqlite:///{home / 'pacs.sqlite3'}",
        warehouse_path=Path(env.get("PACS_WAREHOUSE_PATH") or home / "warehouse.duckdb"),
        orthanc_url=(env.get("PACS_ORTHANC_URL") or f"http://127.0.0.1:{http_port}").rstrip("/"),
        orthanc_user=orthanc_user,
        orthanc_password=env.get("PACS_ORTHANC_PASSWORD") or read_secret(home, "orthanc-password"),
        orthanc_http_port=http_port,
        orthanc_dicom_port=_read_port(env, "PACS_ORTHANC_DICOM_PORT", 4242),
        orthanc_aet=_read_aet(env.get("PACS_ORTHANC_AET", "ORTHANC")),
        orthanc_stable_age=_read_int(env, "PACS_ORTHANC_STABLE_AGE", 5, minimum=1),
        orthanc_binary=Path(env.get("PACS_ORTHANC_BINARY", "/usr/sbin/Orthanc")),
        orthanc_plugins_dir=Path(env.get("PACS_ORTHANC_PLUGINS_DIR", "/usr/share/orthanc/plugins")),
        allowed_modalities=_read_modalities(env.get("PACS_ALLOWED_MODALITIES", "")),
        portal_host=env.get("PACS_PORTAL_HOST", "127.0.0.1"),
        portal_port=_read_port(env, "PACS_PORTAL_PORT", 5000),
        portal_proxies=_read_int(env, "PACS_PORTAL_PROXIES", 0, minimum=0),
        portal_https=_read_flag(env, "PACS_PORTAL_HTTPS"),
        secret_key=env.get("PACS_SECRET_KEY") or read_secret(home, "secret-key"),
        webhook_secret=env.get("PACS_WEBHOOK_SECRET") or read_secret(home, "webhook-secret"),
        viewer_dir=Path(env.get("PACS_VIEWER_DIR") or DEFAULT_VIEWER_DIR).expanduser().resolve(),
        import_max_mb=_read_int(env, "PACS_IMPORT_MAX_MB", 2048, minimum=1),
        import_radiologists=_read_flag(env, "PACS_IMPORT_RADIOLOGISTS"),
        timezone=_read_timezone(env.get("PACS_TIMEZONE") or "UTC"),
        department_name=env.get("PACS_DEPARTMENT_NAME", "").strip() or "Department of Radiology",
        department_address=env.get("PACS_DEPARTMENT_ADDRESS", "").replace("\\n", "\n").strip(),
        tat_targets={
            priority: _read_int(env, f"PACS_TAT_TARGET_{priority}", minutes, minimum=1)
            for priority, minutes in DEFAULT_TAT_TARGETS.items()
        },
        warehouse_refresh_every=_read_int(env, "PACS_WAREHOUSE_REFRESH_EVERY", 300, minimum=10),
        worklist_arriving=_read_choice(env, "PACS_WORKLIST_ARRIVING", ARRIVING_CHOICES, "series"),
        research_orthanc_url=env.get("PACS_RESEARCH_ORTHANC_URL", "").rstrip("/"),
        research_orthanc_user=env.get("PACS_RESEARCH_ORTHANC_USER", ""),
        research_orthanc_password=env.get("PACS_RESEARCH_ORTHANC_PASSWORD", ""),
        orthanc_viewer_user=_read_viewer_user(env, orthanc_user),
        orthanc_viewer_password=env.get("PACS_ORTHANC_VIEWER_PASSWORD")
        or read_secret(home, "orthanc-viewer-password"),
        dicom_accept_any=_read_flag(env, "PACS_DICOM_ACCEPT_ANY"),
        dicom_check_host=_read_flag(env, "PACS_DICOM_CHECK_HOST", default=True),
        session_idle_minutes=_read_int(env, "PACS_SESSION_IDLE_MINUTES", 30, minimum=1),
        session_max_hours=_read_int(env, "PACS_SESSION_MAX_HOURS", 12, minimum=1),
        hl7_port=_read_port(env, "PACS_HL7_PORT", 2575, allow_off=True),
        hl7_results_host=env.get("PACS_HL7_RESULTS_HOST", "").strip(),
        hl7_results_port=_read_port(env, "PACS_HL7_RESULTS_PORT", 2575),
        mwl_port=_read_port(env, "PACS_MWL_PORT", 4243),
        mwl_aet=_read_aet(
            env.get("PACS_MWL_AET") or env.get("PACS_ORTHANC_AET", "ORTHANC"), "PACS_MWL_AET"
        ),
        prefect_api_url=env.get("PREFECT_API_URL", "").rstrip("/"),
        prefect_port=_read_port(env, "PACS_PREFECT_PORT", 4200),
        prefect_host=env.get("PACS_PREFECT_HOST") or "127.0.0.1",
        prefect_database_url=env.get("PACS_PREFECT_DATABASE_URL", ""),
        portal_workers=_read_int(env, "PACS_PORTAL_WORKERS", 4, minimum=1),
        orthanc_database_url=_read_postgresql_url(env.get("PACS_ORTHANC_DATABASE_URL", "")),
        critical_limits={
            category: _read_int(env, f"PACS_CRITICAL_LIMIT_{category.upper()}", minutes, minimum=1)
            for category, minutes in DEFAULT_CRITICAL_LIMITS.items()
        },
        critical_oncall=_read_email(env, "PACS_CRITICAL_ONCALL"),
        critical_webhook_url=_read_http_url(env, "PACS_CRITICAL_WEBHOOK_URL"),
        critical_webhook_secret=env.get("PACS_CRITICAL_WEBHOOK_SECRET")
        or read_secret(home, "critical-webhook-secret"),
        peer_review_sample=_read_int(env, "PACS_PEER_REVIEW_SAMPLE", 5, minimum=0),
        peer_review_reveal_reviewers=_read_flag(env, "PACS_PEER_REVIEW_REVEAL_REVIEWERS"),
    )


def read_secret(home: Path, name: str) -> str:
    """Return the secret `name` kept under `home`, generating it on first use.

    Processes starting together on a fresh `PACS_HOME` all end with the secret the
    first of them wrote (the file is created whole, never overwritten).
    """
    path = home / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # FileExistsError: another process was first, and its secret is the one.
        with contextlib.suppress(FileExistsError):
            write_private_file(path, secrets.token_urlsafe(32) + "\n", replace=False)
    return path.read_text().strip()


def write_private_file(path: Path, text: str, *, replace: bool = True) -> None:
    """Write a file holding a secret so that nobody ever reads it partly written or
    readable by others: a temporary file in the same folder, mode 0600 from creation,
    fsync'ed, then renamed over `path` (or, with `replace=False`, linked to `path`,
    which raises FileExistsError when `path` exists)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: mode 0600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
        sync_folder(path.parent)
    finally:
        Path(temporary).unlink(missing_ok=True)


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (the directory entry itself is fsync'ed)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    return value


def _read_port(env: Mapping[str, str], name: str, default: int, *, allow_off: bool = False) -> int:
    """A TCP port; with `allow_off`, 0 turns the service off."""
    port = _read_int(env, name, default, minimum=0 if allow_off else 1)
    if port > 65535:
        raise SettingsError(f"{name}={port} is not a TCP port (1-65535)")
    return port


def _read_flag(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} is not a yes/no value (1/0, true/false)")


def _read_modalities(value: str) -> frozenset[str] | None:
    """A comma-separated list of modality codes; empty means the built-in list."""
    codes = frozenset(code.strip().upper() for code in value.split(",") if code.strip())
    return codes or None


def _read_timezone(value: str) -> str:
    """An IANA zone name (Europe/Paris): the department's wall clock."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"PACS_TIMEZONE={value!r} is not an IANA time zone (e.g. Europe/Paris, UTC)"
        ) from None
    return value


def _read_viewer_user(env: Mapping[str, str], orthanc_user: str) -> str:
    """The viewer's archive user: a name of its own, never the full account's."""
    user = env.get("PACS_ORTHANC_VIEWER_USER") or "pacs-viewer"
    if user == orthanc_user or ":" in user:
        raise SettingsError(
            f"PACS_ORTHANC_VIEWER_USER={user!r} must differ from PACS_ORTHANC_USER "
            "and contain no colon"
        )
    return user


ARRIVING_CHOICES = ("instance", "series", "stable")


def _read_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _read_postgresql_url(value: str) -> str:
    """Orthanc's index database: `postgresql://user:password@host:port/database` or empty."""
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise SettingsError(
            "PACS_ORTHANC_DATABASE_URL must look like postgresql://user:password@host:port/db"
        )
    return value


def _read_aet(value: str, name: str = "PACS_ORTHANC_AET") -> str:
    if not 1 <= len(value) <= 16 or not value.isascii() or "\\" in value or value != value.strip():
        raise SettingsError(f"{name}={value!r} is not a DICOM AE title (1-16 ASCII characters)")
    return value


def _read_email(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip().lower()
    if value and (value.count("@") != 1 or " " in value or len(value) > 255):
        raise SettingsError(f"{name}={value!r} is not an e-mail address")
    return value


def _read_http_url(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if value and not value.startswith(("http://", "https://")):
        raise SettingsError(f"{name}={value!r} must be an http:// or https:// URL")
    return value
