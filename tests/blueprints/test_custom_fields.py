"""Custom fields: the admin page, and the fields in the records' forms, pages and lists."""

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Company, Contact, CustomFieldDefinition, Deal, Incident
from crm.services import custom_fields as cf
from tests.conftest import htmx_headers
from tests.factories import make_company, make_contact, make_deal, make_incident


def _field(entity="contact", label="Language", field_type="choice", choices=None, required=False):
    if choices is None and field_type in ("choice", "multichoice"):
        choices = ["French", "English"]
    definition = cf.create_definition(entity, label, field_type, choices, required)
    db.session.commit()
    return definition.id


def _definitions(entity="contact"):
    db.session.expire_all()
    return db.session.scalars(
        select(CustomFieldDefinition)
        .where(CustomFieldDefinition.entity == entity)
        .order_by(CustomFieldDefinition.position)
    ).all()


# ---- the admin page ----------------------------------------------------------------------


def test_admin_adds_a_field_and_sees_it_in_its_entity_tab(as_role):
    client, _ = as_role("admin")
    page = client.get("/admin/fields?entity=deal")
    assert page.status_code == 200 and "aria-current=page>Deals</a>" in page.text
    response = client.post(
        "/admin/fields",
        data={
            "entity": "deal",
            "new-label": "Budget approved",
            "new-field_type": "boolean",
            "new-required": "y",
        },
        headers=htmx_headers("div#fields-panel"),
    )
    assert response.status_code == 200
    assert "Budget approved" in response.text and "<html" not in response.text
    assert "crm:toast" in response.headers["HX-Trigger"]
    (definition,) = _definitions("deal")
    assert (definition.key, definition.field_type, definition.required) == (
        "budget_approved",
        "boolean",
        True,
    )


def test_bad_definition_answers_422_with_the_inputs_kept(as_role):
    client, _ = as_role("admin")
    response = client.post(
        "/admin/fields",
        data={
            "entity": "contact",
            "new-label": "Size",
            "new-field_type": "choice",
            "new-choices": "",
        },
        headers=htmx_headers("div#fields-panel"),
    )
    assert response.status_code == 422
    assert 'value="Size"' in response.text and "Enter the choices, one per line." in response.text
    assert _definitions() == []


def test_admin_edits_a_field_in_place_and_a_type_change_with_values_is_refused(as_role):
    client, _ = as_role("admin")
    field_id = _field(field_type="text", label="Code")
    make_contact(custom_fields={"code": "A1"})
    db.session.commit()
    editor = client.get(
        f"/admin/fields/{field_id}/edit", headers=htmx_headers(f"li#field-def-{field_id}")
    )
    assert editor.status_code == 200 and 'value="Code"' in editor.text
    whole = client.get(f"/admin/fields/{field_id}/edit")
    assert "<html" in whole.text and 'value="Code"' in whole.text
    prefix = f"f{field_id}-"
    refused = client.post(
        f"/admin/fields/{field_id}",
        data={prefix + "label": "Code", prefix + "field_type": "number"},
        headers=htmx_headers(f"li#field-def-{field_id}"),
    )
    assert refused.status_code == 422 and "its type cannot change" in refused.text
    saved = client.post(
        f"/admin/fields/{field_id}",
        data={
            prefix + "label": "Customer code",
            prefix + "field_type": "text",
            prefix + "required": "y",
        },
        headers=htmx_headers(f"li#field-def-{field_id}"),
    )
    assert saved.status_code == 200 and "Customer code" in saved.text
    (definition,) = _definitions()
    assert (definition.label, definition.key, definition.required) == (
        "Customer code",
        "code",
        True,
    )


