"""Import pages: upload limits and types, the mapping form (422 with every choice kept),
who may import, the progress fragment that stops polling, the report, its CSV, undo."""

import io
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Contact, DataImport
from crm.queues import redis_connection
from tests.conftest import htmx_headers
from worker import InProcessWorker, worker_connection

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "imports"


def upload(client, content: bytes, filename="people.csv", entity="contacts", **headers):
    return client.post(
        "/imports",
        data={"entity": entity, "file": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
        headers=headers,
    )


def the_import() -> DataImport:
    db.session.expire_all()
    return db.session.scalars(select(DataImport)).one()


@pytest.mark.parametrize("role", ["sales", "support", "technician"])
def test_only_admins_and_managers_import(as_role, role):
    client, _user = as_role(role)
    assert client.get("/imports").status_code == 403
    assert upload(client, b"Name\nA\n").status_code == 403


def test_upload_checks_the_file_and_opens_the_mapping(as_role):
    client, _user = as_role("manager")
    response = upload(
        client,
        (FIXTURES / "contacts_fr_excel.csv").read_bytes(),
        **htmx_headers("section#import-upload"),
    )
    data_import = the_import()
    assert response.status_code == 200
    assert f'"/imports/{data_import.id}"' in response.headers["HX-Location"]
    assert (data_import.encoding, data_import.delimiter, data_import.total_rows) == (
        "cp1252",
        ";",
        5,
    )
    page = client.get(f"/imports/{data_import.id}").text
    assert "Hélène" in page and "Société Générale" in page  # the preview, decoded
    assert '<option value="first_name" selected>' in page
    assert "Invalid email: zoe.crepin@exemple" in page  # what row 4 will give, before starting


@pytest.mark.parametrize(
    ("content", "filename", "status", "message"),
    [
        (b"PK\x03\x04\x14\x00 a workbook", "people.csv", 422, "Excel workbook"),
        (b"Name\nA\n", "people.xlsx", 422, "spreadsheet file"),
        (b"\x00\x01\x02\x03binary", "people.csv", 422, "not a CSV file"),
        (b"", "people.csv", 422, "empty"),
        (b"Name;Email\n", "people.csv", 422, "no data rows"),
    ],
)
def test_upload_refuses_what_is_not_a_csv(as_role, content, filename, status, message):
    client, _user = as_role("admin")
    response = upload(client, content, filename)
    assert response.status_code == status
    assert message in response.text
    assert db.session.scalar(select(func.count()).select_from(DataImport)) == 0


def test_upload_over_the_size_limit_is_a_413_with_the_form(app, as_role):
    client, _user = as_role("admin")
    app.config["IMPORT_MAX_BYTES"] = 1000
    try:
        response = upload(
            client, b"Name\n" + b"Someone\n" * 200, **htmx_headers("section#import-upload")
        )
    finally:
        app.config["IMPORT_MAX_BYTES"] = 15 * 1024 * 1024
    assert response.status_code == 413
    assert "The file is too large" in response.text and 'id="import-upload"' in response.text


def test_upload_without_a_file_is_a_422(as_role):
    client, _user = as_role("admin")
    response = client.post("/imports", data={"entity": "contacts"})
    assert response.status_code == 422
    assert "Choose the CSV file to import." in response.text


def _uploaded(
    client,
    content=b"Prenom;Nom;Email;Ville\nAnne;Smith;anne@example.com;Lyon\nBen;Jones;bad;Paris\n",
):
    upload(client, content)
    return the_import()


def test_preview_follows_the_mapping_being_chosen(as_role):
    client, _user = as_role("admin")
    data_import = _uploaded(client)
    response = client.post(
        f"/imports/{data_import.id}/preview",
        data={
            "column-0": "first_name",
            "column-1": "",
            "column-2": "",
            "column-3": "city",
            "duplicate_policy": "skip",
        },
        headers=htmx_headers("div#import-preview"),
    )
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="import-preview"' in response.text
    assert "Invalid email" not in response.text  # the email column is no longer imported
    assert the_import().status == "uploaded"


def test_start_with_a_bad_mapping_is_a_422_keeping_every_choice(as_role):
    client, _user = as_role("admin")
    data_import = _uploaded(client)
    response = client.post(
        f"/imports/{data_import.id}/start",
        data={
            "column-0": "email",
            "column-1": "email",
            "column-2": "",
            "column-3": "city",
            "duplicate_policy": "update",
            "source": "x" * 61,
            "route_leads": "1",
        },
        headers=htmx_headers("section#import-mapping"),
    )
    assert response.status_code == 422
    text = response.text
    assert text.count("Already chosen for another column.") == 2
    assert "At most 60 characters." in text
    assert '<option value="city" selected>' in text
    assert 'value="update" checked' in text and 'name="route_leads" value="1" checked' in text
    assert the_import().status == "uploaded"
    assert Queue("imports", connection=redis_connection()).count == 0


def test_start_runs_in_the_worker_and_the_progress_stops_polling_when_done(app, as_role):
    client, _user = as_role("admin")
    data_import = _uploaded(client)
    response = client.post(
        f"/imports/{data_import.id}/start",
        data={
            "column-0": "first_name",
            "column-1": "last_name",
            "column-2": "email",
            "column-3": "city",
            "duplicate_policy": "skip",
            "source": "Salon",
        },
        headers=htmx_headers("section#import-mapping"),
    )
    assert response.status_code == 200 and "HX-Location" in response.headers
    assert the_import().status == "queued"
    progress = client.get(
        f"/imports/{data_import.id}/progress", headers=htmx_headers("section#import-progress")
    )
    assert 'hx-trigger="every 1s"' in progress.text and "<html" not in progress.text

    connection = worker_connection(app)
    InProcessWorker([Queue("imports", connection=connection)], connection=connection, app=app).work(
        burst=True
    )

    progress = client.get(
        f"/imports/{data_import.id}/progress", headers=htmx_headers("section#import-progress")
    )
    assert "every 1s" not in progress.text  # done: no more polling
    assert "100 %" in progress.text and "Open the report" in progress.text
    report = client.get(f"/imports/{data_import.id}").text
    assert "Import report" in report and "Invalid email: bad" in report
    assert db.session.scalars(select(Contact.source)).all() == ["Salon"]

    csv = client.get(f"/imports/{data_import.id}/rejected.csv")
    assert csv.mimetype == "text/csv"
    assert csv.data.startswith(b"\xef\xbb\xbf")
    assert csv.data.decode("utf-8-sig").splitlines() == [
        "Row;Reason;Prenom;Nom;Email;Ville",
        "3;Invalid email: bad;Ben;Jones;bad;Paris",
    ]

    undone = client.post(f"/imports/{data_import.id}/undo", headers=htmx_headers("body"))
    assert undone.status_code == 200
    assert the_import().status == "undone"
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0
    assert client.post(f"/imports/{data_import.id}/undo").status_code == 409  # once is enough


def test_rejected_csv_cells_are_neutralized(app, as_role):
    client, _user = as_role("admin")
    data_import = _uploaded(client, b'Name,Email\n"=HYPERLINK(""http://x"")",bad\n@SUM(1),worse\n')
    client.post(
        f"/imports/{data_import.id}/start",
        data={
            "column-0": "name",
            "column-1": "email",
            "duplicate_policy": "skip",
            "source": "import",
        },
    )
    connection = worker_connection(app)
    InProcessWorker([Queue("imports", connection=connection)], connection=connection, app=app).work(
        burst=True
    )
    lines = (
        client.get(f"/imports/{data_import.id}/rejected.csv").data.decode("utf-8-sig").splitlines()
    )
    assert lines[1].startswith("2,Invalid email: bad,\"'=HYPERLINK(")
    assert lines[2] == "3,Invalid email: worse,'@SUM(1),worse"


def test_list_shows_past_imports_and_a_discarded_upload_is_gone(as_role):
    client, _user = as_role("admin")
    data_import = _uploaded(client)
    page = client.get("/imports").text
    assert "people.csv" in page and "Columns to check" in page
    response = client.post(f"/imports/{data_import.id}/cancel", headers=htmx_headers("body"))
    assert response.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(DataImport)) == 0


