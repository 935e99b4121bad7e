"""The garbage collector's settings for the long-running services, once they have started.

CPython collects its youngest objects every 700 allocations and, every so often, walks
every object the process holds. A service holds hundreds of thousands that live as long as
it does (SQLAlchemy's mappers, pydicom's dictionaries, Flask's routes), and each HL7 message
parsed or page built allocates thousands of short-lived ones: the HL7 listener spent about
a fifth of its CPU in the collector (benchmarks/orders.py: 500 messages/s without this,
600-680 with it).
"""

from __future__ import annotations

import gc


def tune_garbage_collection() -> None:
    """What exists now is frozen (never walked again); the youngest generation is collected
    every 50,000 allocations, and cyclic garbage still goes, a little later."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
