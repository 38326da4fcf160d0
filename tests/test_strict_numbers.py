"""Numbers from outside are ASCII digits or a clear client error, never a 500.

`"²".isdigit()` is true but `int("²")` raises; `int("٣")` is 3. The parser is checked alone,
then property-based over the real server (on loopback, SQLite and PostgreSQL): every numeric
query parameter, the `Last-Event-ID` header, the HMAC timestamp header on the ISO endpoint,
and numeric path segments.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api._web import MAX_ID, MAX_OFFSET
from gateway.messages import Version, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.strict_numbers import NumberError, is_decimal_text, parse_int
from gateway.transport.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER

from support.api_helpers import KEYS, OURS, P1, P2, P3
from support.messages_helpers import NOW
from test_api_openapi import seeded_live_gateway

EXAMPLES = 60
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
ASCII_INT = re.compile(r"-?[0-9]+")

# Strings that look like numbers to someone: other scripts' digits, superscripts, full-width,
# mathematical digits, signs, separators, exponents, and plain ASCII integers of every size.
TRICKY = ["²", "٣", "１２", "𝟙", "½", "Ⅻ", "৪২", "-0", "+5", "5 ", " 5", "1_0", "0x10", "1e3", "1.0", "", "-",
          "00000000000000000000000000000000000000000007", "9" * 50, str(2**63 - 1), str(2**63)]
NUMBERISH = st.one_of(
    st.sampled_from(TRICKY),
    st.integers(-(10**25), 10**25).map(str),
    st.text(st.one_of(st.characters(categories=("Nd", "No", "Nl")), st.sampled_from("0123456789-+ .")),
            max_size=8),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=10),
)
# Header values: what http.client will put on the wire (no control characters).
HEADER_NUMBERISH = NUMBERISH.filter(lambda v: not any(ord(c) < 32 or ord(c) == 127 for c in v))

# endpoint -> {numeric parameter: (low, high)}
NUMERIC_PARAMETERS: dict[str, dict[str, tuple[int, int]]] = {
    "/api/v1/borrowing-requests": {"limit": (1, 200), "offset": (0, MAX_OFFSET), "facet_limit": (1, 100)},
    "/api/v1/lending-requests": {"limit": (1, 200), "offset": (0, MAX_OFFSET)},
    "/api/v1/events": {"since": (0, MAX_ID), "limit": (1, 1000)},
}
PARAMETER_CASES = [(path, name) for path, names in NUMERIC_PARAMETERS.items() for name in names]


def accepted(text: str, low: int, high: int) -> bool:
    """The rule, independently of the implementation: at most 40 ASCII digits (optional minus),
    in range."""
    return len(text) <= 40 and bool(ASCII_INT.fullmatch(text)) and low <= int(text) <= high


# --- the parser alone ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["²", "٣", "１２", "𝟙", "½", "Ⅻ", "+5", " 5", "1_0", "0x10", "1e3", "1.0", "", "-"])
def test_parse_int_refuses_anything_but_ascii_digits(text):
    with pytest.raises(NumberError, match="integer"):
        parse_int(text, -(10**6), 10**6)


def test_parse_int_reads_ascii_and_checks_the_range():
    assert parse_int("42", 0, 100) == 42 and parse_int("-7", -10, 0) == -7 and parse_int("007", 0, 9) == 7
    with pytest.raises(NumberError, match="between 1 and 200"):
        parse_int("201", 1, 200)
    with pytest.raises(NumberError, match="integer"):
        parse_int("9" * 50, 0, 10)  # too long to be worth converting


@PROPERTY
@given(text=NUMBERISH)
def test_parse_int_property(text):
    try:
        value = parse_int(text, -(10**20), 10**20)
    except NumberError:
        assert not accepted(text, -(10**20), 10**20)
    else:
        assert accepted(text, -(10**20), 10**20) and value == int(text)


def test_decimal_text_is_ascii_only():
    assert is_decimal_text("12.50") and is_decimal_text("-1") and is_decimal_text("0")
    for text in ["٣", "٣.٥", "1e2", "1_0", "NaN", "Infinity", " 1", "1.", ".5", "²"]:
        assert not is_decimal_text(text), text


# --- against a real server ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request, tmp_path_factory):
    partners = [{"agency": P1, "url": "http://127.0.0.1:9/iso18626", "credentials": {"inbound": {"hmac_secret": "s3cret"}}},
                *({"agency": a, "url": "http://127.0.0.1:9/iso18626"} for a in (P2, P3))]
    yield from seeded_live_gateway(request, tmp_path_factory, partners=partners)


def call(live: Any, method: str, target: str, headers: dict[str, str] | None = None,
         body: bytes | None = None) -> tuple[int, bytes, str]:
    """(status, body, content type) of one request on a fresh connection. A 200 event stream is
    not read (it never ends)."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        all_headers = {"Authorization": f"Bearer {KEYS['admin']}", **(headers or {})}
        if body is not None:
            all_headers["Content-Length"] = str(len(body))
        for name, value in all_headers.items():
            conn.putheader(name, value.encode("utf-8"))
        conn.endheaders(body)
        response = conn.getresponse()
        ctype = response.getheader("Content-Type", "")
        data = b"" if ctype.startswith("text/event-stream") else response.read()
        return response.status, data, ctype
    finally:
        conn.close()


