"""Synthetic demo studies, so that a fresh PACS has something realistic to show.

An empty archive makes a poor demo and real patient data must not be used, so this
module fabricates the recent work of a small radiology department: a dozen studies of
nine patients across CT, MR, CR, DX and US. Headers carry what a worklist, viewer and
reporting portal rely on (international names in UTF-8, accession numbers, referring
physicians, priorities, order times) and the pixel data is drawn with numpy so that a
viewer shows recognisable anatomy.

Everything is deterministic. UIDs come from fixed strings, so sending the demo twice
never duplicates data in the archive; only dates move with `today`, so the studies always
fall in the eight weeks before it. Pure domain code: no I/O, no network.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

UID_NAMESPACE = "pacs-platform/demo.studies/v1"
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=[UID_NAMESPACE, "implementation"])
IMPLEMENTATION_VERSION_NAME = "PACS_DEMO_1"
CHARACTER_SET = "ISO_IR 192"

CT_SHAPE = (256, 256)
MR_SHAPE = (256, 256)
CR_SHAPE = (512, 512)
DX_SHAPE = (640, 512)
US_SHAPE = (480, 640)
US_CINE_FRAMES = 20
US_FRAME_MS = 50.0

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)

# Tissue labels shared by the CT and MR head phantoms; lookup tables map them to HU or signal.
AIR, FAT, BONE, CSF, GREY, WHITE, LESION, MUSCLE = range(8)
HEAD_HU = np.array([-1000, -60, 1100, 8, 40, 28, 70, 50], dtype=np.float32)
HEAD_ATTENUATION = np.array([0.0, 0.9, 1.9, 1.0, 1.04, 1.03, 1.07, 1.05], dtype=np.float32)


@dataclass(frozen=True)
class DemoStudy:
    """One demo study: a summary for listings and every instance, ready to send or save."""

    study_instance_uid: str
    patient_id: str
    patient_name: str
    modality: str
    accession_number: str
    description: str
    datasets: tuple[pydicom.Dataset, ...]


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str
    birth_date: date
    sex: str
    height_m: float
    weight_kg: float


@dataclass(frozen=True)
class StudyPlan:
    """One row of the demo worklist; `build` draws its instances once the date is known."""

    key: str
    patient: Patient
    modality: str
    accession: str
    description: str
    days_ago: int
    start: time
    priority: str
    order_lead: timedelta | None
    referring: str
    institution: str
    build: Callable[[Exam], list[Dataset]]


@dataclass(frozen=True)
class Exam:
    plan: StudyPlan
    started: datetime

    @property
    def uid(self) -> str:
        return make_uid(self.plan.key, "study")

    @property
    def frame_of_reference_uid(self) -> str:
        return make_uid(self.plan.key, "frame-of-reference")


@dataclass(frozen=True)
class Series:
    exam: Exam
    number: int
    description: str
    body_part: str
    minutes_after_start: float

    @property
    def uid(self) -> str:
        return make_uid(self.exam.plan.key, "series", self.number)

    @property
    def started(self) -> datetime:
        return self.exam.started + timedelta(minutes=self.minutes_after_start)


def build_demo_studies(today: date) -> list[DemoStudy]:
    """The demo department's studies, all dated within the 56 days before `today`.

    UIDs, names and pixel data never depend on `today`; only dates and ages do.
    """
    return [build_study(plan, today) for plan in STUDY_PLANS]


def build_study(plan: StudyPlan, today: date) -> DemoStudy:
    exam = Exam(plan, datetime.combine(today - timedelta(days=plan.days_ago), plan.start))
    return DemoStudy(
        study_instance_uid=exam.uid,
        patient_id=plan.patient.patient_id,
        patient_name=plan.patient.name,
        modality=plan.modality,
        accession_number=plan.accession,
        description=plan.description,
        datasets=tuple(plan.build(exam)),
    )


# --- Headers ---------------------------------------------------------------------------


def make_uid(*parts: object) -> str:
    """A valid UID that is the same on every call with the same `parts`."""
    return generate_uid(entropy_srcs=[UID_NAMESPACE, *(str(part) for part in parts)])


def format_date(value: date) -> str:
    return value.strftime("%Y%m%d")


def format_time(value: datetime) -> str:
    return value.strftime("%H%M%S")


def count_years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def make_file_meta(sop_class: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def apply_attributes(ds: Dataset, attributes: dict[str, object]) -> None:
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)


def describe_patient(patient: Patient, on: date) -> dict[str, object]:
    return {
        "PatientName": patient.name,
        "PatientID": patient.patient_id,
        "PatientBirthDate": format_date(patient.birth_date),
        "PatientSex": patient.sex,
        "PatientAge": f"{count_years(patient.birth_date, on):03d}Y",
        "PatientSize": patient.height_m,
        "PatientWeight": patient.weight_kg,
    }


def describe_study(exam: Exam) -> dict[str, object]:
    plan = exam.plan
    attributes: dict[str, object] = {
        "StudyInstanceUID": exam.uid,
        "StudyDate": format_date(exam.started),
        "StudyTime": format_time(exam.started),
        "StudyID": plan.accession[-5:],
        "AccessionNumber": plan.accession,
        "StudyDescription": plan.description,
        "ReferringPhysicianName": plan.referring,
        "InstitutionName": plan.institution,
        "InstitutionalDepartmentName": "Radiology",
        "RequestedProcedurePriority": plan.priority,
    }
    if plan.order_lead is not None:
        ordered = exam.started - plan.order_lead
        attributes["IssueDateOfImagingServiceRequest"] = format_date(ordered)
        attributes["IssueTimeOfImagingServiceRequest"] = format_time(ordered)
    return attributes


def describe_series(series: Series) -> dict[str, object]:
    modality = series.exam.plan.modality
    return {
        "Modality": modality,
        "SeriesInstanceUID": series.uid,
        "SeriesNumber": series.number,
        "SeriesDescription": series.description,
        "ProtocolName": series.description,
        "SeriesDate": format_date(series.started),
        "SeriesTime": format_time(series.started),
        "BodyPartExamined": series.body_part,
        **EQUIPMENT[modality],
    }


def make_instance(series: Series, sop_class: str, number: int, acquired: datetime) -> Dataset:
    """An instance with every module the demo IODs share filled in; pixels come later."""
    exam = series.exam
    sop_instance_uid = make_uid(exam.plan.key, "instance", series.number, number)
    ds = Dataset()
    ds.file_meta = make_file_meta(sop_class, sop_instance_uid)
    ds.preamble = bytes(128)
    ds.SpecificCharacterSet = CHARACTER_SET
    apply_attributes(ds, describe_patient(exam.plan.patient, exam.started.date()))
    apply_attributes(ds, describe_study(exam))
    apply_attributes(ds, describe_series(series))
    apply_attributes(
        ds,
        {
            "SOPClassUID": sop_class,
            "SOPInstanceUID": sop_instance_uid,
            "InstanceCreationDate": format_date(acquired),
            "InstanceCreationTime": format_time(acquired),
            "InstanceNumber": number,
            "AcquisitionDate": format_date(acquired),
            "AcquisitionTime": format_time(acquired),
            "ContentDate": format_date(acquired),
            "ContentTime": format_time(acquired),
            "BurnedInAnnotation": "NO",
        },
    )
    return ds


def attach_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int) -> None:
    ds.set_pixel_data(pixels, "MONOCHROME2", bits_stored, generate_instance_uid=False)


def describe_plane(
    origin: tuple[float, float, float],
    orientation: tuple[float, ...],
    spacing_mm: float,
    thickness_mm: float,
) -> dict[str, object]:
    return {
        "ImagePositionPatient": [round(value, 3) for value in origin],
        "ImageOrientationPatient": list(orientation),
        "PixelSpacing": [round(spacing_mm, 6)] * 2,
        "SliceThickness": thickness_mm,
    }


def describe_window(center: float, width: float) -> dict[str, object]:
    return {"WindowCenter": round(center), "WindowWidth": round(width)}


def measure_window(values: np.ndarray) -> dict[str, object]:
    """A display window spanning the bulk of an image's non-background values."""
    low, high = np.percentile(values[values > values.min()], [1, 99.5])
    return describe_window((low + high) / 2, max(high - low, 1))


