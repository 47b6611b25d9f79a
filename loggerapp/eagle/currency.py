"""Currencies of price answers: ISO 4217 numeric codes (legacy `Currency`, hex) and letter codes (EAGLE-200's
`zigbee:PriceCurrency`, e.g. `USD`). The logger stores the number, as the legacy answer gives it, and shows
the letters; only currencies a study household could plausibly be billed in are named here."""

from __future__ import annotations

LETTERS_BY_NUMBER = {
    36: "AUD",
    124: "CAD",
    484: "MXN",
    554: "NZD",
    826: "GBP",
    840: "USD",
    978: "EUR",
}
NUMBER_BY_LETTERS = {letters: number for number, letters in LETTERS_BY_NUMBER.items()}


def currency_letters(number: int | None) -> str:
    """`840` -> `USD`; an unknown number is shown as itself, no currency as an empty string."""
    if number is None:
        return ""
    return LETTERS_BY_NUMBER.get(number, str(number))


def currency_number(text: str) -> int | None:
    """`USD` -> 840, `840` -> 840; anything else (empty, `invalid`, an unknown code) -> None."""
    text = text.strip()
    if text.isdigit() and len(text) <= 4:
        return int(text)
    return NUMBER_BY_LETTERS.get(text.upper())
