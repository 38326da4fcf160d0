"""Build real gateways for integration tests: config, database, app on loopback."""

from __future__ import annotations

from typing import Any

from gateway.app import build_app
from gateway.runtime import Gateway
from gateway.config import parse_config

OURS = "ISIL:US-NjP"


def make_config(db_url: str, partners: list[dict[str, Any]], gateway: dict[str, Any] | None = None,
                **policy: Any) -> Any:
    """`gateway`: more [gateway] keys; the other keywords: the [policy] section."""
    return parse_config(
        {
            "gateway": {"agency": OURS, "listen": "127.0.0.1:0", "database": db_url, **(gateway or {})},
            "policy": policy,
            "partners": partners,
            "rota_templates": [{"name": "default", "partners": [p["agency"] for p in partners[:2]]}],
        },
        env={},
    )


async def start_gateway(aiohttp_client, db_url: str, partners: list[dict[str, Any]], **kw: Any):
    """(test client, Gateway) for a gateway on a fresh database."""
    gateway = Gateway.create(make_config(db_url, partners, **kw.pop("policy", {})))
    client = await aiohttp_client(build_app(gateway, **kw))
    return client, gateway
