"""CSV imports: reading real-world files, mapping, duplicates, reasons, notes, undo, resume.

The files in tests/fixtures/imports are written the way the programs people use write
them (French Excel: Windows-1252 and ";"; Excel's CSV UTF-8: a byte order mark and ",").
"""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Activity, AuditLog, Company, Contact, DataImport, ImportRow
from crm.services import custom_fields
from crm.services.imports import fields as import_fields
from crm.services.imports import reading, runner
from tests.factories import make_company, make_contact, make_deal, make_user

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "imports"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def run_import(actor, entity, content, *, filename="file.csv", columns=None, **options):
    """Upload, keep the guessed mapping (or `columns`), start and run to the end."""
    data_import = runner.create_import(actor, entity, filename, content)
    db.session.commit()
    choice = runner.ImportChoice.saved(data_import)
    if columns is not None:
        choice.columns = columns
    for name, value in options.items():
        setattr(choice, name, value)
    assert not runner.check_choice(data_import, choice), runner.check_choice(data_import, choice)
    runner.start(data_import, choice, actor)
    db.session.commit()
    runner.run(data_import.id)
    db.session.expire_all()
    return db.session.get(DataImport, data_import.id)


def outcomes(data_import) -> dict[int, tuple[str, str | None]]:
    rows = db.session.scalars(
        select(ImportRow)
        .where(ImportRow.import_id == data_import.id)
        .order_by(ImportRow.row_number)
    )
    return {row.row_number: (row.outcome, row.reason) for row in rows}


@pytest.fixture(autouse=True)
def in_request(data_app, ctx):
    """Messages are translated: in a request, as in the worker's job (crm/jobs/imports.py)."""
    with data_app.test_request_context("/"):
        yield


@pytest.fixture
def admin(ctx):
    user = make_user(role="admin", email="admin@example.com", name="Ada Admin")
    db.session.commit()
    return user


@pytest.fixture
def language_field(ctx):
    definition = custom_fields.create_definition(
        "contact", "Langue préférée", "choice", ["Français", "Anglais"], required=True
    )
    db.session.commit()
    return definition


# ---- reading -------------------------------------------------------------------------


def test_french_excel_file_is_windows_1252_with_semicolons_and_quoted_newlines():
    content = fixture("contacts_fr_excel.csv")
    summary = reading.summarize(content)
    assert summary.format == reading.FileFormat("cp1252", ";")
    assert summary.headers[:4] == ["Prénom", "Nom", "Société", "E-mail"]
    assert summary.total_rows == 5  # the blank line is not a row
    assert summary.preview[1][-1] == "Intéressé par l'offre\r\nà rappeler en septembre"
    numbers = [number for number, _cells in reading.data_rows(content, summary.format)]
    assert numbers == [2, 3, 4, 6, 7]  # spreadsheet row numbers: the blank row 5 keeps its place


def test_utf8_with_bom_and_commas_blank_lines_and_padding():
    summary = reading.summarize(fixture("contacts_utf8_bom.csv"))
    assert summary.format == reading.FileFormat("utf-8-sig", ",")
    assert summary.headers[0] == "First name"  # no BOM left in the first header
    assert summary.preview[0][3] == "Acme, Inc."
    assert summary.total_rows == 3


@pytest.mark.parametrize(
    ("text", "encoding", "expected"),
    [
        ("Nom;Ville\nDupré;Orléans\n", "utf-8", ("utf-8", ";")),
        ("Nom;Ville\nDupré;Orléans\n", "cp1252", ("cp1252", ";")),
        ("Nom\tVille\nDupré\tOrléans\n", "utf-16", ("utf-16", "\t")),
        ('Nom,Note\n"Dupré","1;2;3;4"\n', "utf-8", ("utf-8", ",")),
        ("Nom;Montant\nDupré;1,5\nMartin;2,5\n", "utf-8", ("utf-8", ";")),
    ],
)
def test_encoding_and_separator_detection(text, encoding, expected):
    assert reading.detect_format(text.encode(encoding)) == reading.FileFormat(*expected)


