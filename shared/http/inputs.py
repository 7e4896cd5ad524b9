"""Bounded input types for every request body field, query and path parameter.

Each HTTP input is one of these (or an enum/literal), so bad input is a problem+json 422
naming the field, never a database error: text refuses NUL (PostgreSQL text cannot hold it)
and has a length, numbers have the range of the column they end up in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from annotated_types import Ge, Le
from pydantic import AfterValidator, AwareDatetime, StringConstraints

INT32_MAX = 2**31 - 1  # PostgreSQL integer
INT64_MAX = 2**63 - 1  # PostgreSQL bigint
# Counts of units: well inside integer, so sums of a few stay inside it too.
UNITS_MAX = 1_000_000_000
# Ages and windows in seconds: ten years is more than any queue holds.
SECONDS_MAX = 10 * 365 * 24 * 3600.0
# Rows skipped by offset pagination: far beyond a useful page, cheap to refuse.
OFFSET_MAX = 1_000_000


NUL_REFUSED = "must not contain the NUL character (U+0000)"


def refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(NUL_REFUSED)
    return value


# Last in an Annotated text type: constraints placed after a validator are not applied as
# string constraints (strip_whitespace is silently skipped), so they come first.
NoNul = AfterValidator(refuse_nul)
# Any text, NUL refused; give it a length where it is used (Field/Query max_length) or use
# one of the bounded ones below.
Text = Annotated[str, NoNul]
# Ids and names we look up or store: keys, customer ids, rule names, references.
ShortText = Annotated[str, StringConstraints(max_length=200), NoNul]
# Free text people write: notes, reasons, comments.
LongText = Annotated[str, StringConstraints(max_length=5000), NoNul]
# SKUs, warehouses, carriers, channels: the identifier shape every service shares.
IDENTIFIER = r"^[A-Za-z0-9._-]+$"
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=IDENTIFIER)]

# annotated_types, not Field: these also go into Query(...) and Path(...) parameters.
Units = Annotated[int, Ge(0), Le(UNITS_MAX)]
RowId = Annotated[int, Ge(1), Le(INT64_MAX)]
Offset = Annotated[int, Ge(0), Le(OFFSET_MAX)]
Seconds = Annotated[float, Ge(0), Le(SECONDS_MAX)]  # refuses inf and NaN too
ByteSize = Annotated[int, Ge(0), Le(INT64_MAX)]


def within_years(value: datetime) -> datetime:
    # By year, not by comparing instants: comparing near datetime.max/min with another offset
    # overflows. Arithmetic on what passes (a window of days, UTC) stays inside datetime.
    if not 1970 <= value.year <= 9000:
        raise ValueError("must be a time between the years 1970 and 9000")
    return value


# A time a request names (a window's end, a release time, when a scan happened).
Instant = Annotated[datetime, AfterValidator(within_years)]
AwareInstant = Annotated[AwareDatetime, AfterValidator(within_years)]
