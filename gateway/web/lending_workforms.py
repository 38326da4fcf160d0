"""The lender's workforms: for each action the lending API offers, the fields staff fill in, and
how a posted form becomes that action's event.

A posted form is turned into the staff API's JSON body and checked by the API's own parser
(`gateway.api.lending.ACTIONS`), so a page and the API accept exactly the same values; an error
is reported against the form field it concerns, with what was typed kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..api.errors import ApiError
from ..api.lending import ACTIONS

# ISO 18626 code lists the lender chooses from (open lists: these are the published values,
# docs/protocol.md). (code, words staff read)
LOAN_CONDITIONS = (
    ("LibraryUseOnly", "Library use only"),
    ("NoReproduction", "No reproduction"),
    ("SignatureRequired", "Signature required"),
    ("SpecCollSupervReq", "Special collections supervision required"),
    ("WatchLibraryUseOnly", "Watched library use only"),
)
REASONS_UNFILLED = (
    ("NotHeld", "Not held"),
    ("NotOnShelf", "Not on shelf"),
    ("NonCirculating", "Non-circulating"),
    ("NotAvailableForILL", "Not available for ILL"),
    ("PolicyProblem", "Policy problem"),
    ("PoorCondition", "Poor condition"),
)
REASONS_RETRY = (
    ("OnLoan", "On loan"),
    ("AtBindery", "At bindery"),
    ("OnOrder", "On order"),
    ("NotFoundAsCited", "Not found as cited"),
    ("CostExceedsMaxCost", "Cost exceeds maximum cost"),
    ("LoanPossible", "Loan possible (instead of a copy)"),
    ("NotCurrentAvailableForILL", "Not currently available for ILL"),
    ("ReqDelDateNotPossible", "Requested delivery date not possible"),
    ("ReqDelMethodNotSupp", "Requested delivery method not supported"),
)
CONDITIONAL_STATUS = (("WillSupply", "Will supply"), ("ExpectToSupply", "Expect to supply"))
CANCEL_ANSWERS = (("Y", "Accept the cancel (the request ends)"), ("N", "Refuse the cancel (we go on)"))
RENEW_ANSWERS = (("Y", "Renew (give the new due date)"), ("N", "Refuse the renewal"))
FLAGS = (("lost", "the borrower reported the item lost"), ("reminder", "the borrower sent a reminder"),
         ("send_failed", "one of our messages could not be delivered"))


@dataclass(frozen=True)
class Field:
    name: str  # the form field's name
    label: str
    kind: str = "text"  # text | date | select | textarea
    choices: tuple[tuple[str, str], ...] = ()
    required: bool = False
    hint: str | None = None
    size: int | None = None  # characters shown in a text field

    @property
    def id(self) -> str:
        return f"f-{self.name.replace('_', '-')}"


NOTE = Field("note", "Note to the requesting library", "textarea",
             hint="Sent with the message; the requesting library's staff read it.")
COST_AMOUNT = Field("cost_amount", "Amount", hint="e.g. 12.50", size=10)
COST_CURRENCY = Field("cost_currency", "Currency", hint="3 letters, e.g. EUR", size=4)
ITEM_ID = Field("item_id", "Item ID (barcode)")
SENT_VIA = Field("sent_via", "Sent via", hint="e.g. Mail, Courier")


@dataclass(frozen=True)
class Workform:
    name: str  # the action's API name: /lending/{id}/actions/{name}
    title: str  # its button and the workform's heading
    fields: tuple[Field, ...] = (NOTE,)
    quick: bool = False  # the request page offers a button that sends it at once (nothing to fill in)
    confirm: str | None = None  # asked (with JavaScript) before a quick button sends
    costs: str | None = None  # the API's costs field that cost_amount / cost_currency fill
    intro: str | None = None
    primary: bool = False  # the usual next step: its button stands out

    @property
    def event_type(self) -> type:
        return ACTIONS[self.name][0]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def body(self, values: Mapping[str, str]) -> dict[str, Any]:
        """The staff API's JSON body for these form values."""
        body: dict[str, Any] = {}
        for f in self.fields:
            value = values.get(f.name, "").strip()
            if f.name == "loan_condition":
                body["loan_conditions"] = [value] if value else []
            elif f.name == "item_id":
                body["item_ids"] = [value] if value else []
            elif f.name in ("cost_amount", "cost_currency"):
                amount, currency = values.get("cost_amount", "").strip(), values.get("cost_currency", "").strip()
                body[self.costs or "offered_costs"] = [{"amount": amount, "currency": currency.upper()}] \
                    if amount or currency else []
            elif value:
                body[f.name] = value
        return body

    def field_of(self, api_field: str | None) -> str | None:
        """The form field an API error names (None: it concerns the whole form)."""
        if not api_field:
            return None
        base = api_field.split("[", 1)[0].split(".", 1)[0]
        if base == "loan_conditions" and self.field("loan_condition"):
            return "loan_condition"
        if base == "item_ids" and self.field("item_id"):
            return "item_id"
        if base in ("offered_costs", "delivery_costs") and self.field("cost_amount"):
            return "cost_currency" if api_field.endswith(".currency") else "cost_amount"
        return base if self.field(base) else None

    def parse(self, values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
        """(errors by form field, the event's fields). Errors that concern no field are under ""."""
        errors: dict[str, str] = {}
        for f in self.fields:
            value = values.get(f.name, "").strip()
            if f.required and not value:
                errors[f.name] = "is required"
            elif f.choices and value and value not in dict(f.choices):
                errors[f.name] = "choose one from the list"
        if self.field("cost_amount"):
            amount, currency = values.get("cost_amount", "").strip(), values.get("cost_currency", "").strip()
            if currency and not amount:
                errors.setdefault("cost_amount", "give the amount with the currency")
            elif amount and not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
                errors.setdefault("cost_currency", "give the 3-letter currency code, e.g. EUR")
        if errors:
            return errors, {}
        try:
            return {}, ACTIONS[self.name][2](self.body(values))
        except ApiError as exc:
            return {self.field_of(exc.field) or "": exc.message}, {}


WORKFORMS: dict[str, Workform] = {w.name: w for w in (
    Workform("will-supply", "Will supply", quick=True, primary=True),
    Workform("expect-to-supply", "Expect to supply", quick=True),
    Workform("conditional", "Conditional", (
        Field("loan_condition", "Loan condition", "select", LOAN_CONDITIONS),
        COST_AMOUNT, COST_CURRENCY,
        Field("status", "Tell the borrower", "select", CONDITIONAL_STATUS, required=True),
        NOTE,
    ), costs="offered_costs",
        intro="Supply on a condition and/or at a cost; the requesting library accepts or rejects."),
    Workform("retry-possible", "Retry possible", (
        Field("reason_retry", "Reason", "select", REASONS_RETRY, required=True),
        Field("retry_after", "Retry after", "date"),
        Field("retry_before", "Retry before", "date"),
        NOTE,
    ), intro="The requesting library may send the request again (with changes)."),
    Workform("unfilled", "Unfilled", (
        Field("reason_unfilled", "Reason", "select", REASONS_UNFILLED, required=True), NOTE,
    ), intro="We cannot supply this item; the requesting library moves on to its next partner."),
    Workform("ship", "Ship", (
        Field("due_date", "Due date", "date", required=True),
        ITEM_ID, SENT_VIA,
        Field("cost_amount", "Delivery cost: amount", hint="e.g. 5.00", size=10),
        Field("cost_currency", "Delivery cost: currency", hint="3 letters, e.g. EUR", size=4),
        NOTE,
    ), costs="delivery_costs", intro="The item leaves: the requesting library is told it is loaned.", primary=True),
    Workform("copy-completed", "Copy completed", (
        Field("url", "Link to the copy", size=60), ITEM_ID, SENT_VIA, NOTE,
    ), intro="The copy was delivered."),
    Workform("answer-cancel", "Answer cancel", (
        Field("answer", "Answer", "select", CANCEL_ANSWERS, required=True), NOTE,
    ), intro="The requesting library asked to cancel this request."),
    Workform("answer-renew", "Answer renewal", (
        Field("answer", "Answer", "select", RENEW_ANSWERS, required=True),
        Field("due_date", "New due date", "date", hint="Required to renew."),
        NOTE,
    ), intro="The requesting library asked to renew the loan.", primary=True),
    Workform("mark-overdue", "Mark overdue", quick=True),
    Workform("recall", "Recall", (Field("due_date", "New due date", "date", hint="Optional: an earlier due date."),
                                  NOTE)),
    Workform("check-in", "Check in", quick=True, confirm="Check the item in? The loan is completed.", primary=True),
    Workform("complete-without-return", "Complete without return", quick=True,
             confirm="Complete this loan without the item coming back?"),
    Workform("acknowledge", "Acknowledge", (Field("flag", "What was dealt with", "select", FLAGS, required=True),),
             intro="Staff dealt with it: the request no longer needs attention for this reason."),
)}