def test_cp1252_only_bytes_fall_back_to_latin_1():
    assert reading.detect_encoding("Nom\nA\x81b\n".encode("latin-1")) == "latin-1"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04rest of a zip", "Excel workbook"),
        (b"\xd0\xcf\x11\xe0old excel", "Excel workbook"),
        (b"abc\x00\x01\x02binary", "not a CSV file"),
        (b"  \n\n", "empty"),
    ],
)
def test_binary_and_empty_files_are_refused_with_a_reason(content, message):
    with pytest.raises(reading.ImportFileError, match=message):
        reading.check_bytes(content, 1000)


def test_size_limit():
    with pytest.raises(reading.ImportFileError, match="too large"):
        reading.check_bytes(b"a" * 1001, 1000)


def test_header_without_rows_and_unclosed_quote_are_refused():
    with pytest.raises(reading.ImportFileError, match="no data rows"):
        reading.summarize(b"Name;Email\n")
    with pytest.raises(reading.ImportFileError, match="closing quote"):
        reading.summarize(b'Name;Email\n"Anne;' + b"x" * 200_000 + b"\n")


# ---- mapping -------------------------------------------------------------------------


def test_mapping_guess_in_french_and_english(ctx, language_field):
    headers = [
        "Prénom",
        "Nom",
        "Société",
        "E-mail",
        "Téléphone",
        "Code postal",
        "Ville",
        "Pays",
        "Langue préférée",
        "Notes",
        "Courriel",
        "Inconnu",
    ]
    assert import_fields.guess_mapping("contacts", headers) == [
        "first_name",
        "last_name",
        "company",
        "email",
        "phone",
        "postcode",
        "city",
        "country",
        "custom.langue_preferee",
        "notes",
        "",  # a second email column: the first one wins
        "",
    ]
    assert import_fields.guess_mapping(
        "contacts", ["First name", "Last Name", "Full name", "Company"]
    ) == [
        "first_name",
        "last_name",
        "name",
        "company",
    ]
    assert import_fields.guess_mapping("companies", ["Entreprise", "Effectif", "Employees"]) == [
        "name",
        "employees",
        "",
    ]


def test_mapping_errors(ctx):
    by_column, overall = import_fields.check_mapping("contacts", ["email", "email", "bogus", ""])
    assert set(by_column) == {0, 1, 2}
    assert overall == []
    assert import_fields.check_mapping("contacts", ["", "city"])[1]
    assert import_fields.check_mapping("companies", ["city"])[1]
    assert len(import_fields.check_mapping("notes", ["subject"])[1]) == 2


# ---- contacts ------------------------------------------------------------------------


def test_french_excel_contacts_with_a_custom_field(admin, language_field):
    data_import = run_import(admin, "contacts", fixture("contacts_fr_excel.csv"))
    assert data_import.status == "done"
    result = outcomes(data_import)
    assert result[2][0] == result[3][0] == result[6][0] == "created"
    assert result[4] == ("rejected", "Invalid email: zoe.crepin@exemple")
    assert result[7] == ("skipped", "Same email as row 2 of this file.")
    assert (data_import.created_count, data_import.skipped_count, data_import.rejected_count) == (
        3,
        1,
        1,
    )
    assert data_import.processed_rows == data_import.total_rows == 5

    helene = db.session.scalars(
        select(Contact).where(Contact.email_key == "helene.muller@exemple.fr")
    ).one()
    assert (helene.first_name, helene.last_name, helene.city, helene.postcode) == (
        "Hélène",
        "Müller",
        "Lyon",
        "69003",
    )
    assert helene.company.name == "Société Générale d'Équipement"
    assert helene.custom_fields == {"langue_preferee": "Français"}
    assert helene.source == "import" and helene.owner_id == admin.id and helene.stage == "lead"
    jerome = db.session.scalars(select(Contact).where(Contact.last_name == "Dupré")).one()
    assert (
        jerome.first_name == "Jérôme" and jerome.email == "jerome.dupre@exemple.fr"
    )  # padding gone
    assert jerome.company_id == helene.company_id  # one company, found again
    notes = db.session.scalars(select(Activity.body).where(Activity.kind == "note")).all()
    assert "Intéressé par l'offre\r\nà rappeler en septembre" in notes
    assert db.session.scalar(select(func.count()).select_from(Company)) == 2