def test_a_stalled_import_offers_resume(app, as_role):
    client, _user = as_role("admin")
    data_import = _uploaded(client)
    client.post(
        f"/imports/{data_import.id}/start",
        data={
            "column-0": "first_name",
            "column-2": "email",
            "duplicate_policy": "skip",
            "source": "import",
        },
    )
    redis_connection().flushdb()  # the job is lost; the row still says "queued"
    page = client.get(f"/imports/{data_import.id}").text
    assert "Resume" in page
    response = client.post(f"/imports/{data_import.id}/resume", headers=htmx_headers("body"))
    assert response.status_code == 200
    assert Queue("imports", connection=redis_connection()).count == 1


def test_query_counts_of_the_list_and_report_do_not_grow(app, as_role):
    client, admin = as_role("admin")

    def make_imports(count):
        for n in range(count):
            db.session.add(
                DataImport(
                    entity="contacts",
                    filename=f"f{n}.csv",
                    content=b"",
                    status="done",
                    created_by=admin,
                    rejected_count=0,
                )
            )
        db.session.commit()

    make_imports(3)
    small = int(client.get("/imports").headers["X-SQL-Queries"])
    make_imports(60)
    large = int(client.get("/imports").headers["X-SQL-Queries"])
    assert large == small <= 8
    report = db.session.scalars(select(DataImport)).first()
    assert int(client.get(f"/imports/{report.id}").headers["X-SQL-Queries"]) <= 8
