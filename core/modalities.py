"""Registered DICOM modalities: the AEs the archive's DICOM port accepts, and their rules.

An entry names a calling AE title, the IP address it calls from (checked by the
archive unless `PACS_DICOM_CHECK_HOST=0`), the port it listens on (where C-MOVE
sends images) and a free-text description.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# DICOM allows 16 characters of the default repertoire; we keep those that are also safe
# in Orthanc's REST names and URLs (the AE title is the modality's name there).
AET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}")
DESCRIPTION_MAX = 256


class ModalityError(ValueError):
    """A modality entry that cannot be registered (or removed); the message says why."""


@dataclass(frozen=True)
class Modality:
    aet: str
    host: str
    port: int
    description: str = ""


def check_modality(aet: str, host: str, port: int | str, description: str = "") -> Modality:
    """A valid entry from user input, or ModalityError naming the first problem."""
    return Modality(
        aet=check_aet(aet),
        host=check_host(host),
        port=check_port(port),
        description=check_description(description),
    )


def check_aet(aet: str) -> str:
    if len(aet) > 16:
        raise ModalityError(f"AE title {aet!r} is longer than 16 characters")
    if not AET_PATTERN.fullmatch(aet):
        raise ModalityError(
            f"AE title {aet!r} may hold only letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    return aet


def check_host(host: str) -> str:
    """An IP address: the archive compares it with the address a call comes from."""
    try:
        return str(ipaddress.ip_address(host.strip()))
    except ValueError:
        raise ModalityError(
            f"host {host!r} is not an IP address (the archive checks callers by address)"
        ) from None


def check_port(port: int | str) -> int:
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise ModalityError(f"port {port!r} is not a whole number") from None
    if not 1 <= number <= 65535:
        raise ModalityError(f"port {number} is not a TCP port (1-65535)")
    return number


def check_description(description: str) -> str:
    text = " ".join(description.split())
    if len(text) > DESCRIPTION_MAX:
        raise ModalityError(f"description is longer than {DESCRIPTION_MAX} characters")
    return text
