"""The report page: who may open it, the table and its links, htmx updates with the address
kept, the CSV download neutralized, bad parameters answered 422 beside the field, and a
bounded number of SQL queries."""

import csv
import io
import re

import pytest

from crm.extensions import db
from tests.conftest import htmx_headers
from tests.factories import make_contact, make_deal, make_pipeline, make_user


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("manager", 200), ("sales", 403), ("support", 403), ("technician", 403)],
)
def test_reports_are_for_managers_and_admins(as_role, role, status):
    client, _ = as_role(role)
    assert client.get("/reports").status_code == status
    assert client.get("/reports/export.csv").status_code == status
    page = client.get("/").text
    assert ('href="/reports"' in page) == (status == 200)


def test_the_table_links_each_figure_to_the_filtered_list(as_role):
    client, admin = as_role("admin")
    pipeline = make_pipeline()
    ann = make_user(name="Ann")
    make_deal(pipeline, owner=ann, stage=pipeline.stages[0])
    make_deal(pipeline, owner=ann, stage=pipeline.stages[0])
    db.session.commit()
    page = client.get("/reports?dataset=deals&group=owner&group2=stage").text
    link = f'href="/deals/list?owner={ann.id}&amp;stage={pipeline.stages[0].id}">2</a>'
    assert link in page
    assert f'href="/deals/list?owner={ann.id}">2</a>' in page  # the row's total
    assert 'id="report-chart"' in page and 'role="img"' in page


def test_a_change_of_select_answers_the_report_only_and_sets_the_address(as_role):
    client, _ = as_role("manager")
    make_contact(stage="lead")
    db.session.commit()
    response = client.get(
        "/reports?shown=contacts&dataset=contacts&group=stage&group2=&measure=count&period=all",
        headers=htmx_headers("div#report"),
    )
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="report-table"' in response.text
    # The address bar gets the report as asked, without the form's bookkeeping.
    assert (
        response.headers["HX-Push-Url"]
        == "/reports?dataset=contacts&group=stage&measure=count&date=created&period=all"
    )


def test_changing_the_dataset_drops_the_old_datasets_choices(as_role):
    client, _ = as_role("admin")
    response = client.get(
        "/reports?shown=deals&dataset=incidents&group=pipeline&measure=amount_sum&owner=3&period=this_year"
    )
    assert response.status_code == 200
    assert (
        "dataset=incidents&group=owner&measure=count&date=created&period=this_year"
        in (response.headers["HX-Push-Url"])
    )


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("dataset=payroll", "dataset", "Choose a dataset from the list."),
        ("group=salary", "group", "Choose a grouping from the list."),
        ("group=owner&group2=owner", "group2", "Choose a second grouping other than the first."),
        ("dataset=contacts&measure=amount_avg", "measure", "This measure is not available"),
        ("period=custom&from=2026-02-30&to=2026-03-01", "from", "Enter a date such as"),
        ("owner=%27%3B%20DROP%20TABLE%20deal", "owner", "Choose a value from the list."),
        ("dataset=contacts&group=week", None, "Too many months or weeks"),
    ],
)
def test_bad_parameters_answer_422_with_the_message_beside_the_field(
    as_role, query, field, message
):
    client, _ = as_role("admin")
    if field is None:  # a report too long to draw: contacts over 25 years by week
        from datetime import UTC, datetime

        make_contact(created_at=datetime(2001, 1, 1, tzinfo=UTC))
        make_contact()
        db.session.commit()
    for headers in ({}, htmx_headers("div#report")):
        response = client.get(f"/reports?{query}", headers=headers)
        assert response.status_code == 422, query
        assert message in response.text
        if field:
            assert f'id="report-{field}-error"' in response.text
    # The CSV of a wrong report is the same clear page, not a file.
    export = client.get(f"/reports/export.csv?{query}")
    assert export.status_code == 422 and message in export.text


def test_csv_export_is_the_table_with_formula_cells_neutralized(as_role):
    client, _ = as_role("admin")
    make_contact(source='=HYPERLINK("http://evil.example")', stage="lead")
    make_contact(source="+cmd|' /C calc'!A0", stage="customer")
    make_contact(source="web", stage="lead")
    db.session.commit()
    response = client.get("/reports/export.csv?dataset=contacts&group=source&group2=stage")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="report-contacts-'
    )
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["Source / Lifecycle stage", "Lead", "Customer", "Total"]
    sources = [row[0] for row in rows[1:-1]]
    assert "'+cmd|' /C calc'!A0" in sources and '\'=HYPERLINK("http://evil.example")' in sources
    assert rows[-1] == ["Total", "2", "1", "3"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


def test_the_download_link_carries_the_report(as_role):
    client, _ = as_role("admin")
    page = client.get("/reports?dataset=incidents&group=priority&period=last_month").text
    href = re.search(r'id="report-csv" href="([^"]+)"', page)[1]
    assert (
        href
        == "/reports/export.csv?dataset=incidents&amp;group=priority&amp;measure=count&amp;date=created&amp;period=last_month"
    )


def _queries(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return int(response.headers["X-SQL-Queries"])


def test_a_report_runs_a_bounded_number_of_queries(as_role):
    client, _ = as_role("admin")
    pipeline = make_pipeline()
    urls = [
        "/reports",
        "/reports?dataset=deals&group=owner&group2=stage&measure=amount_sum",
        "/reports?dataset=deals&group=month&group2=team&date=created&period=this_year",
        "/reports?dataset=contacts&group=company&group2=owner",
        "/reports?dataset=incidents&group=status&group2=priority",
        "/reports?dataset=activities&group=owner&group2=kind&period=this_month",
    ]

    def fill(count):
        owners = [make_user() for _ in range(3)]
        for i in range(count):
            make_deal(pipeline, stage=pipeline.stages[i % 6], owner=owners[i % 3])
            make_contact(owner=owners[i % 3])
        db.session.commit()

    fill(5)
    small = {url: _queries(client, url) for url in urls}
    fill(150)
    large = {url: _queries(client, url) for url in urls}
    assert large == small
    assert max(large.values()) <= 14, large