def test_admin_reorders_by_drop_and_by_arrows_and_deactivates(as_role):
    client, _ = as_role("admin")
    a, b, c = (_field(field_type="text", label=label) for label in ("A", "B", "C"))
    headers = htmx_headers("div#fields-panel")
    dropped = client.post(
        "/admin/fields/reorder",
        data={"entity": "contact", "ids": [str(c), str(a), str(b)]},
        headers=headers,
    )
    assert dropped.status_code == 200
    assert [d.label for d in _definitions()] == ["C", "A", "B"]
    client.post(f"/admin/fields/{b}/move", data={"direction": "up"}, headers=headers)
    assert [d.label for d in _definitions()] == ["C", "B", "A"]
    gone = client.post(f"/admin/fields/{b}/active", data={"active": "0"}, headers=headers)
    assert gone.status_code == 200 and "Deactivated fields" in gone.text
    assert [d.label for d in _definitions() if d.active] == ["C", "A"]
    client.post(f"/admin/fields/{b}/active", data={"active": "1"}, headers=headers)
    assert all(d.active for d in _definitions())


@pytest.mark.parametrize("role", ["technician", "support", "sales", "manager"])
def test_only_admins_manage_fields(as_role, role):
    client, _ = as_role(role)
    assert client.get("/admin/fields").status_code == 403
    response = client.post(
        "/admin/fields", data={"entity": "contact", "new-label": "X", "new-field_type": "text"}
    )
    assert response.status_code == 403
    assert _definitions() == []


# ---- create forms: required fields, 422 and nothing saved ---------------------------------


def test_required_field_blocks_the_contact_quick_add_with_422_and_saves_nothing(as_role):
    _field(label="Language", required=True)
    client, _ = as_role("sales")
    page = client.get("/contacts")
    assert 'name="cf-language"' in page.text
    data = {"first_name": "Anne", "last_name": "Roy", "email": "anne@example.com"}
    refused = client.post("/contacts", data=data, headers=htmx_headers("form#quick-add"))
    assert refused.status_code == 422
    assert "This field is required." in refused.text and 'value="anne@example.com"' in refused.text
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0

    wrong = client.post(
        "/contacts", data={**data, "cf-language": "German"}, headers=htmx_headers("form#quick-add")
    )
    assert wrong.status_code == 422 and "Choose one of the proposed values." in wrong.text
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0

    saved = client.post(
        "/contacts", data={**data, "cf-language": "French"}, headers=htmx_headers("form#quick-add")
    )
    assert saved.status_code == 200
    contact = db.session.scalars(select(Contact)).one()
    assert contact.custom_fields == {"language": "French"}


def test_optional_fields_wait_for_the_record_page(as_role):
    _field(label="Notes", field_type="text")
    client, _ = as_role("sales")
    assert 'name="cf-notes"' not in client.get("/contacts").text


def test_required_fields_on_company_deal_and_incident_creation(as_role):
    _field(entity="company", label="Contract number", field_type="text", required=True)
    _field(entity="deal", label="Budget approved", field_type="boolean", required=True)
    _field(entity="incident", label="Serial number", field_type="text", required=True)
    client, user = as_role("manager")
    contact = make_contact(owner=user)
    make_deal()  # a pipeline to create deals in
    db.session.commit()

    refused = client.post(
        "/companies", data={"name": "Acme"}, headers=htmx_headers("form#company-quick-add")
    )
    assert refused.status_code == 422 and 'name="cf-contract_number"' in refused.text
    assert client.post(
        "/companies", data={"name": "Acme", "cf-contract_number": "C-12"}
    ).status_code in (200, 303)
    company = db.session.scalars(select(Company).where(Company.name == "Acme")).one()
    assert company.custom_fields == {"contract_number": "C-12"}

    deals_before = db.session.scalar(select(func.count()).select_from(Deal))
    refused = client.post(
        "/deals", data={"title": "Boilers"}, headers=htmx_headers("form#deal-quick-add")
    )
    assert refused.status_code == 422 and 'value="Boilers"' in refused.text
    assert db.session.scalar(select(func.count()).select_from(Deal)) == deals_before
    client.post("/deals", data={"title": "Boilers", "cf-budget_approved": "oui"})
    deal = db.session.scalars(select(Deal).where(Deal.title == "Boilers")).one()
    assert deal.custom_fields == {"budget_approved": True}

    data = {
        "subject": "Leak",
        "customer": f"contact:{contact.id}",
        "kind": "technical",
        "priority": "normal",
        "status": "new",
        "channel": "phone",
    }
    refused = client.post("/incidents", data=data, headers=htmx_headers("form#incident-form"))
    assert refused.status_code == 422 and 'name="cf-serial_number"' in refused.text
    assert db.session.scalar(select(func.count()).select_from(Incident)) == 0
    quick = client.post(
        "/incidents",
        data={**data, "form": "quick"},
        headers=htmx_headers("form#incident-quick-add"),
    )
    assert quick.status_code == 422 and "This field is required." in quick.text
    client.post("/incidents", data={**data, "cf-serial_number": "SN-1"})
    incident = db.session.scalars(select(Incident)).one()
    assert incident.custom_fields == {"serial_number": "SN-1"}


