"""The rules a borrowing request's form must meet, whoever fills it in: staff (create, edit,
retry with changes) and patrons (the OpenURL workform and its JSON twin) get the same checks,
from here, through the borrowing service. A broken rule is an InvalidInput naming the field.

- Something to find the item by: a title, an article / chapter title, or an identifier
  (ISBN, ISSN, OCLC number or another). A request without any is refused rather than sent with
  an empty bibliographicInfo.
- The pickup location, when the library configured a list, is one of the list.
- The needed-by date is not in the past.
- A maximum fee goes with willing_to_pay and a currency: ISO 18626 sends it as maximumCosts,
  an amount in a currency, and the gateway does not guess the currency.

An edit is checked as the request it makes; the pickup list and the date are checked only when
the edit changes them, so a request whose needed-by date has passed can still be edited.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from .borrowing.state import RequestDetails
from .errors import InvalidInput

FINDABLE_BY = ("title", "title_of_component", "isbn", "issn", "oclc_number", "other_identifiers")


@dataclass(frozen=True)
class FormRules:
    pickup_locations: tuple[str, ...] = ()  # empty: any pickup location

    def check(self, details: RequestDetails, *, today: date, changed: Collection[str] | None = None) -> None:
        """Raise InvalidInput for the first broken rule. `changed`: the fields an edit set
        (None: a new request, every rule applies)."""
        def touched(name: str) -> bool:
            return changed is None or name in changed

        if not any(getattr(details, name) for name in FINDABLE_BY):
            raise InvalidInput("title", "a title is required (or an article or chapter title, or an identifier: "
                                        "ISBN, ISSN, OCLC number or another)")
        if self.pickup_locations and touched("pickup_location") \
                and details.pickup_location not in self.pickup_locations:
            raise InvalidInput("pickup_location", f"must be one of: {', '.join(self.pickup_locations)}")
        if details.needed_by is not None and touched("needed_by") and details.needed_by < today:
            raise InvalidInput("needed_by", "is in the past")
        if details.maximum_fee is not None:
            if not details.currency:
                raise InvalidInput("currency", "is required with a maximum fee (a 3-letter ISO 4217 code)")
            if not details.willing_to_pay:
                raise InvalidInput("willing_to_pay", "must be true when a maximum fee is given")
