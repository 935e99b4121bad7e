"""Eight weeks of the demo department's past work, so that every role's first page shows
something true: earlier studies read and signed with turnarounds that vary by priority and
modality (some breaching their targets), addenda, and the work still open today.

A history study is one small image (64 x 64 pixels, quick to send) and the steps of its
reading: opened, draft, preliminary, final, addendum, each at a time of its own. Steps that
would fall after `now` have not happened yet, so recent studies are naturally still waiting
at every status (the backlog). Everything but the times is deterministic: UIDs and
outcomes come from the study's number, so a second run finds the same studies. Pure domain
code: no I/O.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    UltrasoundImageStorage,
)

from demo.studies import (
    BAILEY,
    CHARACTER_SET,
    EQUIPMENT,
    HOUSE,
    KILDARE,
    LUMIERE,
    NORDSTADT,
    QUINN,
    apply_attributes,
    format_date,
    format_time,
    make_file_meta,
    make_uid,
)

HISTORY_DAYS = 56
HISTORY_KEY = "history"
IMAGE_SHAPE = (64, 64)
BEHIND_SINCE = timedelta(days=4)
RADIOLOGISTS = ("radiologist@demo.example", "radiologist2@demo.example")

SOP_CLASSES = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "CR": ComputedRadiographyImageStorage,
    "DX": DigitalXRayImageStorageForPresentation,
    "US": UltrasoundImageStorage,
}

# (modality, share of the day's work, procedures: (description, body part, findings, impression))
PROCEDURES: tuple[tuple[str, float, tuple[tuple[str, str, str, str], ...]], ...] = (
    (
        "CR",
        0.30,
        (
            (
                "XR CHEST PA AND LATERAL",
                "CHEST",
                "Lungs are clear. Heart size is normal. No pleural effusion or pneumothorax.",
                "No acute cardiopulmonary abnormality.",
            ),
            (
                "XR CHEST AP PORTABLE",
                "CHEST",
                "Right lower lobe airspace opacity. Lines and tubes in satisfactory position.",
                "Right lower lobe pneumonia; follow-up radiograph after treatment.",
            ),
        ),
    ),
    (
        "DX",
        0.15,
        (
            (
                "XR ANKLE RIGHT 3 VIEWS",
                "ANKLE",
                "Undisplaced fracture of the lateral malleolus. Ankle mortise congruent.",
                "Weber A fracture of the right lateral malleolus.",
            ),
            (
                "XR HAND LEFT 2 VIEWS",
                "HAND",
                "No fracture or dislocation. Joint spaces preserved.",
                "Normal left hand.",
            ),
        ),
    ),
    (
        "CT",
        0.25,
        (
            (
                "CT HEAD WITHOUT CONTRAST",
                "HEAD",
                "No intracranial haemorrhage, mass effect or acute territorial infarct.",
                "No acute intracranial abnormality.",
            ),
            (
                "CT THORAX WITH IV CONTRAST",
                "CHEST",
                "No pulmonary embolism. Small left pleural effusion. No lymphadenopathy.",
                "No pulmonary embolism; small left pleural effusion.",
            ),
            (
                "CT ABDOMEN PELVIS WITH CONTRAST",
                "ABDOMEN",
                "Inflamed appendix measuring 11 mm with periappendiceal fat stranding.",
                "Acute uncomplicated appendicitis.",
            ),
        ),
    ),
    (
        "MR",
        0.15,
        (
            (
                "MR BRAIN WITHOUT CONTRAST",
                "HEAD",
                "A few punctate T2 hyperintensities in the periventricular white matter.",
                "Mild chronic small vessel disease; no acute infarct.",
            ),
            (
                "MR LUMBAR SPINE",
                "LSPINE",
                "L4-L5 broad-based disc protrusion with mild left foraminal narrowing.",
                "L4-L5 disc protrusion, mild left foraminal stenosis.",
            ),
        ),
    ),
    (
        "US",
        0.15,
        (
            (
                "US ABDOMEN COMPLETE",
                "ABDOMEN",
                "Gallbladder contains several mobile calculi without wall thickening.",
                "Cholelithiasis without cholecystitis.",
            ),
            (
                "US RENAL",
                "KIDNEY",
                "Both kidneys normal in size with no hydronephrosis or calculi.",
                "Normal renal ultrasound.",
            ),
        ),
    ),
)

# Median minutes from arrival to the final signature and its spread (log-normal sigma).
TURNAROUND = {"STAT": (42.0, 0.6), "HIGH": (300.0, 0.8), "ROUTINE": (1080.0, 0.85)}
MODALITY_PACE = {"CR": 0.6, "DX": 0.6, "US": 0.9, "CT": 1.0, "MR": 1.5}
PRIORITY_SHARE = (("STAT", 0.08), ("HIGH", 0.2), ("ROUTINE", 0.72))
REFERRERS = ((HOUSE, 0.3), (QUINN, 0.25), (KILDARE, 0.25), (BAILEY, 0.2))

GIVEN = ("Anna", "Ben", "Chloé", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas")
FAMILY = ("Becker", "Costa", "Eriksen", "Fischer", "Haddad", "Jansen", "Kovač", "Lindqvist")


@dataclass(frozen=True)
class HistoryPatient:
    patient_id: str
    name: str
    birth_date: date
    sex: str


@dataclass(frozen=True)
class ReadingStep:
    """One step of reading a study: `opened`, `draft`, `preliminary`, `final`, `addendum`."""

    kind: str
    at: datetime  # UTC
    radiologist: str  # e-mail


@dataclass(frozen=True)
class HistoryStudy:
    number: int
    study_instance_uid: str
    orthanc_id: str
    accession_number: str
    modality: str
    description: str
    priority: str
    received_at: datetime  # UTC
    findings: str
    impression: str
    steps: tuple[ReadingStep, ...]  # those already taken at `now`
    datasets: tuple[Dataset, ...] = field(repr=False)


def build_history(now: datetime, zone: tzinfo, count: int = 320) -> list[HistoryStudy]:
    """`count` studies received over the `HISTORY_DAYS` before `now` (UTC), oldest first.

    `zone` is the department's: study dates and times in the headers are its wall clock."""
    start = now - timedelta(days=HISTORY_DAYS)
    return [build_history_study(number, start, now, zone) for number in range(count)]


