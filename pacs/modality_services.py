"""The platform's modality-services SCP (pynetdicom): Modality Worklist C-FIND answered
from the orders, and MPPS N-CREATE / N-SET moving them through their states.

Only registered modalities (`pacs modality add`) may use it: an unknown calling AE title is
rejected at association, and a known one calling from another address is refused each
request; PACS_DICOM_ACCEPT_ANY and PACS_DICOM_CHECK_HOST apply as on the archive's port.
"""

from __future__ import annotations

import datetime
import logging
import weakref
from collections.abc import Iterator
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)
from sqlalchemy import select

from core.orders import WorklistQuery
from core.worklist_items import (
    build_worklist_item,
    keep_requested,
    read_dicom_datetime,
    read_performed_status,
    read_step_references,
    read_worklist_query,
)
from storage.database import get_engine, open_session
from storage.dicom_sender import set_tcp_nodelay
from storage.models.modalities import RegisteredModality
from storage.orders import (
    PerformedStep,
    PerformedStepError,
    create_performed_step,
    find_worklist_versions,
    is_registered_modality,
    load_orders,
    update_performed_step,
)

log = logging.getLogger(__name__)

SUCCESS, PENDING = 0x0000, 0xFF00
NOT_AUTHORIZED = 0x0124  # Refused: Not Authorized
UNABLE_TO_PROCESS = 0xC000  # C-FIND: identifier does not match SOP class / cannot process
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT = 0x0112
DUPLICATE_INSTANCE = 0x0111
INVALID_ATTRIBUTE_VALUE = 0x0106
MAX_CACHED_ANSWERS = 50_000
# An AE title never registered: AE titles are at most 16 characters.
NOBODY = "-" * 17


class ModalityServicesAE(AE):
    """An AE whose allowed calling AE titles are the registered modalities, read at each
    association (pynetdicom rejects the others: "calling AE title not recognised")."""

    def __init__(self, ae_title: str, database_url: str, *, accept_any: bool = False) -> None:
        self.database_url = database_url
        self.accept_any = accept_any
        super().__init__(ae_title)

    @property
    def require_calling_aet(self) -> list[str]:
        if self.accept_any:  # PACS_DICOM_ACCEPT_ANY: every AE title
            return []
        with open_session(self.database_url) as session:
            titles = list(session.scalars(select(RegisteredModality.aet)))
        return titles or [NOBODY]  # an empty list would let everyone in

    @require_calling_aet.setter
    def require_calling_aet(self, value: list[str]) -> None:
        """The registered modalities decide; pynetdicom's own setting is not used."""


