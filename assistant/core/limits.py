"""Bounds on what callers may send: every number, size and depth that enters has a ceiling.

A database integer column is 64-bit signed and Python's ``timedelta`` ends at 999,999,999
days; a value past either used to surface as a 500 (``OverflowError``) instead of a 422.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import Query
from pydantic import Field

#: Largest value of a signed 64-bit column: the ceiling of every offset and cursor.
MAX_INT64 = 2**63 - 1
#: Ten years: more than any real "older than" filter, far below timedelta's end.
MAX_AGE_SECONDS = 10 * 366 * 24 * 3600
#: ERP amounts: fourteen integer digits and six decimals fit every currency and column.
MAX_AMOUNT = Decimal("99999999999999.999999")
AMOUNT_MAX_DIGITS = 20
AMOUNT_DECIMAL_PLACES = 6

#: An offset into a listing (a page start), as a query parameter.
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_INT64, description="Rows to skip.")]

#: A money amount (positive or negative), bounded in size and precision.
Amount = Annotated[
    Decimal,
    Field(
        ge=-MAX_AMOUNT,
        le=MAX_AMOUNT,
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        allow_inf_nan=False,
    ),
]
#: A money amount that cannot be negative, as a query parameter.
MinAmountQuery = Annotated[
    Decimal | None,
    Query(
        ge=0,
        le=MAX_AMOUNT,
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        allow_inf_nan=False,
        description="Only amounts at or above this.",
    ),
]
