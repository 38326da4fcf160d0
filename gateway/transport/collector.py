"""The garbage collector of a serving gateway process.

CPython's cyclic collector runs a young-generation pass every 700 container allocations, and
now and then a full pass over every object the process holds. A gateway under load allocates
a few hundred objects per message (the decoded message, the decision, the rows) and holds a
great many more for good (modules, schemas, the table definitions, the decoded-state cache), so
the default settings cost it about 4 % of its CPU and, in each full pass, a pause of tens of
milliseconds that every request in flight waits out (bench/bench_inbound.py on PostgreSQL, timed
with `gc.callbacks`: collections took 270-280 ms over 5,600 messages, among them two full
passes of 70 ms each; with a young threshold of 7,000, 29 ms and no full pass).

`tune()` runs once the process is set up: everything alive then is frozen (never scanned again:
it lives as long as the process), and a young pass runs every 7,000 allocations, so that most
of a message's objects are freed by reference counting before any pass sees them. Memory held
in reference cycles is still collected, a little later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7_000  # CPython's default is 700


def tune() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
