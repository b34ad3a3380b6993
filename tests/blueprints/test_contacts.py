"""The contacts list, quick-add, the 360° page, inline edits, stages, the timeline."""

import re

import pytest

from crm.extensions import db
from crm.models import Activity, Contact
from tests.conftest import htmx_headers
from tests.factories import make_activity, make_company, make_contact, make_user


def _names(html: str) -> list[str]:
    return re.findall(r'<a href="/contacts/\d+">([^<]+)</a>', html)


@pytest.fixture
def rep(as_role):
    return as_role("sales")


class TestList:
    def test_search_matches_name_email_phone_and_company_without_accents(self, rep):
        client, _ = rep
        acme = make_company("Boulangerie Éclair")
        make_contact(
            "Hélène", "Dupont", email="helene@dupont.fr", phone="+33 6 12 34 56 78", company=acme
        )
        make_contact("Marc", "Leroy", email="marc@leroy.fr")
        db.session.commit()
        for query in ("helene", "DUPONT", "dupont.fr", "0612345678", "eclair", "hel dup"):
            assert _names(client.get("/contacts", query_string={"q": query}).text) == [
                "Hélène Dupont"
            ], query
        assert _names(client.get("/contacts?q=nobody").text) == []

    def test_active_search_answers_only_the_rows(self, rep):
        client, _ = rep
        make_contact("Hélène", "Dupont")
        db.session.commit()
        response = client.get("/contacts?q=hel", headers=htmx_headers("tbody#contact-rows"))
        assert response.status_code == 200
        assert "<html" not in response.text and "<tr" in response.text
        assert _names(response.text) == ["Hélène Dupont"]

    def test_filters_by_stage_owner_and_tag(self, rep):
        client, me = rep
        other = make_user()
        a = make_contact("Anne", "A", stage="customer", owner=me)
        make_contact("Bob", "B", stage="lead", owner=other)
        from crm.services.contacts import set_tags

        set_tags(a, ["VIP"])
        db.session.commit()
        assert _names(client.get("/contacts?stage=customer").text) == ["Anne A"]
        assert _names(client.get("/contacts?owner=me").text) == ["Anne A"]
        assert _names(client.get(f"/contacts?owner={other.id}").text) == ["Bob B"]
        assert _names(client.get("/contacts?tag=VIP").text) == ["Anne A"]

    def test_sorting_is_kept_in_the_url(self, rep):
        client, _ = rep
        make_contact("Zoé", "Zeller")
        make_contact("Adam", "Abel")
        db.session.commit()
        assert _names(client.get("/contacts?sort=name").text) == ["Adam Abel", "Zoé Zeller"]
        page = client.get("/contacts?sort=-name").text
        assert _names(page) == ["Zoé Zeller", "Adam Abel"]
        assert 'href="/contacts?sort=name"' in page  # clicking the header again flips it

    @pytest.mark.parametrize(
        "sort", ["name", "-name", "company", "-company", "-stage", "activity", "-activity"]
    )
    def test_keyset_pages_cover_every_row_once(self, app, rep, sort):
        client, _ = rep
        app.config["PAGE_SIZE"] = 7
        company = make_company("Zeta")
        for i in range(30):
            make_contact(
                f"P{i:02d}",
                "Same" if i % 3 else f"N{i}",
                company=company if i % 2 else None,
                stage=["lead", "prospect", "customer"][i % 3],
            )
        db.session.commit()
        seen, url, pages = [], f"/contacts?sort={sort}", 0
        while url:
            html = client.get(url, headers=htmx_headers("tr#load-more") if pages else {}).text
            seen += _names(html)
            found = re.search(r'id="load-more" hx-get="([^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
            pages += 1
        assert pages == 5
        assert len(seen) == 30 and len(set(seen)) == 30

    @pytest.mark.parametrize("sort", ["company", "-company"])
    def test_company_order_across_pages_and_companies_of_the_same_name(self, app, rep, sort):
        """The company sort merges two walks (contacts without a company, and the others in
        company-name order): the pages follow each other in the one order, ties by id."""
        client, _ = rep
        app.config["PAGE_SIZE"] = 4
        companies = [make_company("Beta"), make_company("alpha"), make_company("Alpha")]
        people = []
        for i in range(17):
            company = companies[i % 4] if i % 4 < 3 else None
            people.append(make_contact(f"P{i:02d}", "Order", company=company))
        db.session.commit()
        expected = [
            c.name
            for c in sorted(
                people,
                key=lambda c: (c.company.name_key if c.company else "", c.id),
                reverse=sort.startswith("-"),
            )
        ]
        seen, url = [], f"/contacts?sort={sort}"
        while url:
            html = client.get(url, headers=htmx_headers("tr#load-more") if seen else {}).text
            seen += _names(html)
            assert len(seen) <= len(people), seen  # a page given twice would never end
            found = re.search(r'id="load-more" hx-get="([^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert seen == expected

    def test_a_tampered_cursor_starts_from_the_top(self, rep):
        client, _ = rep
        make_contact("Anne", "A")
        db.session.commit()
        assert _names(client.get("/contacts?cursor=garbage").text) == ["Anne A"]


class TestQuickAdd:
    def test_name_and_email_are_enough(self, rep):
        client, me = rep
        response = client.post(
            "/contacts",
            data={"first_name": "Léa", "last_name": "Martin", "email": "lea@example.com"},
            headers=htmx_headers("form#quick-add"),
        )
        assert response.status_code == 200
        assert "<hx-partial" in response.text and "Léa Martin" in response.text
        assert "crm:toast" in response.headers["HX-Trigger"]
        contact = db.session.scalars(db.select(Contact)).one()
        assert (contact.owner_id, contact.stage, contact.source) == (me.id, "lead", "quick_add")

    def test_company_is_found_or_created_by_name(self, rep):
        client, _ = rep
        acme = make_company("ACME")
        db.session.commit()
        client.post(
            "/contacts", data={"first_name": "A", "phone": "0612345678", "company": " acme "}
        )
        client.post(
            "/contacts", data={"first_name": "B", "phone": "0712345678", "company": "Newco"}
        )
        companies = {c.first_name: c.company.name for c in db.session.scalars(db.select(Contact))}
        assert companies == {"A": acme.name, "B": "Newco"}

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"email": "x@example.com"}, "Give a first or a last name."),
            ({"first_name": "Anne"}, "Give an email or a phone number."),
            ({"first_name": "Anne", "email": "not-an-email"}, "Invalid email address."),
            ({"first_name": "Anne", "phone": "call me"}, "Digits, spaces and + ( ) - . / only."),
        ],
    )
    def test_bad_input_answers_422_with_every_input_kept(self, rep, data, message):
        client, _ = rep
        response = client.post("/contacts", data=data, headers=htmx_headers("form#quick-add"))
        assert response.status_code == 422
        assert message in response.text
        for value in data.values():
            assert f'value="{value}"' in response.text
        assert db.session.scalar(db.select(db.func.count(Contact.id))) == 0

    def test_duplicate_email_or_phone_warns_then_adds_on_confirmation(self, rep):
        client, _ = rep
        make_contact("Jean", "Existing", email="jean@example.com", phone="+33 6 11 22 33 44")
        db.session.commit()
        for data in ({"email": "JEAN@example.com"}, {"phone": "06 11 22 33 44"}):
            warned = client.post(
                "/contacts", data={"first_name": "Jean", **data}, headers=htmx_headers()
            )
            assert warned.status_code == 422
            assert "already known" in warned.text and "Jean Existing" in warned.text
        confirmed = client.post(
            "/contacts",
            data={"first_name": "Jean", "email": "jean@example.com", "confirm_duplicate": "1"},
            headers=htmx_headers(),
        )
        assert confirmed.status_code == 200
        assert db.session.scalar(db.select(db.func.count(Contact.id))) == 2

    def test_without_javascript_the_form_still_works(self, rep):
        client, _ = rep
        response = client.post(
            "/contacts", data={"first_name": "Plain", "email": "plain@example.com"}
        )
        assert response.status_code == 303
        assert response.headers["Location"].startswith("/contacts/")
        bad = client.post("/contacts", data={"first_name": "Plain"})
        assert bad.status_code == 422 and "<html" in bad.text


