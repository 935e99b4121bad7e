"""The DICOM modalities registered to use the archive's DICOM port."""

from __future__ import annotations

import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.modalities import Modality
from storage.models.base import Base, UtcDateTime


class RegisteredModality(Base):
    """One AE allowed on the DICOM port (store, query, retrieve)."""

    __tablename__ = "dicom_modalities"

    id: Mapped[int] = mapped_column(primary_key=True)
    aet: Mapped[str] = mapped_column(String(16), unique=True)
    host: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(256), default="")
    added_at: Mapped[datetime.datetime] = mapped_column(UtcDateTime)

    def to_modality(self) -> Modality:
        return Modality(self.aet, self.host, self.port, self.description)