def make_code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = meaning
    return item


# --- Drawing primitives ------------------------------------------------------------------


Window = tuple[slice, slice]
WHOLE: Window = (slice(None), slice(None))


@functools.cache
def make_grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates: a column of y from -1 (top) to 1 and a row of x in the same
    unit, which broadcast to the whole image."""
    step = 2.0 / rows
    y = ((np.arange(rows, dtype=np.float32) + 0.5) * step - 1.0)[:, np.newaxis]
    x = ((np.arange(cols, dtype=np.float32) + 0.5 - cols / 2) * step)[np.newaxis, :]
    y.flags.writeable = x.flags.writeable = False
    return y, x


def find_window(
    shape: tuple[int, int], top: float, bottom: float, left: float, right: float
) -> Window:
    """The rows and columns covering a box given in grid units, so small shapes stay cheap."""
    rows, cols = shape
    step = 2.0 / rows
    first_row, last_row = np.clip([(top + 1) / step - 1, (bottom + 1) / step + 2], 0, rows)
    first_col, last_col = np.clip(
        [left / step + cols / 2 - 1, right / step + cols / 2 + 2], 0, cols
    )
    return slice(int(first_row), int(last_row)), slice(int(first_col), int(last_col))


def measure_ellipse(
    shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, window: Window = WHOLE
) -> np.ndarray:
    """Squared normalised distance from an ellipse's centre: at most 1 inside it."""
    y, x = make_grid(*shape)
    return ((y[window[0]] - cy) / ry) ** 2 + ((x[:, window[1]] - cx) / rx) ** 2


def draw_ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    window = find_window(shape, cy - ry, cy + ry, cx - rx, cx + rx)
    mask = np.zeros(shape, dtype=bool)
    mask[window] = measure_ellipse(shape, cy, cx, ry, rx, window) <= 1.0
    return mask