class TestDetail:
    def test_360_view_shows_fields_and_the_timeline_newest_first(self, rep):
        client, me = rep
        contact = make_contact("Anne", "Leclerc", phone="0102030405")
        from datetime import timedelta

        from crm.models.types import utcnow

        make_activity(
            contact, "call", body="First call", author=me, occurred_at=utcnow() - timedelta(days=2)
        )
        make_activity(contact, "note", body="Latest note", author=me, occurred_at=utcnow())
        db.session.commit()
        page = client.get(f"/contacts/{contact.id}").text
        assert "Anne Leclerc" in page and "0102030405" in page
        assert page.index("Latest note") < page.index("First call")

    def test_log_a_call_in_one_post(self, rep):
        client, me = rep
        contact = make_contact()
        db.session.commit()
        response = client.post(
            f"/contacts/{contact.id}/activities",
            data={"kind": "call", "outcome": "reached", "body": "Wants a quote"},
            headers=htmx_headers("form#composer"),
        )
        assert response.status_code == 200
        assert 'hx-target="#timeline"' in response.text and "Wants a quote" in response.text
        activity = db.session.scalars(db.select(Activity).where(Activity.kind == "call")).one()
        assert (activity.author_id, activity.outcome, activity.contact_id) == (
            me.id,
            "reached",
            contact.id,
        )

    def test_an_empty_note_is_refused(self, rep):
        client, _ = rep
        contact = make_contact()
        db.session.commit()
        response = client.post(
            f"/contacts/{contact.id}/activities",
            data={"kind": "note", "body": " "},
            headers=htmx_headers("form#composer"),
        )
        assert response.status_code == 422
        assert "Write the note first." in response.text

    def test_stage_change_keeps_the_same_record_and_its_history(self, rep):
        client, me = rep
        contact = make_contact(stage="lead")
        make_activity(contact, "call", body="Early call", author=me)
        db.session.commit()
        for stage in ("prospect", "customer"):
            response = client.post(
                f"/contacts/{contact.id}/stage",
                data={"stage": stage},
                headers=htmx_headers("div#contact-header"),
            )
            assert response.status_code == 200
        db.session.expire_all()
        assert db.session.get(Contact, contact.id).stage == "customer"
        page = client.get(f"/contacts/{contact.id}").text
        assert "Early call" in page
        assert "Stage changed from Lead to Prospect." in page
        assert "Stage changed from Prospect to Customer." in page

    def test_unknown_stage_is_refused(self, rep):
        client, _ = rep
        contact = make_contact()
        db.session.commit()
        assert (
            client.post(f"/contacts/{contact.id}/stage", data={"stage": "vip"}).status_code == 400
        )


