"""The OHIF viewer bundle: fetched from the npm registry, prepared to be served under /viewer/.

`@ohif/app` ships a prebuilt `dist/` made for the site root. Preparing it means: leaving out
what we do not use (`ort/`, the AI models: 136 MB), moving the four hard-coded roots to
`/viewer/` (index.html, the webpack public path of each bundle, font URLs in CSS, the
microscopy import), moving index.html's inline scripts into a file (the viewer's
Content-Security-Policy allows no inline script), writing `app-config.js` for the portal's
DICOMweb proxy, and gzip-compressing what compresses. The result replaces the previous
bundle atomically; a stamp file records the version.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
VIEWER_ROOT = "/viewer/"
PROXY_ROOT = "/dicom-web"
STAMP_FILE = "pacs-bundle.json"
BOOT_SCRIPT = "pacs-boot.js"
LEFT_OUT = ("ort/", "sw.js", "init-service-worker.js", "_headers", "_redirects", "serve.json")
COMPRESSIBLE = frozenset({".js", ".css", ".wasm", ".html", ".json", ".svg", ".map", ".xml"})
# Files whose names carry a content hash can be cached for a year.
HASHED_NAME = re.compile(r"[.-][0-9a-f]{16,}\.|^[0-9a-f]{16,}\.")

WEBPACK_PUBLIC_PATH = '__webpack_require__.p = "/";'
MICROSCOPY_IMPORT = "browserImportFunction('/dicom-microscopy-viewer/"
INLINE_SCRIPTS = (
    '<script>console.time("scriptToView"),window.PUBLIC_URL="/"</script>',
    '<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>',
)
SERVICE_WORKER_TAG = (
    '<script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>'
)


class BundleError(RuntimeError):
    """The bundle could not be fetched or prepared."""


def read_installed_version(viewer_dir: Path) -> str | None:
    """The version of the prepared bundle in `viewer_dir`, or None when there is none."""
    try:
        return json.loads((viewer_dir / STAMP_FILE).read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def install_viewer_bundle(viewer_dir: Path, *, version: str = OHIF_VERSION) -> bool:
    """Fetch and prepare the bundle unless this version is already there; True if installed."""
    if read_installed_version(viewer_dir) == version:
        return False
    viewer_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=viewer_dir.parent, prefix=".viewer-") as scratch:
        work = Path(scratch)
        archive = fetch_package(work, version)
        staged = work / "viewer"
        extract_dist(archive, staged)
        prepare_bundle(staged)
        (staged / STAMP_FILE).write_text(json.dumps({"package": OHIF_PACKAGE, "version": version}))
        replace_folder(staged, viewer_dir)
    return True


def fetch_package(work: Path, version: str) -> Path:
    """`npm pack` the package into `work` (npm's cache makes a second fetch local)."""
    if shutil.which("npm") is None:
        raise BundleError("npm is not installed: apt-get install -y npm")
    result = subprocess.run(
        ["npm", "pack", f"{OHIF_PACKAGE}@{version}", "--silent", "--pack-destination", str(work)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise BundleError(f"npm pack {OHIF_PACKAGE}@{version} failed: {' '.join(message[-2:])}")
    return work / result.stdout.strip().splitlines()[-1]


def extract_dist(archive: Path, target: Path) -> None:
    """Unpack `package/dist/` into `target`, without what we leave out."""
    prefix = "package/dist/"
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                continue
            relative = member.name[len(prefix) :]
            if not relative or relative.startswith(LEFT_OUT):
                continue
            member.name = relative
            members.append(member)
        tar.extractall(target, members=members, filter="data")


def prepare_bundle(folder: Path) -> None:
    """Rewrite a root-built OHIF `dist/` in place to be served under VIEWER_ROOT."""
    rewrite_index(folder / "index.html")
    for path in folder.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        new = text.replace(WEBPACK_PUBLIC_PATH, f'__webpack_require__.p = "{VIEWER_ROOT}";')
        new = new.replace(
            MICROSCOPY_IMPORT, f"browserImportFunction('{VIEWER_ROOT}dicom-microscopy-viewer/"
        )
        if new != text:
            path.write_text(new, encoding="utf-8")
    for path in folder.rglob("*.css"):
        text = path.read_text(encoding="utf-8")
        new = re.sub(r"url\(/(?!/)", f"url({VIEWER_ROOT}", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
    (folder / BOOT_SCRIPT).write_text(
        'console.time("scriptToView");\n'
        f'window.PUBLIC_URL = "{VIEWER_ROOT}";\n'
        "// The bundle loads its codecs and the microscopy viewer through this global.\n"
        "window.browserImportFunction = function (name) { return import(name); };\n"
    )
    (folder / "app-config.js").write_text(render_app_config())
    compress_files(folder)


def rewrite_index(index: Path) -> None:
    html = index.read_text(encoding="utf-8")
    for script in INLINE_SCRIPTS:
        if script not in html:
            raise BundleError(f"index.html no longer has the inline script {script!r}")
    html = html.replace(INLINE_SCRIPTS[1], "").replace(SERVICE_WORKER_TAG, "")
    html = re.sub(r'(src|href|content)="/(?!/)', rf'\1="{VIEWER_ROOT}', html)
    html = html.replace(INLINE_SCRIPTS[0], f'<script src="{VIEWER_ROOT}{BOOT_SCRIPT}"></script>')
    index.write_text(html, encoding="utf-8")


def render_app_config() -> str:
    """OHIF's configuration: one DICOMweb source, the portal's same-origin proxy."""
    source = {
        "friendlyName": "PACS archive",
        "name": "pacs",
        "qidoSupportsIncludeField": True,
        "imageRendering": "wadors",
        "thumbnailRendering": "wadors",
        "enableStudyLazyLoad": True,
        "supportsFuzzyMatching": False,
        "supportsWildcard": True,
        "staticWado": False,
        "singlepart": "bulkdata,video",
        "omitQuotationForMultipartRequest": True,
        "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
    }
    config = {
        "routerBasename": VIEWER_ROOT.rstrip("/"),
        "extensions": [],
        "modes": [],
        # No guided tour: the portal's users are radiologists at work, not visitors.
        "customizationService": [{"ohif.tours": {"$set": []}}],
        "showStudyList": False,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 25},
        "showErrorDetails": "production",
        "defaultDataSourceName": "pacs",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "pacs",
                "configuration": source,
            }
        ],
    }
    roots = ("qidoRoot", "wadoRoot", "wadoUriRoot")
    root_lines = "".join(f"source.{key} = proxy;\n" for key in roots)
    return (
        "// Written by the PACS portal (portal/viewer/bundle.py); rewritten on every install.\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        "// Images come only through the portal's authenticated, same-origin DICOMweb proxy.\n"
        "(function () {\n"
        f'var proxy = window.location.origin + "{PROXY_ROOT}";\n'
        "var source = window.config.dataSources[0].configuration;\n"
        f"{root_lines}"
        "})();\n"
    )


def compress_files(folder: Path) -> None:
    """Write `name.gz` beside every compressible file over 1 KiB (served when accepted)."""
    for path in folder.rglob("*"):
        if path.suffix in COMPRESSIBLE and path.is_file() and path.stat().st_size > 1024:
            with path.open("rb") as source, gzip.open(f"{path}.gz", "wb", compresslevel=6) as out:
                shutil.copyfileobj(source, out, 1024 * 1024)


def replace_folder(staged: Path, target: Path) -> None:
    """Swap `staged` in for `target` with renames, so the portal never serves half a bundle."""
    if not target.exists():
        staged.rename(target)
        return
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    target.rename(old)
    staged.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def is_hashed_name(name: str) -> bool:
    """Whether the file name carries a content hash (safe to cache for a year)."""
    return bool(HASHED_NAME.search(name))