def error_field(data: bytes) -> str | None:
    return json.loads(data)["error"]["field"]


@PROPERTY
@given(case=st.sampled_from(PARAMETER_CASES), value=NUMBERISH)
def test_numeric_query_parameters_property(live, case, value):
    """Any value of any numeric query parameter: 200 if it is an ASCII integer in range, else a
    422 naming the parameter; never a 5xx."""
    path, name = case
    status, data, _ = call(live, "GET", f"{path}?{name}={quote(value, safe='')}")
    low, high = NUMERIC_PARAMETERS[path][name]
    if "\x00" not in value and accepted(value.strip(), low, high):
        assert status == 200, (value, data)
    else:
        assert status == 422 and error_field(data) == name, (value, status, data)


@pytest.mark.parametrize("path, name", PARAMETER_CASES)
def test_superscript_two_in_a_query_parameter_is_a_422(live, path, name):
    status, data, _ = call(live, "GET", f"{path}?{name}={quote('²')}")
    assert status == 422, data
    error = json.loads(data)["error"]
    assert error["code"] == "invalid_field" and error["field"] == name and "integer" in error["message"]


@PROPERTY
@given(value=HEADER_NUMBERISH)
def test_last_event_id_header_property(live, value):
    """The SSE resume header: a history id in ASCII digits, or a 422 naming the header."""
    headers = {"Accept": "text/event-stream", "Last-Event-ID": value}
    status, data, _ = call(live, "GET", "/api/v1/events?poll=1", headers)
    text = value.strip()
    if not text or accepted(text, 0, MAX_ID):
        assert status == 200, (value, data)
    else:
        assert status == 422 and error_field(data) == "Last-Event-ID", (value, status, data)


def test_superscript_two_in_last_event_id_is_a_422(live):
    status, data, _ = call(live, "GET", "/api/v1/events", {"Accept": "text/event-stream", "Last-Event-ID": "²"})
    assert status == 422 and error_field(data) == "Last-Event-ID", data


def partner_message() -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(P1), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=NOW, requesting_agency_request_id="NUMBERS-1"),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.RequestResponse),
        status_info=model.StatusInfo(status=Status.WillSupply, last_change=NOW)), Version.V2017)


def post_signed(live: Any, stamp: str) -> tuple[int, bytes, str]:
    headers = {"Content-Type": "application/xml", TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: "sha256=" + "0" * 64}
    return call(live, "POST", "/iso18626", headers, partner_message())


@PROPERTY
@given(stamp=HEADER_NUMBERISH.filter(lambda v: v.strip() != ""))
def test_hmac_timestamp_header_property(live, stamp):
    """A partner's HMAC timestamp that is not unix seconds in ASCII digits is a 401 that says so;
    no timestamp value makes a 5xx (the signature is wrong, so every answer here is a 401)."""
    status, data, _ = post_signed(live, stamp)
    assert status == 401, (stamp, status, data)
    if not accepted(stamp.strip(), 0, 2**63 - 1):
        assert TIMESTAMP_HEADER.encode() in data, data


def test_superscript_two_as_hmac_timestamp_is_a_401(live):
    status, data, _ = post_signed(live, "²")
    assert status == 401 and TIMESTAMP_HEADER.encode() in data, data
    status, data, _ = post_signed(live, str(int(time.time())))
    assert status == 401 and b"wrong HMAC signature" in data, data  # a good stamp gets as far as the signature


@PROPERTY
@given(digits=st.text(st.characters(categories=("Nd",)), min_size=1, max_size=4))
def test_numeric_path_segments_property(live, digits):
    """The routes take `\\d+` (every script's digits); an id that is not ASCII digits is no id."""
    status, data, _ = call(live, "GET", f"/api/v1/borrowing-requests/{quote(digits)}")
    if ASCII_INT.fullmatch(digits) and 1 <= int(digits) <= 3:  # the seeded requests
        assert status == 200, (digits, data)
    else:
        assert status == 404, (digits, status, data)


def test_arabic_indic_three_is_not_request_three(live):
    assert call(live, "GET", "/api/v1/borrowing-requests/3")[0] == 200
    status, data, _ = call(live, "GET", f"/api/v1/borrowing-requests/{quote('٣')}")
    assert status == 404, data


def test_listen_port_must_be_ascii_digits():
    from gateway.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="port"):
        parse_config({"gateway": {"listen": "127.0.0.1:²"}}, env={})
    assert parse_config({"gateway": {"listen": "127.0.0.1:8626"}}, env={}).listen_port == 8626
