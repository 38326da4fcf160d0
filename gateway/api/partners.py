"""`GET /api/v1/partners`: each partner's outbox health for staff.

Per partner: its configured limits, how many of its messages wait (`pending`) or are under way
(`sending`) in the outbox, and its circuit breaker (closed, open: its messages are held until
`retry_at`, half_open: one probe message at a time). See docs/outbox-partners.md.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from ..store.models import outbox_t as out
from ..transport.breaker import CLOSED
from ._web import gw, ok, query_params, read

QUEUED = ("pending", "sending")


def _queued(conn: Any) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        select(out.c.partner_agency, out.c.state, func.count())
        .where(out.c.state.in_(QUEUED))
        .group_by(out.c.partner_agency, out.c.state)
    )
    counts: dict[str, dict[str, int]] = {}
    for agency, state, n in rows:
        counts.setdefault(agency, dict.fromkeys(QUEUED, 0))[state] = n
    return counts


async def list_partners(request: web.Request) -> web.Response:
    query_params(request, frozenset())
    gateway = gw(request)
    queued = await read(request, _queued)
    defaults = gateway.config.outbox
    configured = gateway.config.partners
    breakers = gateway.breakers
    assert breakers is not None
    agencies = sorted(set(configured) | set(queued) | {a for a in breakers.agencies()})
    partners = []
    for agency in agencies:
        partner = configured.get(agency)
        breaker = breakers.get(agency)
        partners.append({
            "agency": agency,
            "name": partner.name if partner is not None else None,
            "configured": partner is not None,
            "timeout_seconds": partner.timeout_seconds if partner is not None else None,
            "max_in_flight": (partner.max_in_flight if partner is not None else None)
            or defaults.partner_max_in_flight,
            "outbox": queued.get(agency, dict.fromkeys(QUEUED, 0)),
            "circuit": breaker.as_json(),
        })
    held = [p["agency"] for p in partners if p["circuit"]["state"] != CLOSED]
    return ok({"partners": partners, "held": held})
