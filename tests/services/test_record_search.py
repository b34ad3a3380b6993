"""The record pickers' search: folded words, phone digits, and only what the user may see."""

import pytest

from crm.services.record_search import find_records
from tests.factories import make_company, make_contact, make_deal, make_user


@pytest.fixture
def request_ctx(ctx, data_app):
    with data_app.test_request_context():  # the kind labels are translated
        yield


def deal(owner, title):
    return make_deal(owner=owner, title=title)


def test_accents_case_and_phone_digits_find_the_record(request_ctx):
    me = make_user(role="sales")
    marie = make_contact("Marie", "Curié", phone="+33 6 12 34 56 78")
    lumiere = make_company("Boulangerie Lumière")
    fours = deal(me, "Fours Lumière")
    assert [key for key, _label, _kind in find_records(me, "lumiere")] == [
        f"company:{lumiere.id}",
        f"deal:{fours.id}",
    ]
    assert find_records(me, "CURIE")[0][:2] == (f"contact:{marie.id}", marie.name)
    assert find_records(me, "06 12 34")[0][0] == f"contact:{marie.id}"
    assert find_records(me, "m") == []  # one letter is not a search yet


def test_scopes_decide_what_a_picker_offers(request_ctx):
    rep, other_rep = make_user(role="sales"), make_user(role="sales")
    deal(other_rep, "Secret pilot")
    make_contact("Paul", "Secret")
    assert [kind for _key, _label, kind in find_records(rep, "secret")] == ["Contact"]
    assert find_records(rep, "secret", kinds=("deal",)) == []
    assert [kind for _k, _l, kind in find_records(make_user(role="admin"), "secret")] == [
        "Contact",
        "Deal",
    ]
    support = make_user(role="support")
    assert all(kind != "Deal" for _k, _l, kind in find_records(support, "secret"))
    technician = make_user(role="technician")
    assert find_records(technician, "secret") == []  # no intervention, no customer
