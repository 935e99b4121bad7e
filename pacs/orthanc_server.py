"""Run the project's own Orthanc: render its config, start, stop and describe it.

The Orthanc process holds an exclusive `flock` on `orthanc.lock` (inherited at
start), so a second Orthanc is refused on the same storage and a pid file left
by a crash is recognised as stale: its lock is free.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import unquote, urlsplit

from config.settings import Settings, write_private_file
from core.modalities import Modality
from storage.archive import ArchiveClient, ArchiveError
from storage.database import open_session
from storage.modalities import list_modalities, to_archive_definition

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_TEMPLATE = REPO_ROOT / "orthanc" / "orthanc.json.template"
PLUGIN_SCRIPT = REPO_ROOT / "orthanc" / "plugin.py"
PLUGIN_FILES = ("libOrthancDicomWeb.so", "libOrthancPython.so")
POSTGRESQL_PLUGIN = "libOrthancPostgreSQLIndex.so"  # Debian orthanc-postgresql
APT_PACKAGES = "orthanc orthanc-dicomweb orthanc-python"


class OrthancServerError(RuntimeError):
    """Orthanc cannot be started, stopped or reached; the message says what to do."""


@dataclass(frozen=True)
class OrthancPaths:
    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "orthanc.json"

    @property
    def storage(self) -> Path:
        return self.folder / "storage"

    @property
    def log(self) -> Path:
        return self.folder / "orthanc.log"

    @property
    def pid(self) -> Path:
        return self.folder / "orthanc.pid"

    @property
    def lock(self) -> Path:
        return self.folder / "orthanc.lock"


@dataclass(frozen=True)
class OrthancStatus:
    pid: int | None
    version: str
    aet: str
    http_port: int
    dicom_port: int
    patients: int
    studies: int
    series: int
    instances: int
    disk_mb: float

    def describe(self) -> str:
        owner = f"pid {self.pid}" if self.pid else "not started by this PACS_HOME"
        return (
            f"Orthanc {self.version} running ({owner})\n"
            f"  HTTP port {self.http_port}, DICOM {self.aet}@{self.dicom_port}\n"
            f"  patients {self.patients}, studies {self.studies}, series {self.series}, "
            f"instances {self.instances}, {self.disk_mb:.1f} MB"
        )


def find_missing_parts(settings: Settings) -> list[str]:
    """What of the Orthanc installation is missing (binary, plugins), as readable items."""
    missing = []
    if not os.access(settings.orthanc_binary, os.X_OK):
        missing.append(f"the Orthanc binary {settings.orthanc_binary}")
    missing += [
        f"the plugin {settings.orthanc_plugins_dir / name}"
        for name in plugin_files(settings)
        if not (settings.orthanc_plugins_dir / name).exists()
    ]
    return missing


def plugin_files(settings: Settings) -> tuple[str, ...]:
    return PLUGIN_FILES + ((POSTGRESQL_PLUGIN,) if settings.orthanc_database_url else ())


def render_config(settings: Settings, modalities: Sequence[Modality] = ()) -> str:
    """The Orthanc configuration for these settings and registered modalities, as JSON text."""
    paths = OrthancPaths(settings.orthanc_dir)
    values = {
        "name": f"PACS archive {settings.orthanc_aet}",
        "storage_dir": str(paths.storage),
        "plugins": [str(settings.orthanc_plugins_dir / name) for name in plugin_files(settings)],
        "http_port": settings.orthanc_http_port,
        "registered_users": {
            settings.orthanc_user: settings.orthanc_password,
            settings.orthanc_viewer_user: settings.orthanc_viewer_password,
        },
        "aet": settings.orthanc_aet,
        "dicom_port": settings.orthanc_dicom_port,
        "stable_age": settings.orthanc_stable_age,
        "plugin_script": str(PLUGIN_SCRIPT),
        "webhook_url": settings.webhook_url,
        "webhook_secret": settings.webhook_secret,
        "viewer_user": settings.orthanc_viewer_user,
        "accept_any": settings.dicom_accept_any,
        "check_host": settings.dicom_check_host,
        "modalities": {m.aet: to_archive_definition(m) for m in modalities},
        "notify_arriving": settings.worklist_arriving,
    }
    encoded = {key: json.dumps(value) for key, value in values.items()}
    config = json.loads(Template(CONFIG_TEMPLATE.read_text()).substitute(encoded))
    if settings.orthanc_database_url:
        config["PostgreSQL"] = postgresql_index(settings.orthanc_database_url)
    return json.dumps(config, indent=2)


def postgresql_index(url: str) -> dict[str, object]:
    """The PostgreSQL plugin's section: the index there, the files still in the storage
    folder; no lock, so that several Orthancs may share the index."""
    parts = urlsplit(url)
    return {
        "EnableIndex": True,
        "EnableStorage": False,
        "Host": parts.hostname or "127.0.0.1",
        "Port": parts.port or 5432,
        "Database": parts.path.lstrip("/") or "orthanc",
        "Username": unquote(parts.username or ""),
        "Password": unquote(parts.password or ""),
        "Lock": False,
        "IndexConnectionsCount": 4,
    }


def start_orthanc(settings: Settings, *, timeout: float = 30.0) -> subprocess.Popen[bytes]:
    """Start Orthanc in the background and return once it answers HTTP requests."""
    missing = find_missing_parts(settings)
    if missing:
        raise OrthancServerError(
            f"Orthanc is not installed: missing {', '.join(missing)}. "
            f"Install it with: apt-get install -y {APT_PACKAGES}"
            + (" orthanc-postgresql" if settings.orthanc_database_url else "")
        )
    paths = OrthancPaths(settings.orthanc_dir)
    paths.storage.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not try_lock(lock_fd):
            raise OrthancServerError(
                f"Orthanc is already running on {paths.folder} (pid {read_pid(paths)}); "
                "stop it first with `pacs orthanc stop`"
            )
        paths.pid.unlink(missing_ok=True)  # stale: its owner no longer holds the lock
        check_port_free(settings.orthanc_http_port, "PACS_ORTHANC_HTTP_PORT", "127.0.0.1")
        check_port_free(settings.orthanc_dicom_port, "PACS_ORTHANC_DICOM_PORT", "0.0.0.0")
        with open_session(settings.database_url) as session:
            modalities = list_modalities(session)
        # It holds the archive password: written whole, mode 0600 from the start.
        write_private_file(paths.config, render_config(settings, modalities))
        with paths.log.open("ab") as log:
            process = subprocess.Popen(
                [str(settings.orthanc_binary), str(paths.config)],
                cwd=paths.folder,
                env={**os.environ, "TCP_NODELAY": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(lock_fd,),
            )
        paths.pid.write_text(f"{process.pid}\n")
    finally:
        os.close(lock_fd)
    wait_until_answering(settings, process, paths, timeout)
    return process


def wait_until_answering(
    settings: Settings, process: subprocess.Popen[bytes], paths: OrthancPaths, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    with ArchiveClient.from_settings(settings, timeout=2) as client:
        while True:
            if process.poll() is not None:
                paths.pid.unlink(missing_ok=True)
                raise OrthancServerError(
                    f"Orthanc exited at start (code {process.returncode}): "
                    f"{last_error_line(paths.log)} (full log: {paths.log})"
                )
            try:
                client.get_system()
                return
            except ArchiveError:
                if time.monotonic() > deadline:
                    process.terminate()
                    raise OrthancServerError(
                        f"Orthanc did not answer on port {settings.orthanc_http_port} "
                        f"within {timeout:.0f} s (log: {paths.log})"
                    ) from None
            time.sleep(0.1)


def stop_orthanc(settings: Settings, *, timeout: float = 30.0) -> int | None:
    """Stop the project's Orthanc with SIGTERM; returns its pid, or None if none was running."""
    paths = OrthancPaths(settings.orthanc_dir)
    if not is_running(paths):
        paths.pid.unlink(missing_ok=True)
        return None
    pid = read_pid(paths)
    if pid is None:
        raise OrthancServerError(
            f"Orthanc holds {paths.lock} but {paths.pid} is missing or unreadable: "
            "stop it by hand (see `fuser -v` on the lock file)"
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(paths):
        if time.monotonic() > deadline:
            raise OrthancServerError(f"Orthanc (pid {pid}) did not stop within {timeout:.0f} s")
        time.sleep(0.1)
    paths.pid.unlink(missing_ok=True)
    return pid


def read_status(settings: Settings) -> OrthancStatus:
    """Version, ports and counts of the configured archive."""
    paths = OrthancPaths(settings.orthanc_dir)
    with ArchiveClient.from_settings(settings, timeout=5) as client:
        system = client.get_system()
        stats = client.get_statistics()
    return OrthancStatus(
        pid=read_pid(paths) if is_running(paths) else None,
        version=system["Version"],
        aet=system["DicomAet"],
        http_port=system["HttpPort"],
        dicom_port=system["DicomPort"],
        patients=stats["CountPatients"],
        studies=stats["CountStudies"],
        series=stats["CountSeries"],
        instances=stats["CountInstances"],
        disk_mb=float(stats["TotalDiskSizeMB"]),
    )


def is_running(paths: OrthancPaths) -> bool:
    """True while some process holds the storage's lock."""
    if not paths.lock.exists():
        return False
    fd = os.open(paths.lock, os.O_RDWR)
    try:
        return not try_lock(fd)
    finally:
        os.close(fd)


def try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_pid(paths: OrthancPaths) -> int | None:
    try:
        return int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def check_port_free(port: int, setting: str, host: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise OrthancServerError(
                f"port {port} ({setting}) is already in use by another program: "
                f"stop that program or set {setting} to a free port"
            ) from None


def last_error_line(log: Path) -> str:
    """The most telling line of Orthanc's log: its last error, else its last line."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-50:]
    except FileNotFoundError:
        return "no log written"
    errors = [line for line in lines if line.startswith("E")]
    return (errors or lines or ["empty log"])[-1].strip()