def test_required_custom_field_empty_rejects_the_row(admin, language_field):
    content = (
        "Prénom;Nom;E-mail;Langue préférée\nAnne;A;a@example.com;\nBen;B;b@example.com;Klingon\n"
    )
    data_import = run_import(admin, "contacts", content.encode())
    assert outcomes(data_import) == {
        2: ("rejected", "Required field Langue préférée is empty."),
        3: ("rejected", "Langue préférée: Choose one of the proposed values."),
    }
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0


def test_rejected_reasons_and_nothing_half_saved(admin):
    content = (
        "First name;Last name;Email;Phone;Company;Owner;Stage;Consent;Tags\n"
        "Anne;A;anne@example.com;not a phone;New Co;;;;\n"
        ";;;;Only Co;;;;\n"
        "Ben;B;ben@example.com;;Ghost Co;nobody@example.com;;;\n"
        "Carl;C;carl@example.com;;Other Co;;Martian;;\n"
        "Dan;D;dan@example.com;;;;;peut-être;\n"
        "Eve;E;eve@example.com;+33 6 12 34 56 78;Eve Co;admin@example.com;Client;oui;vip, vip | newsletter\n"
    )
    data_import = run_import(admin, "contacts", content.encode())
    assert outcomes(data_import) == {
        2: ("rejected", "Invalid phone number: not a phone"),
        3: ("rejected", "No name, email or phone number."),
        4: ("rejected", "No user with this email or name: nobody@example.com"),
        5: ("rejected", "Unknown stage: Martian"),
        6: ("rejected", "Marketing consent: answer yes or no (not peut-être)."),
        7: ("created", None),
    }
    eve = db.session.scalars(select(Contact)).one()
    assert (eve.stage, eve.consent_status, eve.owner_id) == ("customer", "granted", admin.id)
    assert [t.name for t in eve.tags] == ["newsletter", "vip"]
    # No company of a rejected row was created.
    assert db.session.scalars(select(Company.name)).all() == ["Eve Co"]


def test_a_row_with_more_cells_than_the_header_is_rejected(admin):
    data_import = run_import(
        admin, "contacts", b"Name,Email\nAnne A,a@example.com\nBob,b@example.com,Paris, France\n"
    )
    result = outcomes(data_import)
    assert result[2] == ("created", None)
    assert result[3][0] == "rejected" and "more cells" in result[3][1]


def test_duplicates_skip(admin):
    existing = make_contact("Anne", "Old", email="Anne@Example.com", phone="06 12 34 56 78")
    db.session.commit()
    content = (
        "Prénom;Nom;E-mail;Téléphone\nAnne;New;anne@example.com;\nAnna;Phone;;+33 6 12 34 56 78\n"
    )
    data_import = run_import(admin, "contacts", content.encode(), policy="skip")
    assert outcomes(data_import) == {
        2: ("skipped", "Already in the CRM (same email)."),
        3: ("skipped", "Already in the CRM (same phone number)."),
    }
    row = db.session.scalars(select(ImportRow).where(ImportRow.row_number == 2)).one()
    assert (row.record_type, row.record_id) == ("contact", existing.id)  # the report links to it
    assert db.session.get(Contact, existing.id).last_name == "Old"


