"""Code 128 barcodes (code set B) as inline SVG, for slips and book straps.

Code set B covers printable ASCII (space to "~"), which is all our request ids use. A symbol is:
the start code B (104), one symbol per character (its ASCII code minus 32), a check symbol
(start value plus each symbol's value times its position, modulo 103), and the stop pattern.
Each symbol is 11 modules wide: three bars and three spaces of 1 to 4 modules; the stop pattern
has a fourth bar (13 modules). A quiet zone of 10 modules is left on both sides.
"""

from __future__ import annotations

from markupsafe import Markup, escape

# The widths (bar, space, bar, space, bar, space) of symbol values 0..105 and the stop (106).
PATTERNS = (
    "212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 "
    "221312 231212 112232 122132 122231 113222 123122 123221 223211 221132 "
    "221231 213212 223112 312131 311222 321122 321221 312212 322112 322211 "
    "212123 212321 232121 111323 131123 131321 112313 132113 132311 211313 "
    "231113 231311 112133 112331 132131 113123 113321 133121 313121 211331 "
    "231131 213113 213311 213131 311123 311321 331121 312113 312311 332111 "
    "314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 "
    "112412 122114 122411 142112 142211 241211 221114 413111 241112 134111 "
    "111242 121142 121241 114212 124112 124211 411212 421112 421211 212141 "
    "214121 412121 111143 111341 131141 114113 114311 411113 411311 113141 "
    "114131 311141 411131 211412 211214 211232 2331112"
).split()
START_B = 104
STOP = 106
QUIET = 10  # modules of white on each side


def symbols(text: str) -> list[int]:
    """The symbol values of `text` in code set B: start, data, check; without the stop."""
    if not text:
        raise ValueError("nothing to encode")
    values = []
    for ch in text:
        if not " " <= ch <= "~":
            raise ValueError(f"{ch!r} is not in Code 128 set B")
        values.append(ord(ch) - 32)
    check = (START_B + sum(position * value for position, value in enumerate(values, start=1))) % 103
    return [START_B, *values, check]


def widths(text: str) -> list[int]:
    """Module widths, bar first and alternating bar/space, from the start code to the stop."""
    return [int(w) for value in [*symbols(text), STOP] for w in PATTERNS[value]]


def svg(text: str, module: float = 2.0, height: float = 60.0) -> Markup:
    """An inline SVG of `text` as Code 128 (one <rect> per bar), with the text under it. A value
    outside set B gives the text alone (nothing to scan, but nothing lost on paper)."""
    try:
        runs = widths(text)
    except ValueError:
        return Markup('<p class="barcode-text">{}</p>').format(text)
    total = sum(runs) + 2 * QUIET
    x = QUIET
    bars = []
    for index, run in enumerate(runs):
        if index % 2 == 0:  # even runs are bars, odd runs spaces
            bars.append(f'<rect x="{x * module:g}" y="0" width="{run * module:g}" height="{height:g}"/>')
        x += run
    width = total * module
    label = escape(text)
    return Markup(
        f'<figure class="barcode"><svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="Barcode {label}" width="{width:g}" height="{height:g}" viewBox="0 0 {width:g} {height:g}" '
        f'data-module="{module:g}" data-quiet="{QUIET}"><rect class="barcode-bg" x="0" y="0" width="{width:g}" '
        f'height="{height:g}" fill="#fff"/><g fill="#000">{"".join(bars)}</g></svg>'
        f'<figcaption class="barcode-text">{label}</figcaption></figure>')
