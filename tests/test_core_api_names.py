"""Each staff event knows its API name: every staff key of both tables has one, in kebab-case,
and no event names a key its table lacks."""

import re

from gateway.core import BORROWING_API_NAMES
from gateway.core.borrowing.table import MACHINE as BORROWING
from gateway.core.lending import LENDING_API_NAMES
from gateway.core.lending.table import MACHINE as LENDING


def test_every_staff_key_has_an_api_name():
    for machine, names in ((BORROWING, BORROWING_API_NAMES), (LENDING, LENDING_API_NAMES)):
        assert set(machine.staff_keys) - set(names) == set(), "a staff key without an API name"
        assert set(names) - set(machine.staff_keys) == set(), "an API name for a key the table lacks"
        for key, name in names.items():
            assert re.fullmatch(r"[a-z]+(-[a-z]+)*", name), key


def test_the_action_routes_speak_the_events_names():
    from gateway.api import borrowing, lending

    for actions in (borrowing.ACTIONS, lending.ACTIONS):
        for name, (event_type, _fields, _parse) in actions.items():
            assert name == event_type.api, event_type