def draw_dome(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Projected thickness (0..1) of an ellipsoid, the building block of radiographs."""
    window = find_window(shape, cy - ry, cy + ry, cx - rx, cx + rx)
    thickness = np.zeros(shape, dtype=np.float32)
    inside = 1.0 - measure_ellipse(shape, cy, cx, ry, rx, window)
    thickness[window] = np.sqrt(np.clip(inside, 0.0, None))
    return thickness


def draw_rod(
    shape: tuple[int, int],
    start: tuple[float, float],
    end: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Projected thickness (0..1) of a round-ended cylinder between two (y, x) points."""
    (y0, x0), (y1, x1) = start, end
    top, bottom, left, right = min(y0, y1), max(y0, y1), min(x0, x1), max(x0, x1)
    window = find_window(shape, top - radius, bottom + radius, left - radius, right + radius)
    y, x = make_grid(*shape)
    y, x = y[window[0]] - y0, x[:, window[1]] - x0
    dy, dx = y1 - y0, x1 - x0
    along = np.clip((y * dy + x * dx) / (dy * dy + dx * dx), 0.0, 1.0)
    distance2 = (y - along * dy) ** 2 + (x - along * dx) ** 2
    thickness = np.zeros(shape, dtype=np.float32)
    thickness[window] = np.sqrt(np.clip(1.0 - distance2 / radius**2, 0.0, None))
    return thickness


def draw_bone(
    shape: tuple[int, int],
    start: tuple[float, float],
    end: tuple[float, float],
    radius: float,
) -> np.ndarray:
    """Projected long bone: a dense cortex around a lighter medullary cavity."""
    return draw_rod(shape, start, end, radius) - 0.6 * draw_rod(shape, start, end, 0.6 * radius)


def smooth_image(image: np.ndarray, radius_y: int, radius_x: int) -> np.ndarray:
    """Box blur over the last two axes, as moving averages of cumulative sums."""
    for axis, radius in ((-2, radius_y), (-1, radius_x)):
        length = image.shape[axis]
        padding = [(0, 0)] * image.ndim
        padding[axis] = (radius + 1, radius)
        sums = np.cumsum(np.pad(image, padding, mode="edge"), axis=axis, dtype=np.float32)
        upper = np.take(sums, np.arange(2 * radius + 1, 2 * radius + 1 + length), axis=axis)
        image = (upper - np.take(sums, np.arange(length), axis=axis)) / (2 * radius + 1)
    return image


def make_rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


@functools.cache
def make_noise_bank() -> np.ndarray:
    """Unit Gaussian noise to cut image-sized windows from: fresh noise per image is slow."""
    bank = make_rng("noise bank").standard_normal((768, 768), dtype=np.float32)
    bank.flags.writeable = False
    return bank


def cut_noise(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit Gaussian noise of `shape`, from a random offset in the bank."""
    bank = make_noise_bank()
    top, left = rng.integers(0, (bank.shape[0] - shape[0] + 1, bank.shape[1] - shape[1] + 1))
    return bank[top : top + shape[0], left : left + shape[1]]


# --- Phantoms ----------------------------------------------------------------------------


def draw_chest_axial(level: float, contrast: bool, rng: np.random.Generator) -> np.ndarray:
    """Hounsfield units of an axial chest slice; `level` 0 is the lung apex, 1 the liver."""
    shape = CT_SHAPE
    y, x = make_grid(*shape)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[draw_ellipse(shape, 0.08, 0.0, 0.6, 0.9)] = -100.0
    hu[draw_ellipse(shape, 0.08, 0.0, 0.54, 0.83)] = 45.0
    lung = 0.35 + 0.65 * np.sin(np.pi * (0.08 + 0.8 * level))
    for side in (-1, 1):
        hu[draw_ellipse(shape, 0.02, side * 0.4, 0.42 * lung, 0.3 * lung)] = -860.0
    for cy, cx in rng.uniform(-0.35, 0.35, (14, 2)) * (1.0, 1.6):
        hu[draw_ellipse(shape, cy, cx, 0.02, 0.02) & (hu < -500)] = 30.0
    if level > 0.6:
        liver = 0.9 * (level - 0.55)
        hu[draw_ellipse(shape, 0.12, -0.38, 0.8 * liver, liver)] = 100.0 if contrast else 60.0
    heart = np.sin(np.pi * np.clip((level - 0.25) / 0.8, 0.0, 1.0))
    if heart > 0.05:
        hu[draw_ellipse(shape, 0.1, 0.12, 0.3 * heart, 0.33 * heart)] = 45.0
        hu[draw_ellipse(shape, 0.1, 0.12, 0.2 * heart, 0.22 * heart)] = 210.0 if contrast else 40.0
    aorta = (-0.08, 0.04) if level < 0.3 else (0.3, 0.12)
    hu[draw_ellipse(shape, *aorta, 0.065, 0.065)] = 250.0 if contrast else 45.0
    hu[draw_ellipse(shape, 0.42, 0.0, 0.11, 0.11)] = 800.0
    hu[draw_ellipse(shape, 0.42, 0.0, 0.09, 0.09)] = 280.0
    hu[draw_ellipse(shape, 0.58, 0.0, 0.035, 0.13)] = 700.0
    hu[draw_ellipse(shape, 0.54, 0.0, 0.04, 0.04)] = 10.0
    if level < 0.85:
        hu[draw_ellipse(shape, -0.43, 0.0, 0.035, 0.075)] = 600.0
    ring = draw_ellipse(shape, 0.08, 0.0, 0.56, 0.86) & ~draw_ellipse(shape, 0.08, 0.0, 0.5, 0.79)
    theta = np.arctan2(y - 0.08, x)
    hu[ring & (np.cos(9 * theta + 8 * level) > 0.55)] = 750.0
    hu[(np.abs(y - 0.78 - 0.06 * x**2) < 0.012) & (np.abs(x) < 0.75)] = 200.0
    return hu


def fold_cortex(radius2: np.ndarray, theta: np.ndarray, depth: float) -> np.ndarray:
    """Inside of an ellipse whose border is folded irregularly, like gyri."""
    folds = 1.0 + 0.6 * np.cos(17 * theta) + 0.4 * np.cos(6 * theta + 1.0)
    return radius2 <= 1.0 - depth * folds


def draw_head_axial(level: float, lesion: bool) -> np.ndarray:
    """Tissue labels of an axial head slice; `level` 0 is the skull base, 1 the vertex."""
    shape = MR_SHAPE
    y, x = make_grid(*shape)
    theta = np.arctan2(y, x)
    size = float(np.sqrt(np.clip(1.0 - ((level - 0.35) / 0.75) ** 2, 0.08, 1.0)))
    labels = np.zeros(shape, dtype=np.uint8)
    labels[draw_ellipse(shape, 0.0, 0.0, 0.86 * size, 0.72 * size)] = FAT
    labels[draw_ellipse(shape, 0.0, 0.0, 0.81 * size, 0.67 * size)] = BONE
    labels[draw_ellipse(shape, 0.0, 0.0, 0.75 * size, 0.61 * size)] = CSF
    cortex = measure_ellipse(shape, 0.0, 0.0, 0.73 * size, 0.59 * size)
    labels[fold_cortex(cortex, theta, 0.03)] = GREY
    white = measure_ellipse(shape, 0.02, 0.0, 0.58 * size, 0.46 * size)
    labels[fold_cortex(white, theta + 0.2, 0.08)] = WHITE
    labels[(cortex <= 1.0) & (np.abs(x) < 0.012) & (y < -0.1)] = CSF
    if 0.3 < level < 0.75:
        horn = 0.22 * np.sin(np.pi * (level - 0.3) / 0.45)
        for side in (-1, 1):
            labels[draw_ellipse(shape, -0.02, side * 0.085, horn, 0.055)] = CSF
    if lesion and 0.45 < level < 0.7:
        labels[draw_ellipse(shape, 0.25, 0.28, 0.07, 0.05)] = LESION
    return labels


def draw_head_sagittal(offset: float) -> np.ndarray:
    """Tissue labels of a sagittal head slice, face to the left; `offset` runs -1..1 from the
    right to the left side of the head."""
    shape = MR_SHAPE
    y, x = make_grid(*shape)
    size = float(np.sqrt(1.0 - 0.75 * offset**2))
    labels = np.zeros(shape, dtype=np.uint8)
    labels[draw_rod(shape, (0.3, 0.1), (1.3, 0.15), 0.4 * size) > 0] = MUSCLE
    labels[draw_ellipse(shape, 0.3, -0.28, 0.32 * size, 0.38 * size)] = MUSCLE
    labels[draw_ellipse(shape, -0.12, 0.02, 0.8 * size, 0.74 * size)] = FAT
    labels[draw_ellipse(shape, -0.12, 0.02, 0.75 * size, 0.69 * size)] = BONE
    labels[draw_ellipse(shape, -0.13, 0.02, 0.69 * size, 0.63 * size)] = CSF
    theta = np.arctan2(y + 0.22, x)
    cortex = measure_ellipse(shape, -0.22, 0.0, 0.52 * size, 0.62 * size)
    labels[fold_cortex(cortex, theta, 0.03)] = GREY
    white = measure_ellipse(shape, -0.2, 0.0, 0.36 * size, 0.46 * size)
    labels[fold_cortex(white, theta + 0.4, 0.08)] = WHITE
    labels[draw_ellipse(shape, 0.27, 0.3, 0.15 * size, 0.22 * size)] = GREY
    labels[draw_ellipse(shape, 0.27, 0.3, 0.06 * size, 0.11 * size)] = WHITE
    if abs(offset) < 0.25:
        labels[draw_rod(shape, (0.05, 0.1), (0.95, 0.14), 0.075) > 0] = WHITE
    if 0.1 < abs(offset) < 0.5:
        labels[draw_ellipse(shape, -0.16, 0.02, 0.07, 0.26)] = CSF
    if abs(offset) < 0.15:
        arch = draw_ellipse(shape, -0.1, 0.02, 0.2, 0.4)
        labels[arch & ~draw_ellipse(shape, -0.1, 0.02, 0.15, 0.34) & (y < -0.12)] = WHITE
    return labels


def project_head_lateral() -> np.ndarray:
    """Density of a lateral head projection, summed over sagittal slices."""
    offsets = np.linspace(-0.9, 0.9, 9)
    return sum(HEAD_ATTENUATION[draw_head_sagittal(float(u))] for u in offsets) / len(offsets)


def draw_chest_pa(shape: tuple[int, int]) -> np.ndarray:
    """Projected density of a posteroanterior chest: dark lungs, mediastinum, ribs."""
    y, x = make_grid(*shape)
    density = 1.4 * draw_dome(shape, 0.25, 0.0, 0.95, 0.78)
    density += 0.6 * draw_dome(shape, -0.58, 0.0, 0.25, 0.92)
    density += 0.8 * draw_rod(shape, (-1.2, 0.0), (-0.6, 0.0), 0.17)
    for side in (-1, 1):
        density -= 1.25 * draw_dome(shape, -0.08, side * 0.36, 0.62, 0.27)
        density += 0.35 * draw_rod(shape, (-0.62, side * 0.08), (-0.72, side * 0.62), 0.03)
    inside = draw_ellipse(shape, 0.25, 0.0, 0.95, 0.78)
    lateral = np.abs(x) - 0.06
    for rib in range(10):
        centre = -0.62 + 0.105 * rib - 0.25 * lateral + 0.9 * lateral**2
        band = np.clip(1.0 - ((y - centre) / 0.022) ** 2, 0.0, None)
        density += 0.35 * np.sqrt(band) * ((lateral > 0) & (lateral < 0.68) & inside)
    density += 0.9 * draw_dome(shape, 0.3, 0.1, 0.3, 0.33)
    density += 0.5 * draw_dome(shape, -0.35, 0.0, 0.4, 0.1)
    density += 0.4 * draw_rod(shape, (-1.2, 0.0), (1.2, 0.0), 0.055)
    return np.clip(density, 0.0, None)


def draw_chest_lateral(shape: tuple[int, int]) -> np.ndarray:
    """Projected density of a lateral chest: anterior to the left, spine to the right."""
    density = 1.5 * draw_dome(shape, 0.25, 0.0, 0.95, 0.62)
    density += 0.4 * draw_rod(shape, (-1.2, 0.1), (-0.6, 0.1), 0.2)
    density += 0.25 * draw_dome(shape, -0.7, 0.05, 0.2, 0.45)
    density -= 1.2 * draw_dome(shape, -0.05, 0.02, 0.62, 0.45)
    density += 0.7 * draw_dome(shape, 0.28, -0.18, 0.3, 0.28)
    density += 0.3 * draw_rod(shape, (-0.55, -0.5), (0.2, -0.58), 0.03)
    for vertebra in range(13):
        density += 0.5 * draw_dome(shape, -0.8 + 0.13 * vertebra, 0.42, 0.05, 0.08)
    return np.clip(density, 0.0, None)


def draw_hand(shape: tuple[int, int], squeeze: float = 1.0) -> np.ndarray:
    """Projected density of a right hand with the thumb on the image's left: posteroanterior,
    or turned obliquely when `squeeze` narrows it across."""

    def at(y: float, x: float) -> tuple[float, float]:
        return y, squeeze * x

    density = 0.5 * draw_dome(shape, 0.25, 0.02 * squeeze, 0.38, 0.42 * squeeze)
    density += 0.5 * draw_rod(shape, at(0.55, 0.02), at(1.4, 0.02), 0.33 * squeeze)
    fingers = (  # knuckle, base of the metacarpal, tilt from vertical, length, phalanges
        ((-0.05, -0.21), (0.5, -0.1), -0.12, 0.7, (0.44, 0.3, 0.26)),
        ((-0.09, -0.03), (0.5, -0.01), -0.02, 0.78, (0.44, 0.3, 0.26)),
        ((-0.06, 0.15), (0.5, 0.07), 0.08, 0.72, (0.44, 0.3, 0.26)),
        ((0.02, 0.31), (0.5, 0.14), 0.2, 0.56, (0.44, 0.3, 0.26)),
        ((0.24, -0.38), (0.5, -0.17), -0.6, 0.46, (0.55, 0.45)),
    )
    for (ky, kx), base, tilt, length, phalanges in fingers:
        dy, dx = -np.cos(tilt), np.sin(tilt)
        density += 0.5 * draw_rod(shape, at(ky, kx), at(ky + length * dy, kx + length * dx), 0.08)
        density += 1.4 * draw_bone(shape, at(*base), at(ky, kx), 0.042)
        travelled = 0.02
        for fraction in phalanges:
            start = at(ky + travelled * dy, kx + travelled * dx)
            travelled += fraction * length - 0.025
            end = at(ky + travelled * dy, kx + travelled * dx)
            density += 1.4 * draw_bone(shape, start, end, 0.034)
            travelled += 0.025
    for cy in (0.57, 0.67):
        for cx in (-0.18, -0.06, 0.06, 0.18):
            density += 0.9 * draw_dome(shape, cy, cx * squeeze, 0.05, 0.055)
    density += 1.4 * draw_bone(shape, at(0.76, -0.15), at(1.3, -0.16), 0.085)
    density += 1.4 * draw_bone(shape, at(0.78, 0.17), at(1.3, 0.17), 0.055)
    return density


def draw_knee_ap(shape: tuple[int, int]) -> np.ndarray:
    """Projected density of a right knee, anteroposterior."""
    density = 0.6 * draw_rod(shape, (-1.4, 0.0), (1.4, 0.0), 0.55)
    density += 1.3 * draw_bone(shape, (-1.4, 0.0), (-0.15, 0.0), 0.2)
    for side in (-1, 1):
        density += 1.0 * draw_dome(shape, 0.0, side * 0.15, 0.14, 0.17)
    density += 0.5 * draw_dome(shape, -0.05, 0.0, 0.14, 0.12)
    density += 1.0 * draw_dome(shape, 0.2, 0.0, 0.08, 0.36)
    density += 1.3 * draw_bone(shape, (0.2, 0.0), (1.4, 0.02), 0.17)
    density += 0.8 * draw_dome(shape, 0.33, 0.38, 0.06, 0.07)
    density += 1.0 * draw_bone(shape, (0.33, 0.38), (1.4, 0.34), 0.05)
    return density


def draw_knee_lateral(shape: tuple[int, int]) -> np.ndarray:
    """Projected density of a right knee, lateral: patella to the left."""
    density = 0.6 * draw_rod(shape, (-1.4, 0.05), (1.4, 0.0), 0.5)
    density += 1.3 * draw_bone(shape, (-1.4, 0.1), (-0.1, 0.05), 0.19)
    density += 1.0 * draw_dome(shape, 0.0, 0.05, 0.17, 0.22)
    density += 0.9 * draw_dome(shape, -0.12, -0.33, 0.16, 0.07)
    density += 1.0 * draw_dome(shape, 0.2, 0.05, 0.07, 0.3)
    density += 1.3 * draw_bone(shape, (0.2, 0.05), (1.4, 0.0), 0.16)
    density += 0.8 * draw_dome(shape, 0.32, 0.22, 0.06, 0.06)
    density += 1.0 * draw_bone(shape, (0.32, 0.22), (1.4, 0.2), 0.045)
    return density


def render_radiograph(density: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """12-bit MONOCHROME2 pixels: dense structures bright, with quantum noise and blur."""
    signal = 4095.0 * (1.0 - np.exp(-1.1 * density))
    noisy = smooth_image(signal + 25.0 * cut_noise(rng, density.shape), 1, 1)
    return np.clip(np.rint(noisy), 0, 4095).astype(np.uint16)


@functools.cache
def make_sector() -> tuple[np.ndarray, np.ndarray]:
    """Depth (0 at the probe face, 1 at the deepest row) and mask of a curved-array sector."""
    rows, cols = US_SHAPE
    row, col = np.mgrid[0:rows, 0:cols].astype(np.float32)
    radius = np.hypot(row + 60.0, col - cols / 2)
    angle = np.arctan2(col - cols / 2, row + 60.0)
    depth = (radius - 90.0) / 420.0
    inside = (depth >= 0.0) & (depth <= 1.0) & (np.abs(angle) <= np.radians(34.0))
    depth.flags.writeable = inside.flags.writeable = False
    return depth, inside


def draw_abdomen_echoes(phase: float) -> np.ndarray:
    """Echogenicity of a right upper quadrant view; a cyst drifts across as `phase` goes 0..1."""
    shape = US_SHAPE
    y, x = make_grid(*shape)
    breath = 0.03 * np.sin(2 * np.pi * phase)
    echo = np.full(shape, 0.55, dtype=np.float32)
    vessel = draw_rod(shape, (breath - 0.25, -0.9), (breath + 0.05, 0.6), 0.045)
    echo[vessel > 0.0] = 1.0
    echo[vessel > 0.45] = 0.04
    echo[draw_ellipse(shape, 0.55 + breath, 0.45, 0.18, 0.3)] = 0.35
    echo[draw_ellipse(shape, 0.55 + breath, 0.45, 0.07, 0.17)] = 1.1
    echo[np.abs(y - breath - 0.78 + 0.2 * x**2) < 0.02] = 1.6
    cy, cx = 0.1 + breath, -0.45 + 0.7 * phase
    echo[(np.abs(x - cx) < 0.1) & (y > cy)] *= 1.5
    echo[draw_ellipse(shape, cy, cx, 0.12, 0.12)] = 0.02
    return echo


def render_ultrasound(phase: float, speckle: np.ndarray) -> np.ndarray:
    """8-bit B-mode frame: echoes times speckle, depth-attenuated and log-compressed."""
    depth, inside = make_sector()
    rows = US_SHAPE[0]
    shift = round(0.03 * np.sin(2 * np.pi * phase) * rows / 2)
    intensity = draw_abdomen_echoes(phase) * speckle[8 + shift : 8 + shift + rows]
    intensity *= 1.0 - 0.35 * depth
    pixels = 255.0 * np.log1p(3.0 * intensity) / np.log1p(3.0 * 2.4)
    return (np.clip(pixels, 0.0, 255.0) * inside).astype(np.uint8)


def make_speckle(rng: np.random.Generator) -> np.ndarray:
    """Rayleigh speckle with laterally elongated grains, a little taller than a frame."""
    rows, cols = US_SHAPE
    raw = rng.rayleigh(0.8, (rows + 16, cols)).astype(np.float32)
    return smooth_image(raw, 1, 2) * 1.6


# --- CT ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CtScan:
    body_part: str
    fov_mm: float
    first_z_mm: float
    step_z_mm: float  # signed: chests are scanned downwards, heads upwards
    scout_top_mm: float
    kvp: int
    tube_ma: int
    contrast: bool


@dataclass(frozen=True)
class CtRecon:
    description: str
    kernel: str
    window: tuple[int, int]
    noise_hu: float


CHEST_SOFT_TISSUE = CtRecon("Thorax 7.5 soft tissue", "STANDARD", (40, 400), 10.0)
CHEST_LUNG = CtRecon("Thorax 7.5 lung", "LUNG", (-600, 1500), 28.0)
HEAD_BRAIN = CtRecon("Head 5.0 brain", "SOFT", (40, 80), 3.0)

CT_CONTRAST = {
    "ContrastBolusAgent": "Iohexol 350 mg I/ml",
    "ContrastBolusRoute": "IV",
    "ContrastBolusVolume": 80.0,
    "ContrastBolusIngredient": "IODINE",
    "ContrastBolusIngredientConcentration": 350.0,
}


def describe_ct(exam: Exam, scan: CtScan, kind: str, kernel: str) -> dict[str, object]:
    attributes: dict[str, object] = {
        "ImageType": ["ORIGINAL", "PRIMARY", kind],
        "KVP": scan.kvp,
        "XRayTubeCurrent": scan.tube_ma,
        "ExposureTime": 500,
        "Exposure": scan.tube_ma // 2,
        "DataCollectionDiameter": 500.0,
        "ReconstructionDiameter": scan.fov_mm,
        "DistanceSourceToDetector": 1040.0,
        "DistanceSourceToPatient": 570.0,
        "GantryDetectorTilt": 0.0,
        "TableHeight": 145.0,
        "RotationDirection": "CW",
        "ConvolutionKernel": kernel,
        "ScanOptions": "HELICAL MODE",
        "PatientPosition": "HFS",
        "AcquisitionNumber": 1,
        "FrameOfReferenceUID": exam.frame_of_reference_uid,
        "PositionReferenceIndicator": "",
        "RescaleIntercept": -1024,
        "RescaleSlope": 1,
    }
    return attributes | (CT_CONTRAST if scan.contrast else {})


def store_hounsfield(hu: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.uint16)


def make_ct_scout(exam: Exam, scan: CtScan, density: np.ndarray, lateral: bool) -> Dataset:
    series = Series(exam, 1, "Topogram", scan.body_part, 1.0)
    ds = make_instance(series, CTImageStorage, 1, series.started)
    apply_attributes(ds, describe_ct(exam, scan, "LOCALIZER", "STANDARD"))
    spacing = scan.fov_mm / CT_SHAPE[1]
    corner = -scan.fov_mm / 2
    if lateral:
        plane = describe_plane((0.0, corner, scan.scout_top_mm), SAGITTAL, spacing, 1.0)
    else:
        plane = describe_plane((corner, 0.0, scan.scout_top_mm), CORONAL, spacing, 1.0)
    apply_attributes(ds, plane)
    hu = -1000.0 + 2200.0 * (1.0 - np.exp(-0.9 * density))
    apply_attributes(ds, measure_window(hu))
    attach_pixels(ds, store_hounsfield(hu), 12)
    return ds


def make_ct_series(
    exam: Exam, scan: CtScan, number: int, recon: CtRecon, hu_maps: list[np.ndarray]
) -> list[Dataset]:
    """One reconstruction of the axial acquisition, with its own kernel noise and window."""
    series = Series(exam, number, recon.description, scan.body_part, 3.0 + number)
    rng = make_rng(exam.plan.key, "ct", number)
    spacing = scan.fov_mm / CT_SHAPE[1]
    corner = -scan.fov_mm / 2 + spacing / 2
    datasets = []
    for index, hu in enumerate(hu_maps):
        z = scan.first_z_mm + index * scan.step_z_mm
        acquired = exam.started + timedelta(minutes=3, seconds=index * 0.5)
        ds = make_instance(series, CTImageStorage, index + 1, acquired)
        apply_attributes(ds, describe_ct(exam, scan, "AXIAL", recon.kernel))
        plane = describe_plane((corner, corner, z), AXIAL, spacing, abs(scan.step_z_mm))
        apply_attributes(ds, plane)
        apply_attributes(ds, {"SliceLocation": z, **describe_window(*recon.window)})
        noisy = hu + recon.noise_hu * cut_noise(rng, hu.shape)
        attach_pixels(ds, store_hounsfield(noisy), 12)
        datasets.append(ds)
    return datasets


def build_ct_chest(exam: Exam, *, contrast: bool, recons: tuple[CtRecon, ...]) -> list[Dataset]:
    """Chest CT: a PA topogram and 30 axial 7.5 mm slices per reconstruction kernel."""
    scan = CtScan("CHEST", 350.0, -15.0, -7.5, 37.5, 120, 180 if contrast else 60, contrast)
    rng = make_rng(exam.plan.key, "vessels")
    hu_maps = [draw_chest_axial(float(t), contrast, rng) for t in np.linspace(0.0, 1.0, 30)]
    scout = make_ct_scout(exam, scan, draw_chest_pa(CT_SHAPE), lateral=False)
    series = [make_ct_series(exam, scan, n, r, hu_maps) for n, r in enumerate(recons, start=2)]
    return [scout, *(ds for datasets in series for ds in datasets)]


def build_ct_head(exam: Exam, *, lesion: bool) -> list[Dataset]:
    """Head CT without contrast: a lateral topogram and 24 axial 5 mm slices, base to vertex."""
    scan = CtScan("HEAD", 230.0, -60.0, 5.0, 75.0, 120, 300, contrast=False)
    levels = np.linspace(0.12, 0.95, 24)
    hu_maps = [HEAD_HU[draw_head_axial(float(level), lesion)] for level in levels]
    scout = make_ct_scout(exam, scan, project_head_lateral(), lateral=True)
    return [scout, *make_ct_series(exam, scan, 2, HEAD_BRAIN, hu_maps)]


# --- MR ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MrSequence:
    description: str
    sagittal: bool
    scanning_sequence: tuple[str, ...]
    sequence_variant: tuple[str, ...]
    scan_options: tuple[str, ...]
    sequence_name: str
    repetition_ms: float
    echo_ms: float
    inversion_ms: float | None
    echo_train: int
    flip_deg: float
    signal: tuple[int, ...]  # per tissue label: air, fat, bone, CSF, grey, white, lesion, muscle
    window: tuple[int, int]


T1_SAGITTAL = MrSequence(
    "T1 SE sag", True, ("SE",), ("SP",), ("FC",), "se2d1", 500.0, 12.0, None, 1, 90.0,
    (0, 1100, 80, 250, 600, 850, 550, 450), (650, 1300),
)  # fmt: skip
T2_AXIAL = MrSequence(
    "T2 TSE ax", False, ("SE",), ("SK", "SP"), ("PFP",), "tse2d1_15", 4200.0, 98.0, None, 15,
    150.0, (0, 700, 60, 1800, 900, 650, 1400, 350), (950, 1900),
)  # fmt: skip
FLAIR_AXIAL = MrSequence(
    "FLAIR ax", False, ("SE", "IR"), ("SK", "SP", "MP"), ("PFP",), "tir2d1_16", 9000.0, 85.0,
    2500.0, 16, 150.0, (0, 650, 60, 150, 800, 600, 1600, 350), (850, 1700),
)  # fmt: skip

MR_FOV_MM = 230.0
MR_SLICES = 20
MR_GAP_MM = 6.0


def describe_mr(exam: Exam, sequence: MrSequence) -> dict[str, object]:
    attributes: dict[str, object] = {
        "ImageType": ["ORIGINAL", "PRIMARY", "OTHER"],
        "ScanningSequence": list(sequence.scanning_sequence),
        "SequenceVariant": list(sequence.sequence_variant),
        "ScanOptions": list(sequence.scan_options),
        "MRAcquisitionType": "2D",
        "SequenceName": sequence.sequence_name,
        "AngioFlag": "N",
        "RepetitionTime": sequence.repetition_ms,
        "EchoTime": sequence.echo_ms,
        "EchoTrainLength": sequence.echo_train,
        "FlipAngle": sequence.flip_deg,
        "NumberOfAverages": 1.0,
        "ImagingFrequency": 63.87,
        "ImagedNucleus": "1H",
        "EchoNumbers": 1,
        "MagneticFieldStrength": 1.5,
        "SpacingBetweenSlices": MR_GAP_MM,
        "PixelBandwidth": 200.0,
        "ReceiveCoilName": "HEAD 16",
        "TransmitCoilName": "BODY",
        "AcquisitionMatrix": [0, 256, 256, 0],
        "InPlanePhaseEncodingDirection": "ROW",
        "PatientPosition": "HFS",
        "AcquisitionNumber": 1,
        "FrameOfReferenceUID": exam.frame_of_reference_uid,
        "PositionReferenceIndicator": "",
    }
    if sequence.inversion_ms is not None:
        attributes["InversionTime"] = sequence.inversion_ms
    return attributes | describe_window(*sequence.window)


def place_mr_slice(sagittal: bool, index: int) -> tuple[tuple[float, float, float], float]:
    """Image position and slice location of slice `index`, centred on the head."""
    location = (index - (MR_SLICES - 1) / 2) * MR_GAP_MM
    half = MR_FOV_MM / 2
    if sagittal:
        return (location, -half, half + 20.0), location
    return (-half, -half, location + 20.0), location + 20.0


def render_mr(labels: np.ndarray, sequence: MrSequence, rng: np.random.Generator) -> np.ndarray:
    """12-bit magnitude image: tissue signal, coil shading and Rician noise."""
    y, x = make_grid(*labels.shape)
    signal = np.asarray(sequence.signal, dtype=np.float32)[labels] * (1.1 - 0.2 * (x**2 + y**2))
    real, imaginary = 15.0 * cut_noise(rng, labels.shape), 15.0 * cut_noise(rng, labels.shape)
    magnitude = np.sqrt((signal + real) ** 2 + imaginary**2)
    return np.clip(np.rint(magnitude), 0, 4095).astype(np.uint16)


def make_mr_series(exam: Exam, number: int, sequence: MrSequence, lesion: bool) -> list[Dataset]:
    series = Series(exam, number, sequence.description, "BRAIN", 2.0 + 5.0 * number)
    rng = make_rng(exam.plan.key, "mr", number)
    datasets = []
    for index in range(MR_SLICES):
        origin, location = place_mr_slice(sequence.sagittal, index)
        if sequence.sagittal:
            labels = draw_head_sagittal(location / 75.0)
        else:
            labels = draw_head_axial(0.18 + 0.75 * index / (MR_SLICES - 1), lesion)
        acquired = series.started + timedelta(seconds=index * 6)
        ds = make_instance(series, MRImageStorage, index + 1, acquired)
        apply_attributes(ds, describe_mr(exam, sequence))
        orientation = SAGITTAL if sequence.sagittal else AXIAL
        apply_attributes(ds, describe_plane(origin, orientation, MR_FOV_MM / MR_SHAPE[1], 5.0))
        ds.SliceLocation = location
        attach_pixels(ds, render_mr(labels, sequence, rng), 12)
        datasets.append(ds)
    return datasets


def build_mr_brain(exam: Exam, *, sequences: tuple[MrSequence, ...], lesion: bool) -> list[Dataset]:
    """Brain MR at 1.5 T: one series of 20 slices per sequence; `lesion` adds a plaque."""
    numbered = enumerate(sequences, start=1)
    series = [make_mr_series(exam, n, s, lesion) for n, s in numbered]
    return [ds for datasets in series for ds in datasets]


# --- Projection radiography ----------------------------------------------------------------


@dataclass(frozen=True)
class XrView:
    description: str
    view_position: str
    view_code: tuple[str, str]  # SNOMED CT, from DICOM CID 4010 "DX View"
    orientation: tuple[str, str]
    draw: Callable[[tuple[int, int]], np.ndarray]


PA_VIEW = ("272479007", "postero-anterior")
CHEST_VIEWS = (
    XrView("Chest PA", "PA", PA_VIEW, ("L", "F"), draw_chest_pa),
    XrView("Chest lateral", "LL", ("399173006", "left lateral"), ("A", "F"), draw_chest_lateral),
)


def describe_xray(kvp: int, mas: float, spacing_mm: float) -> dict[str, object]:
    return {
        "ImageType": ["ORIGINAL", "PRIMARY"],
        "KVP": kvp,
        "Exposure": round(mas),
        "ExposureInuAs": round(mas * 1000),
        "DistanceSourceToDetector": 1800.0 if kvp > 100 else 1150.0,
        "ImagerPixelSpacing": [spacing_mm, spacing_mm],
    }


def build_cr_chest(exam: Exam) -> list[Dataset]:
    """Chest radiographs on storage-phosphor plates: PA and left lateral, a series each."""
    datasets = []
    for number, view in enumerate(CHEST_VIEWS, start=1):
        series = Series(exam, number, view.description, "CHEST", 2.0 * number)
        ds = make_instance(series, ComputedRadiographyImageStorage, 1, series.started)
        pixels = render_radiograph(view.draw(CR_SHAPE), make_rng(exam.plan.key, view.view_position))
        apply_attributes(ds, describe_xray(125 if number == 1 else 110, 2.5 * number, 0.8))
        apply_attributes(
            ds,
            {
                "ViewPosition": view.view_position,
                "PatientOrientation": list(view.orientation),
                "PlateType": "CR-IP 35x43",
                "AcquisitionDeviceProcessingDescription": view.description.upper(),
                **measure_window(pixels),
            },
        )
        attach_pixels(ds, pixels, 12)
        datasets.append(ds)
    return datasets


def describe_dx(anatomy: tuple[str, str], view: XrView) -> dict[str, object]:
    """The DX-specific modules of a for-presentation image on a flat-panel detector."""
    return {
        "PresentationIntentType": "FOR PRESENTATION",
        "ImageLaterality": "R",
        "AnatomicRegionSequence": Sequence([make_code(*anatomy)]),
        "ViewCodeSequence": Sequence([make_code(*view.view_code)]),
        "PositionerType": "COLUMN",
        "PixelIntensityRelationship": "LOG",
        "PixelIntensityRelationshipSign": 1,
        "RescaleIntercept": 0,
        "RescaleSlope": 1,
        "RescaleType": "US",
        "PresentationLUTShape": "IDENTITY",
        "LossyImageCompression": "00",
        "DetectorType": "SCINTILLATOR",
        "DetectorID": "FPD-4343-07",
        "AcquisitionContextSequence": Sequence(),
    }


def build_dx(
    exam: Exam, *, body_part: str, anatomy: tuple[str, str], views: tuple[XrView, ...]
) -> list[Dataset]:
    """Views of a right extremity on a flat-panel detector, in one series."""
    series = Series(exam, 1, f"{body_part.title()} R", body_part, 1.0)
    datasets = []
    for number, view in enumerate(views, start=1):
        acquired = series.started + timedelta(minutes=2 * number)
        ds = make_instance(series, DigitalXRayImageStorageForPresentation, number, acquired)
        pixels = render_radiograph(view.draw(DX_SHAPE), make_rng(exam.plan.key, number))
        apply_attributes(ds, describe_xray(55, 2.0, 0.4))
        apply_attributes(ds, describe_dx(anatomy, view))
        apply_attributes(
            ds,
            {
                "AcquisitionDeviceProcessingDescription": f"{body_part} {view.description.upper()}",
                "ViewPosition": view.view_position,
                "PatientOrientation": list(view.orientation),
                **measure_window(pixels),
            },
        )
        attach_pixels(ds, pixels, 12)
        datasets.append(ds)
    return datasets


HAND_VIEWS = (
    XrView("PA", "PA", PA_VIEW, ("L", "H"), draw_hand),
    XrView(
        "oblique",
        "PA",
        ("399059000", "postero-anterior oblique"),
        ("L", "H"),
        functools.partial(draw_hand, squeeze=0.7),
    ),
)
KNEE_VIEWS = (
    XrView("AP", "AP", ("399348003", "antero-posterior"), ("L", "F"), draw_knee_ap),
    XrView("lateral", "LL", ("399260004", "medial-lateral"), ("P", "F"), draw_knee_lateral),
)


# --- Ultrasound ----------------------------------------------------------------------------


def describe_us_region() -> Dataset:
    """Calibration of the B-mode sector, so that viewers can measure in centimetres."""
    region = Dataset()
    apply_attributes(
        region,
        {
            "RegionSpatialFormat": 1,
            "RegionDataType": 1,
            "RegionFlags": 0,
            "RegionLocationMinX0": 30,
            "RegionLocationMinY0": 30,
            "RegionLocationMaxX1": US_SHAPE[1] - 31,
            "RegionLocationMaxY1": US_SHAPE[0] - 1,
            "PhysicalUnitsXDirection": 3,
            "PhysicalUnitsYDirection": 3,
            "PhysicalDeltaX": 0.04,
            "PhysicalDeltaY": 0.04,
            "ReferencePixelX0": US_SHAPE[1] // 2,
            "ReferencePixelY0": 30,
            "ReferencePixelPhysicalValueX": 0.0,
            "ReferencePixelPhysicalValueY": 0.0,
            "TransducerFrequency": 3500,
        },
    )
    return region


def describe_us() -> dict[str, object]:
    return {
        "ImageType": ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"],
        "PatientOrientation": "",
        "TransducerData": "C5-2",
        "TransducerType": "CURVED LINEAR",
        "DepthOfScanField": 170,
        "MechanicalIndex": 1.1,
        "SoftTissueThermalIndex": 0.4,
        "SequenceOfUltrasoundRegions": Sequence([describe_us_region()]),
    }


def describe_cine() -> dict[str, object]:
    return {
        "FrameTime": US_FRAME_MS,
        "FrameIncrementPointer": Tag("FrameTime"),
        "CineRate": round(1000 / US_FRAME_MS),
        "RecommendedDisplayFrameRate": round(1000 / US_FRAME_MS),
        "ActualFrameDuration": round(US_FRAME_MS),
        "PreferredPlaybackSequencing": 0,
        "StartTrim": 1,
        "StopTrim": US_CINE_FRAMES,
    }


def build_us_abdomen(exam: Exam, *, stills: int) -> list[Dataset]:
    """Abdominal ultrasound: `stills` single frames, then a one-second cine loop."""
    series = Series(exam, 1, "Abdomen", "ABDOMEN", 0.0)
    speckle = make_speckle(make_rng(exam.plan.key, "speckle"))
    datasets = []
    for number in range(1, stills + 2):
        acquired = series.started + timedelta(minutes=3 * number)
        cine = number > stills
        sop_class = UltrasoundMultiFrameImageStorage if cine else UltrasoundImageStorage
        ds = make_instance(series, sop_class, number, acquired)
        apply_attributes(ds, describe_us() | (describe_cine() if cine else {}))
        if cine:
            phases = np.linspace(0.0, 1.0, US_CINE_FRAMES)
            pixels = np.stack([render_ultrasound(float(p), speckle) for p in phases])
        else:
            pixels = render_ultrasound((number - 0.5) / stills, speckle)
        attach_pixels(ds, pixels, 8)
        datasets.append(ds)
    return datasets


# --- The demo department -------------------------------------------------------------------

NORDSTADT = "Klinikum Nordstadt"
LUMIERE = "Hôpital Saint-Lumière"
HOUSE = REFERRING_HOUSE = "House^Gregory^^Dr"
QUINN = "Quinn^Michaela^^Dr"
KILDARE = "Kildare^James^^Dr"
BAILEY = "Bailey^Miranda^^Dr"

EQUIPMENT: dict[str, dict[str, object]] = {
    "CT": {
        "Manufacturer": "Helix Medical",
        "ManufacturerModelName": "Helix CT 128",
        "StationName": "CT01",
        "DeviceSerialNumber": "HX128-0417",
        "SoftwareVersions": "VC30A",
        "OperatorsName": "Schmidt^Anna",
    },
    "MR": {
        "Manufacturer": "Helix Medical",
        "ManufacturerModelName": "Helix MR Aurora 1.5T",
        "StationName": "MR01",
        "DeviceSerialNumber": "HXMR-2291",
        "SoftwareVersions": "MR 11.2",
        "OperatorsName": "Larsen^Ingrid",
    },
    "CR": {
        "Manufacturer": "Lumen Imaging",
        "ManufacturerModelName": "PhosphorScan 500",
        "StationName": "CR01",
        "DeviceSerialNumber": "PS5-1187",
        "SoftwareVersions": "4.1.2",
        "OperatorsName": "Moreau^Luc",
    },
    "DX": {
        "Manufacturer": "Lumen Imaging",
        "ManufacturerModelName": "FlatPanel DR 43",
        "StationName": "DX02",
        "DeviceSerialNumber": "FP43-0762",
        "SoftwareVersions": "2.8.0",
        "OperatorsName": "Moreau^Luc",
    },
    "US": {
        "Manufacturer": "Sonora Diagnostics",
        "ManufacturerModelName": "Sonora C9",
        "StationName": "US03",
        "DeviceSerialNumber": "SC9-5530",
        "SoftwareVersions": "7.0.4",
        "OperatorsName": "Rossi^Giulia",
    },
}

MULLER = Patient("DEMO0001", "Müller^Jürgen", date(1958, 3, 14), "M", 1.78, 84.0)
ODEGARD = Patient("DEMO0002", "Ødegård^Åse", date(1971, 9, 2), "F", 1.69, 63.0)
DUPONT = Patient("DEMO0003", "Dupont^Hélène^Marie", date(1986, 5, 27), "F", 1.64, 58.0)
NGUYEN = Patient("DEMO0004", "Nguyễn^Văn An", date(1993, 11, 8), "M", 1.7, 66.0)
YAMADA = Patient(
    "DEMO0005", "Yamada^Tarou=山田^太郎=やまだ^たろう", date(1949, 1, 30), "M", 1.66, 61.0
)
TAYLOR = Patient("DEMO0006", "Taylor^Alex", date(2002, 6, 19), "O", 1.75, 70.0)
GARCIA = Patient("DEMO0007", "García Márquez^José Luis", date(1965, 12, 3), "M", 1.73, 91.0)
KOWALCZYK = Patient("DEMO0008", "Kowalczyk^Zofia", date(1979, 4, 11), "F", 1.62, 55.0)
PAPADOPOULOU = Patient("DEMO0009", "Papadopoulou^Eleni", date(1988, 8, 24), "F", 1.67, 72.0)

STUDY_PLANS = (
    StudyPlan(
        "ct-chest-contrast", MULLER, "CT", "ACC202610417", "CT THORAX WITH IV CONTRAST",
        52, time(9, 14, 23), "ROUTINE", timedelta(hours=26), HOUSE, NORDSTADT,
        functools.partial(
            build_ct_chest, contrast=True, recons=(CHEST_SOFT_TISSUE, CHEST_LUNG)
        ),
    ),
    StudyPlan(
        "mr-brain-1", ODEGARD, "MR", "ACC202610452", "MR BRAIN WITHOUT CONTRAST",
        47, time(14, 31, 5), "ROUTINE", timedelta(hours=5, minutes=20), QUINN, NORDSTADT,
        functools.partial(
            build_mr_brain, sequences=(T1_SAGITTAL, T2_AXIAL, FLAIR_AXIAL), lesion=True
        ),
    ),
    StudyPlan(
        "cr-chest-1", DUPONT, "CR", "ACC202610488", "XR CHEST PA AND LATERAL",
        43, time(8, 5, 47), "ROUTINE", timedelta(minutes=50), KILDARE, LUMIERE,
        build_cr_chest,
    ),
    StudyPlan(
        "ct-head-stat", YAMADA, "CT", "ACC202610503", "CT HEAD WITHOUT CONTRAST",
        38, time(2, 47, 12), "STAT", timedelta(minutes=12), BAILEY, NORDSTADT,
        functools.partial(build_ct_head, lesion=True),
    ),
    StudyPlan(
        "dx-hand", NGUYEN, "DX", "ACC202610539", "XR HAND RIGHT 2 VIEWS",
        33, time(16, 40, 31), "HIGH", timedelta(minutes=35), BAILEY, LUMIERE,
        functools.partial(
            build_dx, body_part="HAND", anatomy=("85562004", "Hand"), views=HAND_VIEWS
        ),
    ),
    StudyPlan(
        "us-abdomen-1", PAPADOPOULOU, "US", "ACC202610566", "US ABDOMEN COMPLETE",
        27, time(10, 20, 2), "ROUTINE", timedelta(hours=3), QUINN, LUMIERE,
        functools.partial(build_us_abdomen, stills=3),
    ),
    StudyPlan(
        "mr-brain-2", KOWALCZYK, "MR", "ACC202610591", "MR BRAIN WITHOUT CONTRAST",
        22, time(18, 55, 40), "ROUTINE", timedelta(hours=30), HOUSE, NORDSTADT,
        functools.partial(build_mr_brain, sequences=(T2_AXIAL, FLAIR_AXIAL), lesion=False),
    ),
    StudyPlan(
        "dx-knee", TAYLOR, "DX", "ACC202610620", "XR KNEE RIGHT 2 VIEWS",
        17, time(11, 35, 18), "ROUTINE", None, KILDARE, LUMIERE,
        functools.partial(
            build_dx, body_part="KNEE", anatomy=("72696002", "Knee"), views=KNEE_VIEWS
        ),
    ),
    StudyPlan(
        "cr-chest-stat", GARCIA, "CR", "ACC202610648", "XR CHEST PA AND LATERAL",
        12, time(23, 57, 9), "STAT", timedelta(minutes=8), BAILEY, NORDSTADT,
        build_cr_chest,
    ),
    StudyPlan(
        "us-abdomen-2", DUPONT, "US", "ACC202610671", "US ABDOMEN LIMITED",
        8, time(13, 5, 55), "HIGH", timedelta(hours=2, minutes=15), KILDARE, LUMIERE,
        functools.partial(build_us_abdomen, stills=2),
    ),
    StudyPlan(
        "ct-chest-follow-up", MULLER, "CT", "ACC202610699", "CT THORAX LOW DOSE FOLLOW-UP",
        5, time(8, 40, 36), "ROUTINE", None, HOUSE, NORDSTADT,
        functools.partial(build_ct_chest, contrast=False, recons=(CHEST_LUNG,)),
    ),
    StudyPlan(
        "ct-head-2", GARCIA, "CT", "ACC202610712", "CT HEAD WITHOUT CONTRAST",
        2, time(15, 10, 44), "ROUTINE", timedelta(hours=4), QUINN, NORDSTADT,
        functools.partial(build_ct_head, lesion=False),
    ),
)  # fmt: skip
