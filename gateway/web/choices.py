"""The choices the request form offers for fields whose ISO 18626 code lists are open.

Requested media, preferred send method and level of service travel as scheme/value pairs whose
lists are open (a partner may use other values; the API accepts any short text). The form
offers the values of the published lists (docs/request-fields.md names the elements they go to);
a value already stored that is not in the list is still offered, so editing keeps it.
"""

from __future__ import annotations

from ..api.fields import FORMATS as FORMAT_CODES

# (code sent to the partner, what staff read)
REQUESTED_MEDIA = (  # PreferredFormatList (2021: itemFormat)
    ("Printed", "Printed (book, journal)"), ("PaperCopy", "Paper copy"), ("PDF", "PDF"),
    ("LargePrint", "Large print"), ("Braille", "Braille"), ("Microform", "Microform"), ("CD", "CD"),
    ("CD-ROM", "CD-ROM"), ("DVD", "DVD"), ("Blu-ray", "Blu-ray"), ("VHS", "VHS"),
    ("CassetteTape", "Cassette tape"), ("Tape", "Tape"), ("LP", "LP"), ("MP3", "MP3"),
    ("Daisy-ROM", "Daisy-ROM"), ("JPEG", "JPEG"), ("TIFF", "TIFF"), ("Multimedia", "Multimedia"),
)
SEND_METHODS = (  # SentViaList (2021: deliveryMethod)
    ("Mail", "Mail"), ("Email", "Email"), ("URL", "URL (a link)"), ("FTP", "FTP"),
    ("ArticleExchange", "Article Exchange"), ("Ariel", "Ariel"), ("Odyssey", "Odyssey"),
)
SERVICE_LEVELS = (  # ServiceLevelList
    ("Normal", "Normal"), ("Standard", "Standard"), ("Rush", "Rush"), ("Express", "Express"),
    ("Urgent", "Urgent"), ("SecondaryMail", "Secondary mail"),
)
FORMATS = tuple((code, code) for code in FORMAT_CODES)  # Request format: Physical (loan) or Digital (copy)


def with_current(choices: tuple[tuple[str, str], ...], current: str | None) -> tuple[tuple[str, str], ...]:
    """The choices, plus the stored value when it is not one of them (so an edit keeps it)."""
    if current and current not in {code for code, _ in choices}:
        return (*choices, (current, current))
    return choices