class ModalityServices:
    """`start()` binds the port and serves in pynetdicom's threads; `stop()` shuts it down."""

    def __init__(
        self,
        database_url: str,
        ae_title: str,
        host: str,
        port: int,
        *,
        accept_any: bool = False,
        check_host: bool = True,
    ) -> None:
        """`accept_any` and `check_host` are the archive's own rules for its DICOM port
        (PACS_DICOM_ACCEPT_ANY, PACS_DICOM_CHECK_HOST)."""
        self.database_url = database_url
        self.host = host
        self.port = port
        self.accept_any = accept_any
        self.check_host = check_host
        self.ae = ModalityServicesAE(ae_title, database_url, accept_any=accept_any)
        for context in (ModalityWorklistInformationFind, ModalityPerformedProcedureStep):
            self.ae.add_supported_context(context)
        self.ae.add_supported_context(Verification)
        self.server: Any = None
        # Encoded C-FIND answers by ((order id, version), (requested tags, implicit VR,
        # little endian)).
        self.answers: dict[tuple[tuple[int, datetime.datetime], tuple], bytes] = {}
        # Whether each open association's caller may ask (checked at its first request).
        self.allowed: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

    def start(self) -> None:
        get_engine(self.database_url)  # the tables, made once before the first request
        if not logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG):
            # pynetdicom formats every query and answer for its debug log even when nobody
            # reads it: a sixth of a worklist query's CPU.
            _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False
        handlers = [
            # A worklist answer is a PDU an item: with Nagle's algorithm each waits for the
            # modality's delayed ACK (40 ms on Linux).
            (evt.EVT_CONN_OPEN, lambda event: set_tcp_nodelay(event.assoc)),
            (evt.EVT_C_FIND, self.find),
            (evt.EVT_N_CREATE, self.create_step),
            (evt.EVT_N_SET, self.set_step),
        ]
        self.server = self.ae.start_server(
            (self.host, self.port), block=False, evt_handlers=handlers
        )
        self.port = self.server.server_address[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def find_answers(self, query: WorklistQuery, identifier: Dataset, syntax: UID) -> list[Dataset]:
        """The matching orders' answers to this identifier, each built and encoded once per
        version of its order, requested keys and transfer syntax (modalities ask for the same
        day's list every minute or so): the query reads the orders' ids and versions, and
        loads only those not answered yet. An answer is handed to pynetdicom as read back
        from its bytes, which pydicom writes as they are: a third of the cost of encoding."""
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
        shape = (tuple(identifier.keys()), implicit, little)
        with open_session(self.database_url) as session:
            keys = [(version, shape) for version in find_worklist_versions(session, query)]
            answers = {key: self.answers.get(key) for key in keys}
            missing = [key for key, answer in answers.items() if answer is None]
            loaded = load_orders(session, [version[0] for version, _ in missing])
            orders = {order.id: order for order in loaded}
            for key in missing:  # the same transaction: every one is there, at that version
                answer = keep_requested(build_worklist_item(orders[key[0][0]]), identifier)
                answers[key] = encode_answer(answer, implicit, little)
        if len(self.answers) + len(missing) > MAX_CACHED_ANSWERS:
            self.answers.clear()
        self.answers.update(answers)
        return [read_dataset(BytesIO(answers[key]), implicit, little) for key in keys]

    def is_allowed(self, event: Any) -> bool:
        """The caller is a registered modality (from its address): asked of the database at
        the association's first request, the same answer for the rest of it (a modality asks
        for its worklist every minute or so, on an association of its own each time)."""
        if self.accept_any:
            return True
        allowed = self.allowed.get(event.assoc)
        if allowed is None:
            allowed = self.allowed[event.assoc] = self.check_caller(event.assoc.requestor)
        return allowed

    def check_caller(self, requestor: Any) -> bool:
        with open_session(self.database_url) as session:
            allowed = is_registered_modality(
                session, requestor.ae_title, requestor.address, check_host=self.check_host
            )
        if not allowed:
            log.warning(
                "modality services: %s from %s refused (not registered from that address)",
                requestor.ae_title,
                requestor.address,
            )
        return allowed

    def find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        """Modality Worklist C-FIND: each open order matching the keys, pending one by one."""
        if not self.is_allowed(event):
            yield NOT_AUTHORIZED, None
            return
        identifier = event.identifier
        try:
            query = read_worklist_query(identifier)
        except ValueError as error:
            log.info("worklist query refused: %s", error)
            yield UNABLE_TO_PROCESS, None
            return
        for answer in self.find_answers(query, identifier, event.context.transfer_syntax):
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield PENDING, answer
        yield SUCCESS, None

    def create_step(self, event: Any) -> tuple[int, Dataset | None]:
        """MPPS N-CREATE: the exam of an order started (IN PROGRESS)."""
        if not self.is_allowed(event):
            return NOT_AUTHORIZED, None
        attributes = event.attribute_list
        try:
            step = read_step(event.request.AffectedSOPInstanceUID, attributes)
            with open_session(self.database_url) as session:
                create_performed_step(session, step, now())
        except PerformedStepError as error:
            log.info("MPPS N-CREATE refused: %s", error)
            return (DUPLICATE_INSTANCE if "exists" in str(error) else PROCESSING_FAILURE), None
        except ValueError as error:
            log.info("MPPS N-CREATE refused: %s", error)
            return INVALID_ATTRIBUTE_VALUE, None
        return SUCCESS, attributes

    def set_step(self, event: Any) -> tuple[int, Dataset | None]:
        """MPPS N-SET: the exam completed, was discontinued, or goes on."""
        if not self.is_allowed(event):
            return NOT_AUTHORIZED, None
        changes = event.modification_list
        try:
            step = read_step(event.request.RequestedSOPInstanceUID, changes)
            with open_session(self.database_url) as session:
                update_performed_step(session, step, now())
        except PerformedStepError as error:
            log.info("MPPS N-SET refused: %s", error)
            return (NO_SUCH_OBJECT if "no MPPS" in str(error) else PROCESSING_FAILURE), None
        except ValueError as error:
            log.info("MPPS N-SET refused: %s", error)
            return INVALID_ATTRIBUTE_VALUE, None
        return SUCCESS, changes


def encode_answer(answer: Dataset, implicit: bool, little: bool) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = implicit, little
    write_dataset(buffer, answer)
    return buffer.getvalue()


def read_step(sop_instance_uid: str, dataset: Dataset) -> PerformedStep:
    accession, step_id, study_uid = read_step_references(dataset)
    return PerformedStep(
        sop_instance_uid=str(sop_instance_uid),
        status=read_performed_status(dataset),
        accession_number=accession,
        scheduled_step_id=step_id,
        study_instance_uid=study_uid,
        started_at=read_dicom_datetime(
            dataset, "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"
        ),
        ended_at=read_dicom_datetime(
            dataset, "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"
        ),
    )


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