def build_history_study(number: int, start: datetime, now: datetime, zone: tzinfo) -> HistoryStudy:
    rng = random.Random(f"{HISTORY_KEY}/{number}")
    # Its own generator: how many draws the arrival takes depends on `now`, and the study's
    # identity (patient, modality...) drawn next must not.
    received_at = place_arrival(random.Random(f"{HISTORY_KEY}/{number}/arrival"), start, now)
    modality = pick(rng, [(m, share) for m, share, _ in PROCEDURES])[0]
    description, body_part, findings, impression = rng.choice(
        next(procedures for m, _, procedures in PROCEDURES if m == modality)
    )
    priority = pick(rng, PRIORITY_SHARE)[0]
    if modality == "MR" and priority == "STAT":
        priority = "HIGH"  # MR is rarely read as STAT here
    patient = make_patient(rng.randrange(90))
    referring = pick(rng, REFERRERS)[0]
    uid = make_uid(HISTORY_KEY, number, "study")
    accession = f"H{26_000_000 + number}"
    steps = plan_reading(rng, received_at, priority, modality)
    if now - received_at < BEHIND_SINCE:
        steps = hold_recent(rng, steps, received_at, now)
    study_started = (received_at - timedelta(minutes=rng.uniform(4, 20))).astimezone(zone)
    ordered = study_started - timedelta(minutes=rng.uniform(10, 240))
    dataset = make_image(
        number,
        uid,
        patient,
        {
            "StudyDate": format_date(study_started),
            "StudyTime": format_time(study_started),
            "StudyID": accession[-5:],
            "AccessionNumber": accession,
            "StudyDescription": description,
            "ReferringPhysicianName": referring,
            "InstitutionName": LUMIERE if modality in ("DX", "US") else NORDSTADT,
            "InstitutionalDepartmentName": "Radiology",
            "RequestedProcedurePriority": priority,
            "IssueDateOfImagingServiceRequest": format_date(ordered),
            "IssueTimeOfImagingServiceRequest": format_time(ordered),
            "Modality": modality,
            "BodyPartExamined": body_part,
            "SeriesDescription": description.split(" ", 1)[1],
        },
        SOP_CLASSES[modality],
        study_started,
    )
    return HistoryStudy(
        number=number,
        study_instance_uid=uid,
        orthanc_id=orthanc_study_id(patient.patient_id, uid),
        accession_number=accession,
        modality=modality,
        description=description,
        priority=priority,
        received_at=received_at,
        findings=findings,
        impression=impression,
        steps=tuple(
            ReadingStep(step.kind, step.at.replace(microsecond=0), step.radiologist)
            for step in steps
            if step.at <= now
        ),
        datasets=(dataset,),
    )


