"""Reference extraction from untrusted message text (no ERP needed)."""

from __future__ import annotations

from assistant.erp.context import extract_references


def test_finds_invoice_and_po_numbers() -> None:
    invoices, orders = extract_references(
        "Re: unpaid invoice CON-7781",
        "Our invoice no. 2 is overdue, and PO 1043 / purchase order #1040 too. Ref INV-2201.",
    )
    assert invoices == ["CON-7781", "2", "INV-2201"]
    assert orders == ["1043", "1040"]


def test_words_are_not_references() -> None:
    invoices, orders = extract_references("Invoice is attached", "The invoice was paid.")
    assert invoices == [] and orders == []


def test_bounded() -> None:
    text = " ".join(f"ABC-{n:04d}" for n in range(50))
    invoices, _ = extract_references(text)
    assert len(invoices) == 8
