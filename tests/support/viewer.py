"""Helpers of the browser tests that look at OHIF's viewport: what it shows, and waiting
(bounded) until it shows an image."""

from __future__ import annotations

import datetime
from io import BytesIO

import numpy as np
from PIL import Image

VIEWER_TIMEOUT_MS = 60_000


def read_viewport(page) -> tuple[str, np.ndarray]:
    """The viewport's image position text ("3/24") and its pixels as the user sees them."""
    position = page.locator("[data-cy=viewport-overlay-bottom-right]").inner_text().strip()
    png = page.locator("canvas.cornerstone-canvas").first.screenshot()
    return position, np.asarray(Image.open(BytesIO(png)).convert("L"), dtype=np.float32)


def wait_for_image(page, *, unlike: np.ndarray | None = None, seconds: float = 60) -> np.ndarray:
    """Poll (bounded) until the viewport shows an image, different from `unlike` if given."""
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=seconds)
    while True:
        _, pixels = read_viewport(page)
        shown = pixels.var() > 100  # a blank or uniform viewport has (almost) no variance
        if shown and (unlike is None or np.abs(pixels - unlike).mean() > 1):
            return pixels
        assert datetime.datetime.now() < deadline, "the viewport stayed blank or unchanged"
        page.wait_for_timeout(250)


def open_largest_series(page) -> int:
    """Double-click the study browser's series with the most images; returns that count."""
    thumbnails = page.locator("[data-cy=study-browser-thumbnail]")
    thumbnails.first.wait_for(timeout=VIEWER_TIMEOUT_MS)
    counts = [int(text.split()[-1]) for text in thumbnails.all_inner_texts()]
    largest = counts.index(max(counts))
    thumbnails.nth(largest).dblclick()
    return max(counts)
