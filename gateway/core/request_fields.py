"""Which fields of the borrowing form reach the lender, and which stay with us.

`service.outgoing` carries every SENT field onto the ISO 18626 request (some in the 2021 schema
only); the LOCAL ones have no element a lender could act on. docs/request-fields.md gives the
element of each field per version, and why each local field stays local. A test checks both
sets against what the outgoing request really carries.
"""

from __future__ import annotations

from dataclasses import fields

from .borrowing.state import RequestDetails

LOCAL = frozenset({"owner", "pickup_location", "delivery_location", "language"})
SENT = frozenset(f.name for f in fields(RequestDetails)) - LOCAL
