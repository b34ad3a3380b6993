from datetime import UTC, datetime

import pytest

from crm.models.search_keys import email_key, fold, phone_key
from crm.services.keyset import decode_cursor, encode_cursor
from crm.services.text_search import search_terms


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Hélène", "helene"),
        ("  ÉCLAIR  Boulangerie ", "eclair boulangerie"),
        ("Straße", "strasse"),
        (None, ""),
    ],
)
def test_fold(raw, folded):
    assert fold(raw) == folded


@pytest.mark.parametrize(
    ("phone", "key"),
    [
        ("+33 6 12 34 56 78", "612345678"),
        ("06.12.34.56.78", "612345678"),
        ("0033612345678", "612345678"),
        ("112", "112"),
        (None, ""),
    ],
)
def test_phone_key_matches_national_and_international_forms(phone, key):
    assert phone_key(phone) == key


def test_email_key():
    assert email_key("  Jean.Dupont@Example.COM ") == "jean.dupont@example.com"


@pytest.mark.parametrize(
    ("typed", "terms"),
    [
        ("06 12 34", ["61234"]),
        ("+33 6 12", ["33612"]),
        ("hel dup", ["hel", "dup"]),
        ("Éclair", ["eclair"]),
        ("12", ["12"]),
    ],
)
def test_search_terms(typed, terms):
    assert search_terms(typed) == terms


@pytest.mark.parametrize(
    "value,kind",
    [("dupont jean", "str"), (3, "int"), (datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "datetime")],
)
def test_cursor_round_trip(value, kind):
    assert decode_cursor(encode_cursor(value, 42), kind) == (value, 42)


@pytest.mark.parametrize("cursor", ["", "garbage", "W10", encode_cursor(["list"], 1)])
def test_bad_cursors_decode_to_none(cursor):
    assert decode_cursor(cursor, "str") is None