def test_duplicates_update_only_non_empty_values_and_undo_restores_them(admin, language_field):
    existing = make_contact("Anne", "Old", email="anne@example.com", city="Paris", title="CEO")
    existing.custom_fields = {"langue_preferee": "Anglais"}
    make_contact("Other", "Person", email="other@example.com")
    db.session.commit()
    content = "E-mail;Nom;Ville;Fonction;Langue préférée;Société;Tags\nanne@example.com;New;;;Français;Acme;vip\n"
    data_import = run_import(admin, "contacts", content.encode(), policy="update")
    assert outcomes(data_import) == {2: ("updated", None)}
    anne = db.session.get(Contact, existing.id)
    assert (anne.last_name, anne.city, anne.title) == (
        "New",
        "Paris",
        "CEO",
    )  # empty cells change nothing
    assert anne.custom_fields == {"langue_preferee": "Français"}
    assert anne.company.name == "Acme" and [t.name for t in anne.tags] == ["vip"]

    runner.begin_undo(data_import, admin)
    db.session.commit()
    assert runner.undo(data_import.id, admin.id)["status"] == "undone"
    db.session.expire_all()
    anne = db.session.get(Contact, existing.id)
    assert (anne.last_name, anne.city, anne.company_id, anne.tags) == ("Old", "Paris", None, [])
    assert anne.custom_fields == {"langue_preferee": "Anglais"}
    assert (
        db.session.scalar(select(func.count()).select_from(Company)) == 0
    )  # the import's company went too
    assert db.session.get(DataImport, data_import.id).status == "undone"


def test_undo_keeps_a_value_changed_since(admin):
    existing = make_contact("Anne", "Old", email="anne@example.com")
    db.session.commit()
    data_import = run_import(
        admin, "contacts", b"Email,Last name,City\nanne@example.com,New,Lyon\n", policy="update"
    )
    anne = db.session.get(Contact, existing.id)
    anne.city = "Marseille"  # a rep corrected it after the import
    db.session.commit()
    runner.begin_undo(data_import, admin)
    db.session.commit()
    runner.undo(data_import.id, admin.id)
    db.session.expire_all()
    anne = db.session.get(Contact, existing.id)
    assert (anne.last_name, anne.city) == ("Old", "Marseille")


def test_duplicates_create_and_in_file_duplicates(admin):
    make_contact("Anne", "Old", email="anne@example.com")
    db.session.commit()
    content = "Name,Email\nAnne New,anne@example.com\nAnne Again,ANNE@example.com\n"
    data_import = run_import(admin, "contacts", content.encode(), policy="create")
    assert [o for o, _r in outcomes(data_import).values()] == ["created", "created"]
    assert (
        db.session.scalar(select(func.count()).where(Contact.email_key == "anne@example.com")) == 3
    )

    content = "Name,Email\nZoe Z,zoe@example.com\nZoe Again,zoe@example.com\n"
    data_import = run_import(admin, "contacts", content.encode(), policy="update")
    assert outcomes(data_import) == {2: ("created", None), 3: ("updated", None)}
    zoe = db.session.scalars(select(Contact).where(Contact.email_key == "zoe@example.com")).one()
    assert (zoe.first_name, zoe.last_name) == ("Zoe", "Again")


def test_in_file_duplicates_across_batches(admin, data_app):
    data_app.config["IMPORT_BATCH_ROWS"] = 2
    try:
        rows = [
            "Name,Email",
            "A One,a@example.com",
            "B Two,b@example.com",
            "C Three,c@example.com",
            "A Again,a@example.com",
        ]
        data_import = run_import(admin, "contacts", "\n".join(rows).encode())
    finally:
        data_app.config["IMPORT_BATCH_ROWS"] = 500
    assert outcomes(data_import)[5] == ("skipped", "Same email as row 2 of this file.")


def test_source_choice_and_acquisition(admin):
    data_import = run_import(
        admin,
        "contacts",
        b"Name,Email,Source\nA A,a@example.com,\nB B,b@example.com,Salon\n",
        source="Salon Lyon 2025",
    )
    assert data_import.status == "done"
    sources = dict(db.session.execute(select(Contact.email, Contact.source)).all())
    assert sources == {"a@example.com": "Salon Lyon 2025", "b@example.com": "Salon"}


def test_contacts_are_audited_under_the_importer(admin):
    run_import(admin, "contacts", b"Name,Email\nA A,a@example.com\n")
    entry = db.session.scalars(select(AuditLog).where(AuditLog.entity_type == "contact")).one()
    assert entry.action == "create"