# ---- record pages: shown in order, edited in place ----------------------------------------


def test_contact_page_shows_the_fields_and_edits_one_in_place(as_role):
    _field(label="Language")
    _field(label="Seats", field_type="number")
    client, _ = as_role("sales")
    contact = make_contact(custom_fields={"seats": 1200})
    db.session.commit()
    page = client.get(f"/contacts/{contact.id}")
    assert page.text.index("Language") < page.text.index("Seats") and "1,200" in page.text

    url = f"/contacts/{contact.id}/custom/seats"
    editor = client.get(url + "/edit", headers=htmx_headers("div#cf-row-seats"))
    assert editor.status_code == 200 and 'name="cf-seats"' in editor.text
    refused = client.post(url, data={"cf-seats": "lots"}, headers=htmx_headers("form#cf-row-seats"))
    assert refused.status_code == 422 and 'value="lots"' in refused.text
    saved = client.post(
        url, data={"cf-seats": "1 234,5"}, headers=htmx_headers("form#cf-row-seats")
    )
    assert saved.status_code == 200 and "1,234.5" in saved.text
    db.session.expire_all()
    assert db.session.get(Contact, contact.id).custom_fields == {"seats": 1234.5}
    assert client.get(f"/contacts/{contact.id}/custom/nope/edit").status_code == 404
    # Without htmx (a new tab, no JavaScript): the whole page with that field's editor open.
    whole = client.get(url + "/edit")
    assert whole.status_code == 200 and "<html" in whole.text and 'name="cf-seats"' in whole.text


def test_a_technician_cannot_edit_a_contact_field(as_role):
    _field(label="Language")
    client, _ = as_role("technician")
    contact = make_contact()
    db.session.commit()
    response = client.post(
        f"/contacts/{contact.id}/custom/language", data={"cf-language": "French"}
    )
    assert response.status_code in (403, 404)


def test_company_and_deal_edit_forms_carry_the_fields(as_role):
    _field(entity="company", label="Tier", field_type="choice", choices=["Gold", "Silver"])
    _field(entity="deal", label="Tags", field_type="multichoice", choices=["Solar", "Wind"])
    client, user = as_role("manager")
    company = make_company(name="Acme")
    deal = make_deal(owner=user)
    db.session.commit()

    assert 'name="cf-tier"' in client.get(f"/companies/{company.id}/edit").text
    refused = client.post(
        f"/companies/{company.id}", data={"name": "Acme", "stage": "lead", "cf-tier": "Bronze"}
    )
    assert refused.status_code == 422
    saved = client.post(
        f"/companies/{company.id}",
        data={"name": "Acme", "stage": "lead", "cf-tier": "Gold"},
        headers=htmx_headers("aside#company-details"),
    )
    assert saved.status_code == 200 and "Gold" in saved.text
    page = client.get(f"/deals/{deal.id}")
    assert 'name="cf-tags"' in page.text
    form = {
        "version": deal.version_id,
        "title": deal.title,
        "currency": "EUR",
        "owner": str(user.id),
        "cf-tags": ["Wind", "Solar"],
    }
    response = client.post(f"/deals/{deal.id}", data=form, headers=htmx_headers("div#deal-page"))
    assert response.status_code == 200, response.text
    db.session.expire_all()
    assert db.session.get(Company, company.id).custom_fields == {"tier": "Gold"}
    assert db.session.get(Deal, deal.id).custom_fields == {"tags": ["Solar", "Wind"]}