class TestInlineEdit:
    def test_edit_then_save_one_field(self, rep):
        client, _ = rep
        contact = make_contact(phone="0100000000")
        db.session.commit()
        editor = client.get(
            f"/contacts/{contact.id}/fields/phone/edit", headers=htmx_headers("div#field-phone")
        )
        assert editor.status_code == 200 and "<html" not in editor.text
        assert 'value="0100000000"' in editor.text
        saved = client.post(
            f"/contacts/{contact.id}/fields/phone",
            data={"value": "+33 7 00 00 00 01"},
            headers=htmx_headers("form#field-phone"),
        )
        assert saved.status_code == 200
        assert "+33 7 00 00 00 01" in saved.text and "<form" not in saved.text
        db.session.expire_all()
        assert db.session.get(Contact, contact.id).phone_key == "700000001"

    def test_the_editor_url_is_a_full_page_when_opened_directly(self, rep):
        client, _ = rep
        contact = make_contact()
        db.session.commit()
        page = client.get(f"/contacts/{contact.id}/fields/title/edit")
        assert "<html" in page.text and 'id="field-title"' in page.text and "<form" in page.text

    def test_bad_value_is_kept_with_its_error_and_nothing_saved(self, rep):
        client, _ = rep
        contact = make_contact(email="ok@example.com")
        db.session.commit()
        response = client.post(
            f"/contacts/{contact.id}/fields/email",
            data={"value": "nope"},
            headers=htmx_headers("form#field-email"),
        )
        assert response.status_code == 422
        assert 'value="nope"' in response.text and "Invalid email address." in response.text
        db.session.expire_all()
        assert db.session.get(Contact, contact.id).email == "ok@example.com"

    def test_a_contact_keeps_a_name_and_a_way_to_reach_them(self, rep):
        client, _ = rep
        contact = make_contact("Anne", "", email="anne@example.com", phone=None)
        db.session.commit()
        no_name = client.post(
            f"/contacts/{contact.id}/fields/first_name", data={"value": ""}, headers=htmx_headers()
        )
        assert no_name.status_code == 422 and "first or a last name" in no_name.text
        no_reach = client.post(
            f"/contacts/{contact.id}/fields/email", data={"value": ""}, headers=htmx_headers()
        )
        assert no_reach.status_code == 422 and "email or a phone number" in no_reach.text
        db.session.expire_all()
        kept = db.session.get(Contact, contact.id)
        assert (kept.first_name, kept.email) == ("Anne", "anne@example.com")

    def test_tags_and_company(self, rep):
        client, _ = rep
        contact = make_contact()
        db.session.commit()
        client.post(f"/contacts/{contact.id}/fields/tags", data={"value": "vip, salon , vip"})
        client.post(f"/contacts/{contact.id}/fields/company", data={"value": "Initech"})
        db.session.expire_all()
        contact = db.session.get(Contact, contact.id)
        assert [t.name for t in contact.tags] == ["salon", "vip"]
        assert contact.company.name == "Initech"
        assert "initech" in contact.search_text

    def test_changing_the_owner_needs_a_manager(self, rep, as_role):
        client, _ = rep
        contact = make_contact()
        other = make_user()
        db.session.commit()
        assert (
            client.post(
                f"/contacts/{contact.id}/fields/owner", data={"value": str(other.id)}
            ).status_code
            == 403
        )
        manager, _ = as_role("manager")
        response = manager.post(
            f"/contacts/{contact.id}/fields/owner",
            data={"value": str(other.id)},
            headers=htmx_headers(),
        )
        assert response.status_code == 200
        db.session.expire_all()
        assert db.session.get(Contact, contact.id).owner_id == other.id

    def test_unknown_field_is_404(self, rep):
        client, _ = rep
        contact = make_contact()
        db.session.commit()
        assert client.get(f"/contacts/{contact.id}/fields/password/edit").status_code == 404


class TestScope:
    def test_a_technician_gets_404_for_a_contact_by_id(self, as_role):
        client, _ = as_role("technician")
        contact = make_contact()
        db.session.commit()
        assert client.get(f"/contacts/{contact.id}").status_code == 404
        assert (
            client.post(
                f"/contacts/{contact.id}/activities", data={"kind": "note", "body": "x"}
            ).status_code
            == 404
        )

    def test_a_missing_contact_is_404_under_htmx_as_an_error_toast(self, rep):
        client, _ = rep
        response = client.get("/contacts/999999", headers=htmx_headers("main#main"))
        assert response.status_code == 404
        assert response.headers["HX-Retarget"] == "#toasts"

    def test_only_managers_delete(self, rep, as_role):
        client, _ = rep
        contact = make_contact()
        db.session.commit()
        assert client.post(f"/contacts/{contact.id}/delete").status_code == 403
        manager, _ = as_role("manager")
        assert manager.post(f"/contacts/{contact.id}/delete").status_code == 303
        assert db.session.scalar(db.select(db.func.count(Contact.id))) == 0
