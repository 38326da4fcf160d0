"""The borrowing list's query string (web/list_query.py) and the staff views kept in the database
(service/views.py, store/views.py, migration 0013) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from multidict import MultiDict
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.service.views import ViewError, ViewService
from gateway.service.writer import Writer
from gateway.web.list_query import BadQuery, ListQuery, stored


def test_a_query_is_written_back_in_one_order_without_defaults():
    chosen = ListQuery.parse(MultiDict([("sort", "title"), ("status", "LOCATE_FAILED"), ("q", "  river   war "),
                                        ("has_notes", "true"), ("order", "desc"), ("page", "3"),
                                        ("status", "CREATED"), ("unknown", "x")]))
    assert chosen.query_string() == "q=river+war&status=LOCATE_FAILED&status=CREATED&has_notes=true&sort=title&page=3"
    assert chosen.query_string(with_page=False) == \
        "q=river+war&status=LOCATE_FAILED&status=CREATED&has_notes=true&sort=title"
    filters = chosen.filters()
    assert filters.status == ["LOCATE_FAILED", "CREATED"] and filters.has_notes is True
    assert filters.q == ["river", "war"]
    page = chosen.page_of()
    assert (page.sort, page.limit, page.offset) == ("-title", 25, 50)
    assert ListQuery.parse(MultiDict()).query_string() == ""


def test_facet_links_add_and_remove_one_value_and_go_back_to_page_one():
    chosen = ListQuery.parse(MultiDict([("pickup_location", "Main desk"), ("page", "2")]))
    assert chosen.toggle_url("pickup_location", "Law library") == \
        "/borrowing?pickup_location=Main+desk&pickup_location=Law+library"
    assert chosen.toggle_url("pickup_location", "Main desk") == "/borrowing?q="  # not bare: that restores
    assert chosen.chosen("pickup_location", "Main desk") and not chosen.chosen("pickup_location", "Law library")
    assert chosen.toggle_url("needs_attention", True) == "/borrowing?pickup_location=Main+desk&needs_attention=true"
    flagged = ListQuery.parse(MultiDict([("needs_attention", "true")]))
    assert flagged.chosen("needs_attention", True) and not flagged.chosen("needs_attention", False)
    assert flagged.toggle_url("needs_attention", True) == "/borrowing?q="
    assert flagged.toggle_url("needs_attention", False) == "/borrowing?needs_attention=false"


@pytest.mark.parametrize("pairs, field", [
    ([("status", "NOT_A_STATUS")], "status"), ([("sort", "colour")], "sort"), ([("order", "up")], "order"),
    ([("page", "0")], "page"), ([("page", "x")], "page"), ([("limit", "7")], "limit"),
    ([("has_costs", "maybe")], "has_costs"), ([("format", "Vinyl")], "format"), ([("q", "x" * 201)], "q"),
])
def test_bad_values_are_refused_with_the_parameter_named(pairs, field):
    with pytest.raises(BadQuery) as caught:
        ListQuery.parse(MultiDict(pairs))
    assert caught.value.field == field


def test_a_stored_query_that_is_no_longer_valid_is_ignored():
    assert stored("status=GONE_STATUS") is None
    assert stored("") is None and stored(None) is None
    assert stored("status=CREATED&sort=title").query_string() == "status=CREATED&sort=title"


@pytest.fixture
async def views(engine: AsyncEngine) -> AsyncIterator[ViewService]:
    service = ViewService(Writer(engine))
    yield service
    await service.writer.close()


async def test_the_last_list_query_is_kept_per_person(views: ViewService):
    assert await views.list_query("ann") is None
    await views.remember_list_query("ann", "status=CREATED")
    await views.remember_list_query("ann", "status=LOCATE_FAILED")
    await views.remember_list_query("bob", "")
    assert await views.list_query("ann") == "status=LOCATE_FAILED"
    assert await views.list_query("bob") == ""
    with pytest.raises(ViewError):
        await views.remember_list_query("ann", "q=" + "x" * 2000)


async def test_named_views_are_saved_replaced_listed_and_deleted_per_person(views: ViewService):
    assert await views.save_view("ann", "  Needs   attention ", "needs_attention=true") is True
    assert await views.save_view("ann", "Digital", "format=Digital") is True
    assert await views.save_view("ann", "Needs attention", "needs_attention=true&sort=title") is False
    assert await views.save_view("bob", "Digital", "format=Physical") is True
    ann = await views.views("ann")
    assert [(v.name, v.query) for v in ann] == [("Digital", "format=Digital"),
                                                 ("Needs attention", "needs_attention=true&sort=title")]
    assert (await views.view("ann", ann[0].id)).query == "format=Digital"
    bobs = await views.views("bob")
    assert await views.view("ann", bobs[0].id) is None
    assert await views.delete_view("ann", bobs[0].id) is False  # not ann's
    assert await views.delete_view("ann", ann[0].id) is True
    assert [v.name for v in await views.views("ann")] == ["Needs attention"]
    for bad in ("", "   ", "x" * 101):
        with pytest.raises(ViewError):
            await views.save_view("ann", bad, "")
