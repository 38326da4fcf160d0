"""The Code 128 (set B) encoder of the slips: checked against a symbol worked out by hand from
the Code 128 table, and read back from its SVG."""

from __future__ import annotations

import re

import pytest

from gateway.web import barcode
from support.staff_pages import decode_code128


def test_ill_42_by_hand():
    # Set B values are ASCII - 32: I=41, L=44, L=44, '-'=13, '4'=20, '2'=18. Check symbol:
    # (104 + 1*41 + 2*44 + 3*44 + 4*13 + 5*20 + 6*18) mod 103 = 625 mod 103 = 7.
    assert barcode.symbols("ILL-42") == [104, 41, 44, 44, 13, 20, 18, 7]
    # Bar/space widths of those values in the Code 128 table, then the stop pattern.
    by_hand = "211214" "231311" "132131" "132131" "122132" "221231" "223211" "122312" "2331112"
    assert barcode.widths("ILL-42") == [int(c) for c in by_hand]
    assert sum(barcode.widths("ILL-42")) == 8 * 11 + 13


def test_the_table_is_well_formed():
    assert len(barcode.PATTERNS) == 107 and len(set(barcode.PATTERNS)) == 107
    for value, pattern in enumerate(barcode.PATTERNS[:106]):
        assert len(pattern) == 6 and sum(map(int, pattern)) == 11, value
        # bars are an even number of modules, spaces odd (Code 128's parity rule)
        assert sum(map(int, pattern[0::2])) % 2 == 0, value
    assert barcode.PATTERNS[barcode.STOP] == "2331112"


def test_svg_has_one_rect_per_bar_and_reads_back():
    svg = str(barcode.svg("BR-1A2B3C", module=2))
    rects = re.findall(r'<rect x="([\d.]+)" y="0" width="([\d.]+)"', svg.split("<g")[1])
    assert len(rects) == 3 * 11 + 4  # start, 9 characters, check: 3 bars each; the stop has 4
    assert decode_code128([(float(x), float(w)) for x, w in rects], 2.0) == "BR-1A2B3C"
    assert rects[0][0] == str(barcode.QUIET * 2)  # the quiet zone before the first bar
    assert '<figcaption class="barcode-text">BR-1A2B3C</figcaption>' in svg


def test_text_is_escaped_and_outside_set_b_is_shown_as_text():
    svg = str(barcode.svg('<x y="1">'))
    assert "<x " not in svg and "&lt;x y=&#34;1&#34;&gt;" in svg
    plain = str(barcode.svg("Åsa"))
    assert "<svg" not in plain and "Åsa" in plain
    with pytest.raises(ValueError):
        barcode.symbols("")
