"""The merge screens: the link on a record, the picker, the side-by-side screen, the merge
itself; who may use them, and records out of reach."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.models import Activity, Company, Contact, Deal
from crm.permissions import POLICY
from tests.conftest import htmx_headers
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_incident,
    make_intervention,
    make_task,
    make_user,
)


@pytest.fixture
def pair(ctx):
    kept = make_contact("Marie", "Curie", email="marie@radium.fr", title="Chemist")
    other = make_contact("Marie", "Curie", email="m.curie@radium.fr", phone="06 12 34 56 78")
    make_activity(other, body="Asked for a quote")
    make_activity(other, body="Called back")
    make_deal(owner=make_user(), contact=other, title="Radium order")
    make_incident(other)
    make_task(make_user(), contact_id=other.id)
    db.session.commit()
    return kept, other


def test_the_link_shows_to_those_who_may_merge(as_role, pair):
    kept, _ = pair
    manager, _ = as_role("manager")
    assert f'href="/merge/contacts/{kept.id}"' in manager.get(f"/contacts/{kept.id}").text
    company = make_company("Radium SA")
    db.session.commit()
    assert f'href="/merge/companies/{company.id}"' in manager.get(f"/companies/{company.id}").text
    sales, _ = as_role("sales")
    assert "/merge/" not in sales.get(f"/contacts/{kept.id}").text


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("admin", True),
        ("manager", True),
        ("sales", False),
        ("support", False),
        ("technician", False),
    ],
)
def test_roles(as_role, pair, role, allowed):
    kept, other = pair
    other_id = other.id
    client, _ = as_role(role)
    urls = [f"/merge/contacts/{kept.id}", f"/merge/contacts/{kept.id}/with/{other.id}"]
    for url in urls:
        assert client.get(url).status_code == (200 if allowed else 403), url
    response = client.post(urls[1])
    assert response.status_code == (303 if allowed else 403)
    db.session.expire_all()
    assert (db.session.get(Contact, other_id) is None) == allowed


def test_the_picker_suggests_duplicates_first_and_searches(as_role, pair):
    kept, other = pair
    make_contact("Pierre", "Curie", email="pierre@radium.fr")
    db.session.commit()
    client, _ = as_role("manager")
    page = client.get(f"/merge/contacts/{kept.id}").text
    suggested = page.split("Likely duplicates")[1].split('id="merge-candidates"')[0]
    assert f"/merge/contacts/{kept.id}/with/{other.id}" in suggested
    assert "Pierre" not in suggested
    # The search box answers with the list alone, never the record itself.
    fragment = client.get(
        f"/merge/contacts/{kept.id}?q=curie", headers=htmx_headers("ul#merge-candidates")
    ).text
    assert "<html" not in fragment
    assert "Pierre Curie" in fragment and f"/with/{other.id}" in fragment
    assert f"/with/{kept.id}" not in fragment
    assert "Nothing matches" in client.get(f"/merge/contacts/{kept.id}?q=zzzz").text


def test_the_side_by_side_screen_shows_both_values_and_what_moves(as_role, pair):
    kept, other = pair
    client, _ = as_role("manager")
    page = client.get(f"/merge/contacts/{kept.id}/with/{other.id}").text
    assert "marie@radium.fr" in page and "m.curie@radium.fr" in page
    assert 'name="pick-email" value="kept"' in page
    # The phone: only the other has one, so it is picked by default.
    assert 'name="pick-phone" value="other" checked' in page
    assert "2 timeline entries" in page and "1 deal" in page and "1 incident" in page
    assert "1 task" in page
    assert f"/merge/contacts/{other.id}/with/{kept.id}" in page  # keep the other instead


def test_merging_opens_the_kept_record_with_both_histories(as_role, pair):
    kept, other = pair
    other_id = other.id
    deal = db.session.scalars(select(Deal).where(Deal.contact_id == other_id)).one()
    client, _ = as_role("manager")
    response = client.post(
        f"/merge/contacts/{kept.id}/with/{other_id}",
        data={"pick-title": "kept", "pick-email": "other", "pick-phone": "bogus"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/contacts/{kept.id}")
    db.session.expire_all()
    merged = db.session.get(Contact, kept.id)
    assert merged.email == "m.curie@radium.fr" and merged.phone == "06 12 34 56 78"
    assert merged.title == "Chemist"
    assert db.session.get(Deal, deal.id).contact_id == kept.id
    page = client.get(f"/contacts/{kept.id}").text
    assert "Asked for a quote" in page and "Called back" in page
    assert f"Merged with Marie Curie (#{other_id})" in page
    assert "now holds the history of both" in page  # the toast, flashed

    htmx = client.post(f"/merge/contacts/{kept.id}/with/{other_id}", headers=htmx_headers("body"))
    assert htmx.status_code == 404  # gone


def test_a_record_cannot_be_merged_with_itself(as_role, pair):
    kept, _ = pair
    client, _ = as_role("admin")
    for response in (
        client.get(f"/merge/contacts/{kept.id}/with/{kept.id}"),
        client.post(f"/merge/contacts/{kept.id}/with/{kept.id}"),
    ):
        assert response.status_code == 422
        assert "cannot be merged with itself" in response.text
    assert db.session.get(Contact, kept.id) is not None


def test_records_out_of_reach_give_404(as_role, pair, monkeypatch):
    kept, other = pair
    client, _ = as_role("admin")
    assert client.get(f"/merge/contacts/{kept.id}/with/999999").status_code == 404
    assert client.post(f"/merge/contacts/999999/with/{kept.id}").status_code == 404
    # A contact and a company are two kinds: ids of the other kind are unknown here.
    company = make_company()
    db.session.commit()
    assert client.get(f"/merge/contacts/{kept.id}/with/{company.id + 10**6}").status_code == 404

    # Were technicians allowed to merge, they would still reach only their customers.
    monkeypatch.setitem(POLICY, "records.merge", frozenset({"technician"}))
    technician, tech = as_role("technician")
    mine = make_contact("Booked", "Customer")
    make_intervention(contact=mine, technicians=[tech], start=datetime.now(UTC) + timedelta(days=1))
    db.session.commit()
    assert technician.get(f"/merge/contacts/{mine.id}").status_code == 200
    assert technician.get(f"/merge/contacts/{kept.id}").status_code == 404
    assert technician.post(f"/merge/contacts/{mine.id}/with/{other.id}").status_code == 404
    assert db.session.get(Contact, other.id) is not None and db.session.get(Contact, mine.id)


def test_companies_merge_from_their_page(as_role):
    client, _ = as_role("manager")
    kept = make_company("Radium SA")
    other = make_company("RADIUM sa", city="Paris")
    person = make_contact("Pierre", "Curie", company=other)
    db.session.commit()
    other_id = other.id
    page = client.get(f"/merge/companies/{kept.id}").text
    assert f"/merge/companies/{kept.id}/with/{other.id}" in page  # same name once folded
    page = client.get(f"/merge/companies/{kept.id}/with/{other.id}").text
    assert "1 contact" in page
    response = client.post(f"/merge/companies/{kept.id}/with/{other.id}")
    assert response.headers["Location"].endswith(f"/companies/{kept.id}")
    db.session.expire_all()
    assert db.session.get(Company, other_id) is None
    assert db.session.get(Contact, person.id).company_id == kept.id
    assert db.session.get(Company, kept.id).city == "Paris"
    assert (
        db.session.scalars(
            select(Activity).where(Activity.company_id == kept.id, Activity.kind == "system")
        )
        .one()
        .data["event"]
        == "merged"
    )


def _queries(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return int(response.headers["X-SQL-Queries"])


def test_the_screens_run_a_bounded_number_of_queries(as_role, pair):
    kept, other = pair
    client, _ = as_role("manager")
    make_contact("Marie", "Curie", email="first@radium.fr", company=make_company())
    db.session.commit()
    urls = [
        f"/merge/contacts/{kept.id}",
        f"/merge/contacts/{kept.id}?q=curie",
        f"/merge/contacts/{kept.id}/with/{other.id}",
    ]
    few = {url: _queries(client, url) for url in urls}
    for i in range(20):
        make_activity(other, body=f"Note {i}")
        make_deal(owner=make_user(), contact=other)
        make_contact("Marie", "Curie", email=f"marie{i}@radium.fr", company=make_company())
    db.session.commit()
    many = {url: _queries(client, url) for url in urls}
    assert many == few, (few, many)
    assert max(many.values()) <= 12, many
