"""Pure helpers for what particular partners put on the wire (docs/partners.md: Alma, ReShare).

ReShare (mod-rs) carries what the schema lacks inside `note` as markers:
`parse_reshare_markers(note)` takes them out into a `ReShareNote`; `note_markers(note)` gives
them as JSON-safe data (or None), as stored on an inbound general message.

Alma (and Rapido) as a borrower, for our lending side (docs/partners.md, Alma quirks):
- `adapt_supplying_message_for_alma(message)` rewrites one supplyingAgencyMessage the way
  brokers do before sending it to Alma, and returns a copy (or a list, see there);
  `alma_messages(message)` is the same, always as a list.
- `condition_answer(note)` reads an answer to loan conditions (ACCEPT / REJECT): ReShare's
  agree / reject markers first, else Alma's free text.
- `conditions_in_note(note)` reads loan conditions written into a note ("Condition: X" lines,
  ReShare's add-condition marker).
- `is_duplicate_unfilled(note)` spots the DUPLICATE prefix of Alma lenders' Unfilled notes.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import model
from .codes import ReasonForMessage, Status

# --- ReShare note markers ------------------------------------------------------------------

ADD_LOAN_CONDITION = "ReShareAddLoanCondition"
AWAITING_CONDITION_CONFIRMATION = "ReShareSupplierAwaitingConditionConfirmation"
CONDITIONS_ASSUMED_AGREED = "ReShareSupplierConditionsAssumedAgreed"
LOAN_CONDITION_AGREE = "ReShareLoanConditionAgreeResponse"
LOAN_CONDITION_REJECT = "ReShareLoanConditionRejectResponse"

# One alternation, so that markers are found left to right and never overlap.
_MARKER = re.compile(
    r"#seq:(?P<seq>-?\d+)#"
    r"|#lastSeq:(?P<last_seq>-?\d+)#"
    r"|#ReShareUpdatedField-(?P<field>[^:#]+):(?P<value>[^#]*)#"
    r"|#(?P<flag>ReShare[A-Za-z]+)#"
    r"|#?transferToCluster:(?P<cluster>[^\s#]+)#?"
)


@dataclass(frozen=True, slots=True)
class ReShareNote:
    """A ReShare note taken apart. `text` is what a person wrote, markers removed."""

    text: str
    seq: int | None = None
    last_seq: int | None = None
    flags: frozenset[str] = frozenset()  # marker names without '#', e.g. "ReShareAddLoanCondition"
    updated_fields: dict[str, str] = field(default_factory=dict)  # e.g. {"PickupLocation": "Main desk"}
    cluster_id: str | None = None

    @property
    def adds_loan_condition(self) -> bool:
        return ADD_LOAN_CONDITION in self.flags

    @property
    def awaiting_condition_confirmation(self) -> bool:
        return AWAITING_CONDITION_CONFIRMATION in self.flags

    @property
    def conditions_assumed_agreed(self) -> bool:
        return CONDITIONS_ASSUMED_AGREED in self.flags

    @property
    def condition_answer(self) -> str | None:
        """"ACCEPT" / "REJECT" from the agree / reject markers; None without (or with both)."""
        agree, reject = LOAN_CONDITION_AGREE in self.flags, LOAN_CONDITION_REJECT in self.flags
        if agree == reject:
            return None
        return "ACCEPT" if agree else "REJECT"

    @property
    def has_markers(self) -> bool:
        return bool(self.seq is not None or self.last_seq is not None or self.flags
                    or self.updated_fields or self.cluster_id)

    def as_json(self) -> dict[str, Any]:
        """JSON-safe: flags as a sorted list, `text` the note with the markers removed."""
        return {
            "seq": self.seq,
            "last_seq": self.last_seq,
            "flags": sorted(self.flags),
            "updated_fields": dict(self.updated_fields),
            "cluster_id": self.cluster_id,
            "text": self.text,
        }


def parse_reshare_markers(note: str | None) -> ReShareNote:
    """Markers out of a ReShare note: `#seq:N#`, `#lastSeq:N#`, `#ReShare...#` flags,
    `#ReShareUpdatedField-<Field>:<value>#`, `transferToCluster:<id>`; the rest is `text`.

    A marker that occurs twice keeps its last value (mod-rs appends them at the end).
    Unknown `#ReShareXyz#` markers become flags too, so they never leak into the text.
    """
    if not note:
        return ReShareNote(text="")
    seq = last_seq = cluster = None
    flags: set[str] = set()
    fields: dict[str, str] = {}
    pieces: list[str] = []
    pos = 0
    for match in _MARKER.finditer(note):
        pieces.append(note[pos:match.start()])
        pos = match.end()
        if match.group("seq") is not None:
            seq = int(match.group("seq"))
        elif match.group("last_seq") is not None:
            last_seq = int(match.group("last_seq"))
        elif match.group("field") is not None:
            fields[match.group("field")] = match.group("value")
        elif match.group("flag") is not None:
            flags.add(match.group("flag"))
        else:
            cluster = match.group("cluster")
    pieces.append(note[pos:])
    # Join what was around the markers with one space where a marker sat between two words.
    text = ""
    for piece in pieces:
        if text and piece and not text[-1].isspace() and not piece[0].isspace():
            text += " "
        text += piece
    text = re.sub(r"[ \t]{2,}", " ", text).strip() if len(pieces) > 1 else text.strip()
    return ReShareNote(text, seq, last_seq, frozenset(flags), fields, cluster)


def note_markers(note: str | None) -> dict[str, Any] | None:
    """`parse_reshare_markers(note).as_json()` when the note carries ReShare markers, else None.

    Runs on every inbound note: one without '#' and without 'transferToCluster' (the only
    marker that may stand without '#') is answered without the regular expression.
    """
    if not note or ("#" not in note and "transferToCluster" not in note):
        return None
    parsed = parse_reshare_markers(note)
    return parsed.as_json() if parsed.has_markers else None


# --- Alma: free-text answers -----------------------------------------------------------------

_ACCEPT = re.compile(r"(?<![a-z])accept(?:ed|s)?(?![a-z])", re.I)
_REJECT = re.compile(r"(?<![a-z])reject(?:ed|s)?(?![a-z])", re.I)
_DUPLICATE = re.compile(r"[\W_]*duplicate(?![a-z])", re.I)


def condition_answer(note: str | None) -> str | None:
    """"ACCEPT", "REJECT" or None for an answer to loan conditions (Alma's free text, ReShare's
    markers).

    ReShare's `#ReShareLoanConditionAgreeResponse#` / `#ReShareLoanConditionRejectResponse#`
    decide first: a note with one of them means what the marker says, whatever the text around
    it ("#ReShareLoanConditionRejectResponse# we cannot accept these" is REJECT); with both it
    is None. Without them the free text decides, Alma's way (docs/partners.md, Alma quirk 6): case-insensitive and
    tolerant of punctuation around the word ("Accept.", "*REJECT*", "accepted!"); a longer word
    does not count ("acceptable", "unaccepted"); text inside other markers does not count. A
    text with both words, or neither, is None: a person has to read it.
    (`core.lending.events.conditions_answer` is this function.)
    """
    if not note:
        return None
    markers = parse_reshare_markers(note)
    if LOAN_CONDITION_AGREE in markers.flags or LOAN_CONDITION_REJECT in markers.flags:
        return markers.condition_answer
    text = markers.text
    accept, reject = bool(_ACCEPT.search(text)), bool(_REJECT.search(text))
    if accept == reject:
        return None
    return "ACCEPT" if accept else "REJECT"


_CONDITION_IN_NOTE = re.compile(rf"^\s*Condition:\s*(\S+)|#{ADD_LOAN_CONDITION}#\s*(\w+)", re.M)


def conditions_in_note(note: str | None) -> list[str]:
    """Loan conditions written as text: "Condition: X" lines (ours for Alma, and Alma's own)
    and ReShare's `#ReShareAddLoanCondition# X`. In 2017 an offer has nowhere else to carry
    them: loanCondition lives in deliveryInfo."""
    return [a or b for a, b in _CONDITION_IN_NOTE.findall(note or "")]


def is_duplicate_unfilled(note: str | None) -> bool:
    """Alma lenders start an Unfilled note with DUPLICATE for a duplicate request.

    Case-insensitive; leading spaces and punctuation are skipped ("[DUPLICATE]", "Duplicate: ...");
    the word has to stand alone ("Duplicated" or "duplicates" do not count).
    """
    return bool(note and _DUPLICATE.match(note))


# --- Alma: adapting our supplyingAgencyMessage -----------------------------------------------

# Brokers' normalisation of reasonForMessage for Alma, by the (adapted) status. Applied only
# to RequestResponse / StatusChange: answers to an action (CancelResponse, RenewResponse,
# StatusRequestResponse) and Notifications keep their reason.
ALMA_REASON_FOR_STATUS = {
    Status.WillSupply: ReasonForMessage.RequestResponse,
    Status.Loaned: ReasonForMessage.StatusChange,
    Status.LoanCompleted: ReasonForMessage.RequestResponse,
}
_NORMALISED_REASONS = (ReasonForMessage.RequestResponse, ReasonForMessage.StatusChange)
# Alma reads costs only on these (docs/partners.md, Alma quirk 4): deliveryCosts stays there, moves to text elsewhere.
ALMA_COSTS_KEPT_ON = (Status.Loaned, Status.CopyCompleted)


def _money(costs: model.Costs) -> str:
    value = costs.monetary_value
    text = f"{value:.2f}" if isinstance(value, Decimal) and value == value.quantize(Decimal("0.01")) else str(value)
    return f"{text} {costs.currency_code.value}"


def _take_conditions_and_costs(message: model.SupplyingAgencyMessage) -> list[str]:
    """Remove loanCondition / offeredCosts (and deliveryCosts unless shipped) from `message`;
    return them as note lines ("Condition: NoReproduction", "Cost: 12.50 USD")."""
    conditions: list[model.SchemeValue] = []
    costs: list[model.Costs] = []
    info, delivery, retry = message.message_info, message.delivery_info, message.retry_info
    if info.offered_costs is not None:
        costs.append(info.offered_costs)
        info.offered_costs = None
    if retry is not None:
        conditions += retry.loan_condition
        costs += retry.offered_costs
        retry.loan_condition, retry.offered_costs = [], []
        if not any(getattr(retry, f.name) not in (None, []) for f in dataclasses.fields(retry)):
            message.retry_info = None
    if delivery is not None:
        conditions += delivery.loan_condition
        delivery.loan_condition = []
        if message.status_info.status not in ALMA_COSTS_KEPT_ON:
            costs += delivery.delivery_costs
            delivery.delivery_costs = []
    return [f"Condition: {c.value}" for c in conditions] + [f"Cost: {_money(c)}" for c in costs]


def adapt_supplying_message_for_alma(
    message: model.SupplyingAgencyMessage,
) -> model.SupplyingAgencyMessage | list[model.SupplyingAgencyMessage]:
    """A copy of `message` as Alma understands it (docs/partners.md, Alma quirks); the argument is not changed.

    1. ExpectToSupply -> WillSupply (Alma does not know ExpectToSupply).
    2. reasonForMessage RequestResponse/StatusChange normalised by status: WillSupply ->
       RequestResponse, Loaned -> StatusChange, LoanCompleted -> RequestResponse.
    3. loanCondition and offeredCosts (messageInfo in 2017; deliveryInfo, retryInfo in 2021)
       and deliveryCosts (except on Loaned / CopyCompleted, where Alma reads them) are
       taken out and written as note lines, "Condition: NoReproduction", "Cost: 12.50 USD",
       because Alma shows a note only in a Notification:
       - a Notification gets the lines appended to its own note: one message comes back;
       - any other message becomes TWO: a list [the status message without them, then a
         Notification with the same header and statusInfo whose note is the original note
         (if any) followed by the lines]. Send them in that order.
    Without conditions or costs one message comes back. `alma_messages()` always gives a list.
    """
    adapted = copy.deepcopy(message)
    status_info, info = adapted.status_info, adapted.message_info
    if status_info.status is Status.ExpectToSupply:
        status_info.status = Status.WillSupply
    if info.reason_for_message in _NORMALISED_REASONS and status_info.status in ALMA_REASON_FOR_STATUS:
        info.reason_for_message = ALMA_REASON_FOR_STATUS[status_info.status]
    lines = _take_conditions_and_costs(adapted)
    if not lines:
        return adapted
    if info.reason_for_message is ReasonForMessage.Notification:
        info.note = "\n".join([info.note, *lines] if info.note else lines)
        return adapted
    notification = model.SupplyingAgencyMessage(
        header=copy.deepcopy(adapted.header),
        message_info=model.MessageInfo(
            reason_for_message=ReasonForMessage.Notification,
            note="\n".join([info.note, *lines] if info.note else lines),
        ),
        status_info=copy.deepcopy(adapted.status_info),
    )
    return [adapted, notification]


def alma_messages(message: model.SupplyingAgencyMessage) -> list[model.SupplyingAgencyMessage]:
    """`adapt_supplying_message_for_alma`, always as a list of the messages to send, in order."""
    adapted = adapt_supplying_message_for_alma(message)
    return adapted if isinstance(adapted, list) else [adapted]
