"""Normalized keys used to search and to detect duplicates."""

import re
import unicodedata

_NON_DIGIT = re.compile(r"\D")
_SPACES = re.compile(r"\s+")


def fold(text: str | None) -> str:
    """Lowercase without accents, so that "Hélène" matches "helene"."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SPACES.sub(" ", stripped.casefold()).strip()


def phone_key(phone: str | None) -> str:
    """The last nine digits: "+33 6 12 34 56 78" and "06 12 34 56 78" agree."""
    digits = _NON_DIGIT.sub("", phone or "")
    return digits[-9:] if len(digits) >= 9 else digits


def email_key(email: str | None) -> str:
    return (email or "").strip().lower()
