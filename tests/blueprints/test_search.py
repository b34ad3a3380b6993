from crm.extensions import db
from tests.conftest import htmx_headers
from tests.factories import make_company, make_contact


def test_global_search_suggests_contacts_and_companies(as_role):
    client, _ = as_role("support")
    make_contact("Hélène", "Martin")
    make_company("Martin & Fils")
    db.session.commit()
    response = client.get("/search?q=martin", headers=htmx_headers("div#search-suggestions"))
    assert response.status_code == 200
    assert "<html" not in response.text
    assert "Hélène Martin" in response.text and "Martin &amp; Fils" in response.text


def test_search_page_works_without_javascript(as_role):
    client, _ = as_role("sales")
    make_contact("Hélène", "Martin")
    db.session.commit()
    page = client.get("/search?q=helene")
    assert "<html" in page.text and "Hélène Martin" in page.text


def test_technicians_find_nothing_they_may_not_open(as_role):
    client, _ = as_role("technician")
    make_contact("Hélène", "Martin")
    db.session.commit()
    response = client.get("/search?q=martin", headers=htmx_headers("div#search-suggestions"))
    assert "Hélène" not in response.text