# ---- companies and notes -------------------------------------------------------------


def test_companies_tab_separated_with_french_headers(admin):
    make_company("ACME, INC.")
    db.session.commit()
    data_import = run_import(admin, "companies", fixture("companies_tab.csv"), policy="update")
    assert outcomes(data_import) == {
        2: ("updated", None),
        3: ("created", None),
        4: ("rejected", "Employees: enter a whole number (not beaucoup)."),
    }
    companies = {c.name: c for c in db.session.scalars(select(Company))}
    assert companies["ACME, INC."].employees == 250
    assert companies["ACME, INC."].website == "https://www.acme.example"
    assert companies["Initech"].employees == 1200


def test_notes_on_contacts_by_email_and_companies_by_name(admin):
    anne = make_contact("Anne", "Smith", email="anne@example.com")
    initech = make_company("Initech")
    admin.timezone = "Europe/Paris"
    db.session.commit()
    data_import = run_import(admin, "notes", fixture("notes.csv"))
    assert outcomes(data_import) == {
        2: ("created", None),
        3: ("created", None),
        4: ("rejected", "No contact with this email: nobody@example.com"),
        5: ("rejected", "No contact email and no company name: the note belongs to nobody."),
    }
    note = db.session.scalars(
        select(Activity).where(Activity.contact_id == anne.id, Activity.kind == "note")
    ).one()
    assert (note.subject, note.body) == ("Appel", "Rappeler pour le devis")
    assert note.occurred_at.isoformat() == "2025-03-15T13:30:00+00:00"  # 14:30 in Paris
    assert db.session.scalar(select(func.count()).where(Activity.company_id == initech.id)) == 1

    again = run_import(admin, "notes", fixture("notes.csv"))  # the same file twice: skipped
    assert [outcome for outcome, _r in outcomes(again).values()][:2] == ["skipped", "skipped"]

    runner.begin_undo(data_import, admin)
    db.session.commit()
    runner.undo(data_import.id, admin.id)
    assert db.session.scalar(select(func.count()).where(Activity.kind == "note")) == 0


# ---- undo and resume -----------------------------------------------------------------


def test_undo_deletes_created_records_but_keeps_those_used_since(admin):
    data_import = run_import(
        admin, "contacts", b"Name,Email,Company\nA A,a@example.com,Co A\nB B,b@example.com,Co B\n"
    )
    used = db.session.scalars(select(Contact).where(Contact.email == "b@example.com")).one()
    make_deal(owner=admin, contact=used, company=used.company)
    db.session.commit()
    runner.begin_undo(data_import, admin)
    db.session.commit()
    result = runner.undo(data_import.id, admin.id)
    assert result == {"status": "undone", "kept": 1}
    assert db.session.scalars(select(Contact.email)).all() == ["b@example.com"]
    assert db.session.scalars(select(Company.name)).all() == ["Co B"]
    assert runner.kept_count(data_import.id) == 1
    # Undo again: nothing more happens.
    db.session.get(DataImport, data_import.id).status = "undoing"
    db.session.commit()
    assert runner.undo(data_import.id, admin.id)["kept"] == 1
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 1
    deletes = db.session.scalars(
        select(AuditLog.entity_type).where(AuditLog.action == "delete")
    ).all()
    assert sorted(deletes) == ["company", "contact", "data_import"]


def test_resume_after_an_interruption_imports_each_row_once(admin, data_app):
    rows = (
        ["Name,Email"]
        + [f"Person {n},p{n}@example.com" for n in range(1, 26)]
        + ["Dup,p3@example.com"]
    )
    data_import = runner.create_import(admin, "contacts", "f.csv", "\n".join(rows).encode())
    db.session.commit()
    runner.start(data_import, runner.ImportChoice.saved(data_import), admin)
    db.session.commit()
    data_app.config["IMPORT_BATCH_ROWS"] = 10
    try:
        runner.run(data_import.id, max_batches=1)  # the worker "dies" after one batch
        db.session.expire_all()
        assert db.session.get(DataImport, data_import.id).processed_rows == 10
        assert db.session.get(DataImport, data_import.id).status == "running"
        runner.run(data_import.id)  # RQ's retry, or "Resume"
        runner.run(data_import.id)  # and once more for good measure: nothing changes
    finally:
        data_app.config["IMPORT_BATCH_ROWS"] = 500
    db.session.expire_all()
    done = db.session.get(DataImport, data_import.id)
    assert (done.status, done.processed_rows, done.created_count, done.skipped_count) == (
        "done",
        26,
        25,
        1,
    )
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 25


