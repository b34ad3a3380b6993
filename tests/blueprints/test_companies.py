"""Companies: list, quick-add, the company page with its people and timeline."""

import re

from crm.extensions import db
from crm.models import Company, Contact
from tests.conftest import htmx_headers
from tests.factories import make_activity, make_company, make_contact


def test_list_search_and_contact_counts(as_role):
    client, _ = as_role("sales")
    acme = make_company("Acme Industries")
    make_company("Boulangerie Éclair")
    make_contact(company=acme)
    make_contact(company=acme)
    db.session.commit()
    page = client.get("/companies?q=eclair", headers=htmx_headers("tbody#company-rows")).text
    assert "Boulangerie Éclair" in page and "Acme" not in page
    full = client.get("/companies").text
    assert re.search(r"Acme Industries</a></td>.*?<td>2</td>", full, re.S)


def test_quick_add_refuses_a_duplicate_name(as_role):
    client, _ = as_role("sales")
    make_company("Acme")
    db.session.commit()
    response = client.post(
        "/companies", data={"name": "ACME"}, headers=htmx_headers("form#company-quick-add")
    )
    assert response.status_code == 422
    assert "This company already exists." in response.text
    created = client.post(
        "/companies", data={"name": "Initech", "website": "https://initech.example"}
    )
    assert created.status_code == 303
    assert db.session.scalars(db.select(Company).where(Company.name == "Initech")).one().website


def test_company_page_lists_people_and_their_timeline(as_role):
    client, me = as_role("sales")
    acme = make_company("Acme")
    anne = make_contact("Anne", "Acme", company=acme)
    make_activity(anne, "call", body="Called Anne at Acme", author=me)
    db.session.commit()
    page = client.get(f"/companies/{acme.id}").text
    assert "Anne Acme" in page and "Called Anne at Acme" in page


def test_edit_company_and_keep_contacts_searchable_by_the_new_name(as_role):
    client, _ = as_role("sales")
    acme = make_company("Acme")
    make_contact("Anne", "Zed", company=acme)
    db.session.commit()
    form = client.get(f"/companies/{acme.id}/edit", headers=htmx_headers("aside#company-details"))
    assert form.status_code == 200 and "<html" not in form.text
    bad = client.post(
        f"/companies/{acme.id}",
        data={"name": "", "stage": "lead"},
        headers=htmx_headers("aside#company-details"),
    )
    assert bad.status_code == 422
    saved = client.post(
        f"/companies/{acme.id}",
        data={"name": "Globex", "stage": "customer", "employees": "40", "city": " Lyon "},
        headers=htmx_headers("aside#company-details"),
    )
    assert saved.status_code == 200
    db.session.expire_all()
    company = db.session.get(Company, acme.id)
    assert (company.name, company.stage, company.employees, company.city) == (
        "Globex",
        "customer",
        40,
        "Lyon",
    )
    assert "globex" in db.session.scalars(db.select(Contact)).one().search_text


def test_adding_a_person_from_the_company_page_keeps_the_company(as_role):
    client, _ = as_role("sales")
    acme = make_company("Acme")
    db.session.commit()
    page = client.get(f"/companies/{acme.id}").text
    assert 'name="keep_company"' in page and 'value="Acme"' in page
    response = client.post(
        "/contacts",
        data={
            "first_name": "New",
            "email": "new@acme.example",
            "company": "Acme",
            "keep_company": "1",
        },
        headers=htmx_headers("form#quick-add"),
    )
    assert response.status_code == 200
    assert 'value="Acme"' in response.text  # ready for the next colleague


def test_a_big_company_shows_its_first_people_and_the_next_as_one_scrolls(app, as_role):
    client, _ = as_role("sales")
    acme = make_company("Acme")
    make_contact("Other", "Person")
    for i in range(51):
        make_contact(f"P{i:02d}", "Acme", company=acme)
    db.session.commit()
    size = app.config["PAGE_SIZE"]

    def people(html: str) -> list[str]:
        return re.findall(r'<a href="/contacts/\d+">(P\d\d) Acme</a>', html)

    page = client.get(f"/companies/{acme.id}").text
    shown = people(page)
    assert shown == [f"P{i:02d}" for i in range(size)]
    assert f'href="/contacts?company={acme.id}"' in page and "Other Person" not in page
    # The next people come from the contact list filtered on the company, a page at a time.
    while 'id="load-more"' in page:
        more = re.search(r'<tr id="load-more" hx-get="([^"]+)"', page).group(1)
        assert f"company={acme.id}" in more
        page = client.get(more.replace("&amp;", "&"), headers=htmx_headers("tr#load-more")).text
        shown += people(page)
    assert shown == [f"P{i:02d}" for i in range(51)]