def test_incident_page_edits_a_field_in_place(as_role):
    _field(entity="incident", label="Serial number", field_type="text")
    client, _ = as_role("support")
    incident = make_incident()
    db.session.commit()
    url = f"/incidents/{incident.id}/custom/serial_number"
    assert "Serial number" in client.get(f"/incidents/{incident.id}").text
    saved = client.post(
        url, data={"cf-serial_number": "SN-9"}, headers=htmx_headers("form#cf-row-serial_number")
    )
    assert saved.status_code == 200 and "SN-9" in saved.text
    db.session.expire_all()
    assert db.session.get(Incident, incident.id).custom_fields == {"serial_number": "SN-9"}


# ---- list filters, kept in the address ------------------------------------------------------


def test_list_filters_by_choice_and_yes_no_in_the_address(as_role):
    _field(label="Language")
    _field(entity="company", label="Key account", field_type="boolean")
    _field(entity="deal", label="Budget approved", field_type="boolean")
    _field(entity="incident", label="Warranty", field_type="boolean")
    client, user = as_role("manager")
    make_contact("Fanny", "Fr", custom_fields={"language": "French"})
    make_contact("Eddie", "En", custom_fields={"language": "English"})
    make_company(name="Keyco", custom_fields={"key_account": True})
    make_company(name="Smallco")
    make_deal(title="Approved deal", owner=user, custom_fields={"budget_approved": True})
    make_deal(title="Pending deal", owner=user)
    make_incident(subject="Under warranty", custom_fields={"warranty": True})
    make_incident(subject="Out of warranty", custom_fields={"warranty": False})
    db.session.commit()

    page = client.get("/contacts?cf_language=French")
    assert "Fanny" in page.text and "Eddie" not in page.text
    assert '<option value="French" selected' in page.text
    rows = client.get("/contacts?cf_language=English", headers=htmx_headers("tbody#contact-rows"))
    assert "Eddie" in rows.text and "Fanny" not in rows.text
    everyone = client.get("/contacts?cf_language=Klingon")  # not a choice: no filter
    assert "Eddie" in everyone.text and "Fanny" in everyone.text

    companies = client.get("/companies?cf_key_account=yes").text
    assert "Keyco" in companies and "Smallco" not in companies
    deals = client.get("/deals/list?cf_budget_approved=yes").text
    assert "Approved deal" in deals and "Pending deal" not in deals
    incidents = client.get("/incidents?view=all&cf_warranty=no").text
    assert "Out of warranty" in incidents and "Under warranty" not in incidents


def test_keyset_pagination_keeps_the_custom_filter(as_role, app):
    _field(label="Language")
    client, _ = as_role("sales")
    size = app.config["PAGE_SIZE"]
    for i in range(size + 3):
        make_contact("French", f"N{i:03}", custom_fields={"language": "French"})
        make_contact("English", f"N{i:03}", custom_fields={"language": "English"})
    db.session.commit()
    first = client.get("/contacts?cf_language=French").text
    assert "cf_language=French" in first and "cursor=" in first
    cursor_url = first.split('id="load-more" hx-get="')[1].split('"')[0].replace("&amp;", "&")
    rest = client.get(cursor_url, headers=htmx_headers("tr#load-more")).text
    assert rest.count("<tr") >= 3 and "English" not in rest


# ---- query counts --------------------------------------------------------------------------


def test_fields_are_read_once_per_request_whatever_their_number(as_role):
    for i in range(8):
        _field(label=f"Choice {i}")
    client, _ = as_role("sales")
    for _ in range(5):
        make_contact(custom_fields={"choice_0": "French"})
    db.session.commit()
    contact_id = db.session.scalars(select(Contact.id)).first()
    few = {
        u: int(client.get(u).headers["X-SQL-Queries"])
        for u in ("/contacts", f"/contacts/{contact_id}")
    }
    for i in range(8, 20):
        _field(label=f"Choice {i}")
    many = {
        u: int(client.get(u).headers["X-SQL-Queries"])
        for u in ("/contacts", f"/contacts/{contact_id}")
    }
    assert few == many, (few, many)
    filtered = int(client.get("/contacts?cf_choice_0=French").headers["X-SQL-Queries"])
    assert filtered == many["/contacts"]