def test_a_batch_killed_before_its_commit_leaves_nothing(admin, data_app, monkeypatch):
    """A failure inside a batch (the worker killed mid-write) rolls the whole batch back:
    its records and its ImportRows together; the next run writes it whole."""
    from crm.services.imports import rows as import_rows

    rows = ["Name,Email"] + [f"Person {n},p{n}@example.com" for n in range(1, 8)]
    data_import = runner.create_import(admin, "contacts", "f.csv", "\n".join(rows).encode())
    db.session.commit()
    runner.start(data_import, runner.ImportChoice.saved(data_import), admin)
    db.session.commit()
    real_writer = import_rows.WRITERS["contacts"]
    written = []

    def dies_on_row_6(context, lookup, number, item):
        if number == 6:
            raise SystemExit("worker killed")
        written.append(number)
        return real_writer(context, lookup, number, item)

    monkeypatch.setitem(import_rows.WRITERS, "contacts", dies_on_row_6)
    data_app.config["IMPORT_BATCH_ROWS"] = 3
    try:
        with pytest.raises(SystemExit):
            runner.run(data_import.id)
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 3  # rows 2-4
        monkeypatch.setitem(import_rows.WRITERS, "contacts", real_writer)
        runner.run(data_import.id)
    finally:
        data_app.config["IMPORT_BATCH_ROWS"] = 500
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 7
    assert db.session.scalar(select(func.count()).select_from(ImportRow)) == 7


def test_rejected_rows_csv_is_the_original_rows_neutralized(admin):
    content = 'Name;Email;Note\n=HYPERLINK("x");bad;a\nOk Person;ok@example.com;b\n'
    data_import = run_import(admin, "contacts", content.encode("cp1252"))
    header, rows = runner.rejected_csv_rows(db.session.get(DataImport, data_import.id))
    assert header == ["Row", "Reason", "Name", "Email", "Note"]
    assert list(rows) == [[2, "Invalid email: bad", '=HYPERLINK("x")', "bad", "a"]]


def test_new_leads_are_routed_to_the_right_reps(admin):
    from crm.models import RoutingRule, Task

    lyon_rep = make_user(role="sales", name="Lyon Rep", email="lyon@example.com")
    team_rep = make_user(role="sales", name="Team Rep", email="team@example.com")
    db.session.add(
        RoutingRule(name="Rhône", conditions={"postcode_prefixes": ["69"]}, owner=lyon_rep)
    )
    db.session.commit()
    content = (
        "Prénom;Nom;E-mail;Code postal;Propriétaire\n"
        "Anne;A;anne@example.com;69003;\n"
        "Ben;B;ben@example.com;75011;\n"
        "Carl;C;carl@example.com;69100;admin@example.com\n"
    )
    data_import = run_import(admin, "contacts", content.encode(), route_leads=True)
    assert data_import.created_count == 3
    owners = dict(db.session.execute(select(Contact.email, Contact.owner_id)).all())
    assert owners["anne@example.com"] == lyon_rep.id  # the rule
    assert owners["ben@example.com"] in {lyon_rep.id, team_rep.id}  # round-robin among reps
    assert owners["carl@example.com"] == admin.id  # the file's owner column wins
    anne = db.session.scalars(select(Contact).where(Contact.email == "anne@example.com")).one()
    assert "Rhône" in anne.routing_reason
    assert db.session.scalar(select(func.count()).where(Task.assignee_id == lyon_rep.id)) >= 1