def place_arrival(rng: random.Random, start: datetime, now: datetime) -> datetime:
    """Spread over the period, busier on weekdays and in working hours."""
    while True:
        moment = start + timedelta(seconds=rng.uniform(0, (now - start).total_seconds()))
        weight = (0.35 if moment.weekday() >= 5 else 1.0) * (1.0 if 7 <= moment.hour < 19 else 0.3)
        if rng.random() < weight and moment < now - timedelta(minutes=10):
            return moment.replace(microsecond=0)


def plan_reading(
    rng: random.Random, received_at: datetime, priority: str, modality: str
) -> list[ReadingStep]:
    """Open, draft (and for some urgent work a preliminary), sign final; one in twelve
    finals gets an addendum a day or two later."""
    median, sigma = TURNAROUND[priority]
    minutes = rng.lognormvariate(0, sigma) * median * MODALITY_PACE[modality]
    if priority == "ROUTINE" and received_at.weekday() >= 4 and rng.random() < 0.5:
        minutes += 60 * 48  # read after the weekend
    final = received_at + timedelta(minutes=max(minutes, 6.0))
    opened = received_at + (final - received_at) * rng.uniform(0.3, 0.8)
    radiologist = rng.choice(RADIOLOGISTS)
    steps = [
        ReadingStep("opened", opened, radiologist),
        ReadingStep("draft", opened + (final - opened) * 0.1, radiologist),
    ]
    if priority != "ROUTINE" and rng.random() < 0.3:
        preliminary = opened + (final - opened) * 0.5
        steps.append(ReadingStep("preliminary", preliminary, radiologist))
    steps.append(ReadingStep("final", final, radiologist))
    if rng.random() < 1 / 12:
        steps.append(
            ReadingStep("addendum", final + timedelta(hours=rng.uniform(6, 48)), radiologist)
        )
    return steps


def hold_recent(
    rng: random.Random, steps: list[ReadingStep], received_at: datetime, now: datetime
) -> list[ReadingStep]:
    """This week the department runs behind: much recent work is still waiting for a
    reader, being drafted, or signed preliminary only."""
    state = pick(rng, (("waiting", 0.3), ("drafting", 0.2), ("preliminary", 0.2), ("read", 0.3)))
    if state[0] == "read":
        return steps
    reader = steps[0].radiologist
    if state[0] == "waiting":
        return []
    opened = received_at + (now - received_at) * rng.uniform(0.2, 0.6)
    held = [ReadingStep("opened", opened, reader), ReadingStep("draft", opened, reader)]
    if state[0] == "preliminary":
        held.append(ReadingStep("preliminary", opened + (now - opened) / 2, reader))
    return held


def pick(rng: random.Random, weighted):
    """One (value, weight) pair drawn by weight."""
    roll, total = rng.random() * sum(w for _, w in weighted), 0.0
    for item in weighted:
        total += item[1]
        if roll < total:
            return item
    return weighted[-1]


