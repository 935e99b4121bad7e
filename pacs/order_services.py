"""The order services `pacs up` runs beside the archive: the HL7 listener (orders in) and the
modality-services SCP (Modality Worklist and MPPS). Both listen on every interface, as the
archive's DICOM port does: the hospital's systems and the modalities are elsewhere."""

from __future__ import annotations

import signal

from config.settings import Settings
from pacs.garbage_collection import tune_garbage_collection
from pacs.hl7_listener import Hl7Listener
from pacs.modality_services import ModalityServices
from pacs.worker import raise_keyboard_interrupt

ALL_INTERFACES = "0.0.0.0"


class OrderServices:
    def __init__(self, settings: Settings, host: str = ALL_INTERFACES) -> None:
        self.listener = (
            Hl7Listener(settings.database_url, host, settings.hl7_port)
            if settings.hl7_port
            else None
        )
        self.modality_services = ModalityServices(
            settings.database_url,
            settings.mwl_aet,
            host,
            settings.mwl_port,
            accept_any=settings.dicom_accept_any,
            check_host=settings.dicom_check_host,
        )

    def start(self) -> None:
        """Bind both ports (an OSError names the one in use) and serve in threads."""
        if self.listener is not None:
            try:
                self.listener.start()
            except OSError as error:
                raise OSError(f"{error} (PACS_HL7_PORT moves it, 0 turns it off)") from None
            print(f"pacs: HL7 listener (MLLP) on port {self.listener.port}", flush=True)
        try:
            self.modality_services.start()
        except OSError as error:
            port = self.modality_services.port
            raise OSError(f"worklist port {port}: {error} (PACS_MWL_PORT moves it)") from None
        print(
            f"pacs: Modality Worklist and MPPS as {self.modality_services.ae.ae_title} "
            f"on port {self.modality_services.port}",
            flush=True,
        )

    def stop(self) -> None:
        self.modality_services.stop()
        if self.listener is not None:
            self.listener.stop()


def serve_order_services(settings: Settings) -> int:
    """`pacs orders serve`: both services alone, in the foreground until SIGTERM or Ctrl-C
    (scaled out: a machine or container of their own, beside the workers and the portal).
    Like them it refuses a database whose schema is behind (`pacs db upgrade`)."""
    services = OrderServices(settings)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    try:
        services.start()
        tune_garbage_collection()
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("pacs: stopping the order services", flush=True)
    finally:
        services.stop()
    return 0
