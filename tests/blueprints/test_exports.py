"""Exports of a filtered list: the rows of the list with its filters, all of them, readable
and safe in a spreadsheet, for those who may see them, and logged."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import event, select
from werkzeug.datastructures import MultiDict

from crm.extensions import db
from crm.models import AuditLog, Contact, CustomFieldDefinition
from crm.services import exports
from tests.factories import (
    make_company,
    make_contact,
    make_deal,
    make_incident,
    make_user,
)

BOM = "\ufeff"


def _csv(response) -> list[list[str]]:
    assert response.status_code == 200, response.status_code
    text = response.data.decode("utf-8")
    assert text.startswith(BOM)
    delimiter = ";" if text.split("\r\n", 1)[0].count(";") else ","
    return list(csv.reader(io.StringIO(text[1:], newline=""), delimiter=delimiter))


def _xlsx(response) -> list[list]:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == exports.MIMETYPES["xlsx"]
    sheet = load_workbook(io.BytesIO(response.data)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def _column(rows: list[list], name: str) -> list:
    index = rows[0].index(name)
    return [row[index] for row in rows[1:]]


def test_the_export_holds_every_row_of_the_filtered_list_not_just_a_page(as_role, monkeypatch):
    client, user = as_role("sales")
    # Pages of 7 rows: 40 leads take six pages, cut at a name the cursor must cross.
    monkeypatch.setattr(exports, "BATCH", 7)
    for i in range(40):
        make_contact("Lead", f"Dupont {i:02d}", stage="lead", email=f"lead{i}@example.com")
    for i in range(5):
        make_contact("Prospect", f"Martin {i}", stage="prospect")
    make_contact("Lead", "Elsewhere", stage="lead", email="x@example.org")
    db.session.commit()

    rows = _csv(client.post("/exports/contacts.csv?stage=lead&q=dupont"))
    assert rows[0][:3] == ["First name", "Last name", "Title"]
    assert _column(rows, "Last name") == [f"Dupont {i:02d}" for i in range(40)]  # the list's order
    assert set(_column(rows, "Stage")) == {"Lead"}

    rows = _xlsx(client.post("/exports/contacts.xlsx?stage=prospect"))
    assert sorted(_column(rows, "Last name")) == [f"Martin {i}" for i in range(5)]
    # The cursor of the page the user was on is not a filter: the export starts at the top.
    everything = _csv(client.post("/exports/contacts.csv?cursor=garbage"))
    assert len(everything) == 1 + 46


def test_each_list_exports_with_its_own_filters(as_role):
    client, admin = as_role("admin")
    make_company("Acme Tools", city="Lyon")
    make_company("Zenith", city="Paris")
    rep = make_user(role="sales", name="Rita Rep")
    make_deal(owner=rep, title="Acme renewal", amount="1500.50")
    make_deal(owner=admin, title="Zenith pilot", amount="99")
    make_incident(make_contact("Ann", "Lee"), subject="Pump broken", priority="urgent")
    make_incident(make_contact("Bob", "Lee"), subject="Invoice question", priority="low")
    db.session.commit()

    assert _column(_csv(client.post("/exports/companies.csv?q=acme")), "Name") == ["Acme Tools"]
    deals = _csv(client.post(f"/exports/deals.csv?owner={rep.id}"))
    assert _column(deals, "Deal") == ["Acme renewal"]
    assert _column(deals, "Amount") == ["1500.50"] and _column(deals, "Owner") == ["Rita Rep"]
    incidents = _csv(client.post("/exports/incidents.csv?view=all&priority=urgent"))
    assert _column(incidents, "Subject") == ["Pump broken"]
    assert _column(incidents, "Priority") == ["Urgent"]


def test_formula_injection_is_neutralized_in_csv_and_xlsx(as_role):
    client, _ = as_role("manager")
    hostile = ['=HYPERLINK("http://evil")', "+33 6 12", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    for i, value in enumerate(hostile):
        make_contact(value, f"Hostile{i}", title="=cmd|' /C calc'!A0", email=f"h{i}@example.com")
    db.session.add(
        CustomFieldDefinition(entity="contact", key="note", label="=Label", field_type="text")
    )
    db.session.commit()

    for rows in (
        _csv(client.post("/exports/contacts.csv?q=hostile")),
        _xlsx(client.post("/exports/contacts.xlsx?q=hostile")),
    ):
        assert "'=Label" in rows[0]
        # (XML reads a carriage return back as a line feed: the same cell for a spreadsheet.)
        firsts = [value.replace("\r", "\n") for value in _column(rows, "First name")]
        assert sorted(firsts) == sorted("'" + value.replace("\r", "\n") for value in hostile)
        assert set(_column(rows, "Title")) == {"'=cmd|' /C calc'!A0"}
        for row in rows:
            for cell in row:
                assert not (
                    isinstance(cell, str) and cell.startswith(("=", "+", "-", "@", "\t", "\r"))
                )


def test_xlsx_cells_are_typed_and_keep_no_formula(as_role):
    client, rep = as_role("sales", timezone="Europe/Paris")
    make_deal(owner=rep, title="=1+1", amount="-1234.50")
    db.session.commit()
    response = client.post("/exports/deals.xlsx")
    sheet = load_workbook(io.BytesIO(response.data)).active
    header = [cell.value for cell in sheet[1]]
    row = sheet[2]
    title = row[header.index("Deal")]
    assert title.value == "'=1+1" and title.data_type == "s"
    amount = row[header.index("Amount")]
    assert amount.value == Decimal("-1234.5") or amount.value == -1234.5
    assert amount.data_type == "n"
    created = row[header.index("Created")].value
    assert isinstance(created, datetime) and created.tzinfo is None


def test_a_french_user_gets_semicolons_decimal_commas_and_local_times(as_role):
    client, rep = as_role("sales", locale="fr", timezone="Europe/Paris")
    deal = make_deal(owner=rep, title="Contrat été", amount="1234.50")
    deal.created_at = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)
    db.session.commit()

    text = client.post("/exports/deals.csv").data.decode("utf-8")
    assert text.startswith(BOM)
    header, line = text[1:].split("\r\n")[:2]
    assert ";" in header and "," not in header
    cells = dict(zip(header.split(";"), line.split(";"), strict=True))
    assert "Contrat été" in cells.values()  # UTF-8, accents intact
    assert "1234,50" in cells.values()
    assert "2026-07-02 00:30" in cells.values()  # 22:30 UTC is past midnight in Paris

    english, _ = as_role("sales", locale="en", timezone="America/New_York")
    make_deal(owner=_, title="Summer deal", amount="10.5")
    db.session.commit()
    header = english.post("/exports/deals.csv").data.decode("utf-8")[1:].split("\r\n")[0]
    assert header.startswith("Deal,Pipeline,Stage,Amount")


def test_amounts_only_for_those_who_may_see_them(as_role):
    support, _ = as_role("support")
    rep = make_user(role="sales")
    contact = make_contact("Zed", "Zimmer")
    make_deal(owner=rep, contact=contact, amount="987654.32")
    make_incident(contact, subject="Billing")
    db.session.commit()
    # Support has no deal list at all, so no deal export either.
    assert support.post("/exports/deals.csv").status_code == 403
    assert support.get("/exports/deals.csv").status_code == 403
    # Incidents and contacts exports carry no amount.
    for url in ("/exports/incidents.csv?view=all", "/exports/contacts.csv"):
        rows = _csv(support.post(url))
        assert len(rows) == 2 and "Zed" in str(rows)
        assert "987654" not in str(rows) and "Amount" not in rows[0]


def test_roles_and_scopes(as_role):
    technician, _ = as_role("technician")
    assert technician.post("/exports/contacts.csv").status_code == 403
    assert technician.get("/exports/contacts.csv").status_code == 403

    client, rep = as_role("sales")
    other = make_user(role="sales")
    make_deal(owner=rep, title="Mine")
    make_deal(owner=other, title="Not mine")
    db.session.commit()
    assert _column(_csv(client.post("/exports/deals.csv")), "Deal") == ["Mine"]
    assert client.post("/exports/nothing.csv").status_code == 404
    assert client.post("/exports/contacts.pdf").status_code == 404


def test_each_export_writes_an_audit_entry_with_filters_and_row_count(as_role):
    client, manager = as_role("manager")
    for i in range(3):
        make_contact("A", f"B{i}", stage="lead")
    make_contact("C", "D", stage="customer")
    db.session.commit()

    _csv(client.post("/exports/contacts.csv?stage=lead&cursor=x"))
    _xlsx(client.post("/exports/contacts.xlsx?stage=customer"))
    entries = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "export").order_by(AuditLog.id)
    ).all()
    assert [(e.entity_type, e.actor_id) for e in entries] == [("contact", manager.id)] * 2
    assert entries[0].changes["filters"] == [None, {"stage": "lead"}]
    assert entries[0].changes["rows"] == [None, 3]
    assert entries[1].changes["rows"] == [None, 1]
    assert entries[1].changes["format"] == [None, "xlsx"]
    assert "3 rows" in entries[0].summary and "stage=lead" in entries[0].summary


def test_the_get_page_names_the_export_and_changes_nothing(as_role):
    client, _ = as_role("sales")
    page = client.get("/exports/contacts.csv?stage=lead&q=x")
    assert page.status_code == 200
    assert 'action="/exports/contacts.csv?' in page.text and "stage=lead" in page.text
    assert db.session.scalar(select(AuditLog.id).where(AuditLog.action == "export")) is None


def test_custom_field_columns(as_role):
    client, _ = as_role("admin", locale="fr")
    db.session.add_all(
        [
            CustomFieldDefinition(
                entity="contact", key="budget", label="Budget", field_type="number", position=1
            ),
            CustomFieldDefinition(
                entity="contact", key="since", label="Client depuis", field_type="date", position=2
            ),
            CustomFieldDefinition(
                entity="contact", key="vip", label="VIP", field_type="boolean", position=3
            ),
        ]
    )
    make_contact(
        "Anne",
        "Custom",
        custom_fields={"budget": 1500.5, "since": "2024-03-31", "vip": True},
    )
    db.session.commit()
    rows = _csv(client.post("/exports/contacts.csv?q=custom"))
    assert rows[0][-3:] == ["Budget", "Client depuis", "VIP"]
    assert rows[1][-3:] == ["1500,5", "2024-03-31", "Oui"]
    sheet = _xlsx(client.post("/exports/contacts.xlsx?q=custom"))
    budget, since, vip = sheet[1][-3:]
    assert budget == 1500.5 and since.date().isoformat() == "2024-03-31" and vip == "Oui"


def test_the_export_link_on_each_list_carries_the_current_filters(as_role):
    client, _ = as_role("admin")
    for url, action in (
        ("/contacts?stage=lead&q=du", "/exports/contacts.csv?"),
        ("/companies?q=ac", "/exports/companies.csv?q=ac"),
        ("/deals/list?close=overdue", "/exports/deals.csv?close=overdue"),
        ("/incidents?view=all&priority=high", "/exports/incidents.csv?"),
    ):
        page = client.get(url).text
        assert f'action="{action}' in page, url
        assert "data-export" in page and "js/exports.js" in page
    page = client.get("/contacts?stage=lead&q=du&format=x&cursor=abc").text
    assert 'action="/exports/contacts.csv?stage=lead&amp;q=du"' in page


def test_memory_stays_flat_whatever_the_number_of_rows(app, ctx):
    """Each page of rows leaves the session once written: the session holds one page at
    most, so 100,000 contacts take the memory of 500."""
    user = make_user(role="admin")
    company = make_company()
    for i in range(120):
        make_contact("Flat", f"Row{i:03d}", company=company if i % 2 else None)
    db.session.commit()
    with app.test_request_context():
        export = exports.start(user, "contacts", "csv", MultiDict(), "en")
        peak = 0
        for _batch in exports.items(export, size=20):
            peak = max(peak, len(db.session.identity_map))
        assert export.rows == 120
        assert peak <= 20 + 5, peak  # a page of contacts, their company and the owner


def test_a_page_of_rows_costs_a_fixed_number_of_queries(as_role):
    client, _ = as_role("admin")

    def queries(rows: int) -> int:
        for i in range(rows):
            make_contact("Q", f"Row{i}", company=make_company())
        db.session.commit()
        count = 0

        def _count(*args):
            nonlocal count
            count += 1

        event.listen(db.engine, "before_cursor_execute", _count)
        try:
            _xlsx(client.post("/exports/contacts.xlsx"))
        finally:
            event.remove(db.engine, "before_cursor_execute", _count)
        return count

    few = queries(3)
    many = queries(60)  # 63 rows, one page of 500
    assert many == few, (few, many)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_control_characters_do_not_break_the_file(as_role, fmt):
    client, _ = as_role("admin")
    # (PostgreSQL refuses NUL in text, so no record holds one; other controls it keeps.)
    make_contact("Esc\x1bape", "Bell\x07", title="line\nbreak")
    db.session.commit()
    response = client.post(f"/exports/contacts.{fmt}")
    rows = _csv(response) if fmt == "csv" else _xlsx(response)
    assert _column(rows, "Title") == ["line\nbreak"]
    assert db.session.scalar(select(Contact.id)) is not None
