"""The borrowing list's query string: what it may hold (filters, search, sort, page), checking
it, writing it back in one canonical order, and the links that add or remove one filter.

The filters are the staff API's (`api.borrowing.parse_filters` checks them); the sort is split in
two fields a form can set (`sort` and `order`), and paging counts pages, not rows."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlencode

from ..api import queries as q
from ..api.borrowing import parse_filters
from ..api.errors import ApiError

LIST_FILTERS = ("status", "active_partner", "format", "requested_media", "pickup_location", "level_of_service")
BOOL_FILTERS = ("needs_attention", "unread_messages", "has_costs", "has_notes")
SORTS = {"created_at": "Created", "updated_at": "Updated", "title": "Title", "status": "Status",
         "needed_by": "Needed by", "due_date": "Due date"}
ORDERS = {"desc": "Descending", "asc": "Ascending"}
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_SORT, DEFAULT_ORDER, DEFAULT_LIMIT = "created_at", "desc", 25
MAX_PAGE = 100_000


class BadQuery(ValueError):
    """A query string the list can't use; `field` names the parameter."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class ListQuery:
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)  # facet -> chosen values
    flags: dict[str, bool] = field(default_factory=dict)  # boolean facet -> chosen value
    text: str = ""
    sort: str = DEFAULT_SORT
    order: str = DEFAULT_ORDER
    limit: int = DEFAULT_LIMIT
    page: int = 1

    # --- reading --------------------------------------------------------------------------------

    @classmethod
    def parse(cls, params: Any) -> "ListQuery":
        """From a query string's parameters (a MultiDict, or a dict of lists); unknown
        parameters are left out. Raises BadQuery."""
        def values(name: str) -> list[str]:
            got = params.getall(name, []) if hasattr(params, "getall") else params.get(name, [])
            return [v for v in got if v.strip()]

        lists = {name: tuple(dict.fromkeys(values(name))) for name in LIST_FILTERS if values(name)}
        flags: dict[str, bool] = {}
        for name in BOOL_FILTERS:
            given = values(name)
            if given:
                if given[-1] not in ("true", "false"):
                    raise BadQuery(name, "must be true or false")
                flags[name] = given[-1] == "true"
        text = " ".join((values("q") or [""])[-1].split())
        sort = (values("sort") or [DEFAULT_SORT])[-1]
        order = (values("order") or [DEFAULT_ORDER])[-1]
        if sort not in SORTS:
            raise BadQuery("sort", f"must be one of {', '.join(SORTS)}")
        if order not in ORDERS:
            raise BadQuery("order", "must be asc or desc")
        limit = _number(values("limit"), "limit", DEFAULT_LIMIT)
        if limit not in PAGE_SIZES:
            raise BadQuery("limit", f"must be one of {', '.join(map(str, PAGE_SIZES))}")
        page = _number(values("page"), "page", 1)
        if not 1 <= page <= MAX_PAGE:
            raise BadQuery("page", "is out of range")
        chosen = cls(lists, flags, text, sort, order, limit, page)
        chosen.filters()  # the API's checks of every filter value
        return chosen

    def filters(self) -> q.Filters:
        params: dict[str, list[str]] = {name: list(v) for name, v in self.lists.items()}
        params.update({name: ["true" if v else "false"] for name, v in self.flags.items()})
        if self.text:
            params["q"] = [self.text]
        try:
            return parse_filters(params)
        except ApiError as exc:
            raise BadQuery(exc.field or "q", exc.message) from None

    def page_of(self) -> q.Page:
        return q.Page(limit=self.limit, offset=(self.page - 1) * self.limit,
                      sort=("-" if self.order == "desc" else "") + self.sort)

    # --- writing --------------------------------------------------------------------------------

    def pairs(self, with_page: bool = True) -> list[tuple[str, str]]:
        """The parameters that differ from the defaults, in a fixed order."""
        out: list[tuple[str, str]] = []
        if self.text:
            out.append(("q", self.text))
        for name in LIST_FILTERS:
            out.extend((name, v) for v in self.lists.get(name, ()))
        for name in BOOL_FILTERS:
            if name in self.flags:
                out.append((name, "true" if self.flags[name] else "false"))
        if self.sort != DEFAULT_SORT:
            out.append(("sort", self.sort))
        if self.order != DEFAULT_ORDER:
            out.append(("order", self.order))
        if self.limit != DEFAULT_LIMIT:
            out.append(("limit", str(self.limit)))
        if with_page and self.page != 1:
            out.append(("page", str(self.page)))
        return out

    def query_string(self, with_page: bool = True) -> str:
        return urlencode(self.pairs(with_page))

    def url(self, **changes: Any) -> str:
        """The list's URL for this choice (with changes). Never bare `/borrowing`, which restores
        the kept choice: all defaults is `?q=`."""
        return "/borrowing?" + (replace(self, **changes).query_string() or "q=")

    @property
    def has_filters(self) -> bool:
        return bool(self.lists or self.flags or self.text)

    def chosen(self, name: str, value: Any) -> bool:
        if name in BOOL_FILTERS:
            return self.flags.get(name) is value
        return value in self.lists.get(name, ())

    def toggle_url(self, name: str, value: Any) -> str:
        """The list with this facet value added to the filters, or taken out if it is chosen."""
        if name in BOOL_FILTERS:
            flags = dict(self.flags)
            if flags.get(name) is value:
                del flags[name]
            else:
                flags[name] = value
            return self.url(flags=flags, page=1)
        lists = dict(self.lists)
        current = lists.get(name, ())
        lists[name] = tuple(v for v in current if v != value) if value in current else (*current, value)
        if not lists[name]:
            del lists[name]
        return self.url(lists=lists, page=1)


def _number(given: list[str], name: str, default: int) -> int:
    if not given:
        return default
    text = given[-1].strip()
    if not text.isdigit() or len(text) > 7:
        raise BadQuery(name, "must be a whole number")
    return int(text)


def stored(text: str | None) -> ListQuery | None:
    """A kept query string as a ListQuery, or None when there is none or it is no longer valid
    (e.g. a status code that was renamed): such a query is ignored."""
    if not text:
        return None
    try:
        return ListQuery.parse(parse_qs(text, keep_blank_values=False))
    except (BadQuery, ValueError):
        return None