def make_patient(index: int) -> HistoryPatient:
    rng = random.Random(f"{HISTORY_KEY}/patient/{index}")
    return HistoryPatient(
        patient_id=f"DEMOH{index:03d}",
        name=f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}",
        birth_date=date(1935, 1, 1) + timedelta(days=rng.randrange(365 * 70)),
        sex=rng.choice("MF"),
    )


def make_image(
    number: int,
    study_uid: str,
    patient: HistoryPatient,
    attributes: dict[str, object],
    sop_class: str,
    acquired: datetime,
) -> Dataset:
    """One small monochrome image carrying the study's headers."""
    sop_uid = make_uid(HISTORY_KEY, number, "instance")
    ds = Dataset()
    ds.file_meta = make_file_meta(sop_class, sop_uid)
    ds.preamble = bytes(128)
    ds.SpecificCharacterSet = CHARACTER_SET
    apply_attributes(
        ds,
        {
            "PatientName": patient.name,
            "PatientID": patient.patient_id,
            "PatientBirthDate": format_date(patient.birth_date),
            "PatientSex": patient.sex,
            "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": make_uid(HISTORY_KEY, number, "series"),
            "SeriesNumber": 1,
            "InstanceNumber": 1,
            "SOPClassUID": sop_class,
            "SOPInstanceUID": sop_uid,
            "ContentDate": format_date(acquired),
            "ContentTime": format_time(acquired),
            "BurnedInAnnotation": "NO",
            **attributes,
            **EQUIPMENT.get(str(attributes["Modality"]), {}),
        },
    )
    ds.set_pixel_data(draw_disc(number), "MONOCHROME2", 12, generate_instance_uid=False)
    return ds


def draw_disc(number: int) -> np.ndarray:
    rows, cols = IMAGE_SHAPE
    y, x = np.mgrid[0:rows, 0:cols]
    radius = 14 + number % 12
    disc = (y - rows / 2) ** 2 + (x - cols / 2) ** 2 < radius**2
    return (disc * 1800 + y * 20).astype(np.uint16)


def orthanc_study_id(patient_id: str, study_uid: str) -> str:
    """The identifier Orthanc gives this study: SHA-1 of "PatientID|StudyInstanceUID" in
    five groups of eight hex digits."""
    return hash_orthanc_id(patient_id, study_uid)


def orthanc_instance_id(ds: Dataset) -> str:
    """The identifier Orthanc gives this instance (its four UIDs' hash, as for studies)."""
    return hash_orthanc_id(
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    )


def hash_orthanc_id(*parts: str) -> str:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


# Two studies the pipeline holds back, each for a reason an admin will recognise.
def build_quarantine_examples(now: datetime, zone: tzinfo) -> list[Dataset]:
    """A CT whose modality clock runs a year ahead, and an ophthalmic photograph (OP) the
    department does not accept."""
    local = now.astimezone(zone)
    examples = []
    for number, (modality, when, description) in enumerate(
        (
            ("CT", local + timedelta(days=366), "CT HEAD WITHOUT CONTRAST"),
            ("OP", local - timedelta(hours=3), "FUNDUS PHOTOGRAPHY"),
        )
    ):
        uid = make_uid(HISTORY_KEY, "quarantine", number, "study")
        patient = make_patient(90 + number)
        accession = f"Q{26_000_000 + number}"
        ds = make_image(
            10_000 + number,
            uid,
            patient,
            {
                "StudyDate": format_date(when),
                "StudyTime": format_time(when),
                "AccessionNumber": accession,
                "StudyDescription": description,
                "ReferringPhysicianName": KILDARE,
                "InstitutionName": NORDSTADT,
                "Modality": modality,
                "BodyPartExamined": "HEAD" if modality == "CT" else "EYE",
            },
            CTImageStorage if modality == "CT" else SecondaryCaptureImageStorage,
            when,
        )
        examples.append(ds)
    return examples
