"""No full table scan on a list or a search: PostgreSQL's plans for the pages' queries.

Each page is requested as a user would; every statement it runs that reads the contact
or company table is then EXPLAINed, and a plan that reads one of them whole fails: a
Seq Scan, or an index read from end to end with no LIMIT to stop it (a sequential scan
in disguise; an index walked for its order under a LIMIT is what keyset pages do).

Two things together make the planner's choice the one it makes at 100,000 contacts:
- a few thousand rows, seeded by seed-scale and ANALYZEd, so that reading a table whole
  costs more than a walk or a lookup (on a few dozen rows it rightly costs less);
- `enable_seqscan = off`, which does not forbid a sequential scan but makes the planner
  take any index path there is: one left in the plan means no index can answer the
  query, whatever the row count. It also keeps the test from depending on where the
  planner's cost lines cross at this size. Seeding the 100,000 contacts themselves
  would take a minute; `make bench` measures that size.
"""

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from crm.extensions import db
from tests.backends import detect

pytestmark = pytest.mark.skipif(
    not detect().postgres, reason="EXPLAIN plans are PostgreSQL's; SQLite has no planner to check"
)

WATCHED = {"contact", "company"}


def _statements_of(client, url: str, watched=WATCHED) -> list[tuple[str, dict]]:
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith("EXPLAIN"):
            seen.append((statement, parameters))

    # On the Engine class: the request runs on the app's own engine, not on the test's.
    event.listen(Engine, "before_cursor_execute", record)
    try:
        response = client.get(url)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert response.status_code == 200, url
    return [(sql, params) for sql, params in seen if any(f" {t}" in sql for t in watched)]


# Nodes that read all of their input before giving a row: below them a LIMIT stops nothing.
_CONSUME_ALL = {"Sort", "Hash", "Aggregate", "SetOp", "WindowAgg", "Materialize"}


def _full_scans(plan: dict, limited: bool = False, watched=WATCHED) -> list[str]:
    """The watched relations this plan reads whole."""
    found = []
    node, relation = plan.get("Node Type"), plan.get("Relation Name")
    whole_index = node in ("Index Scan", "Index Only Scan") and "Index Cond" not in plan
    if relation in watched and (node == "Seq Scan" or (whole_index and not limited)):
        found.append(relation)
    if node == "Limit":
        limited = True
    elif node in _CONSUME_ALL:
        limited = False
    for child in plan.get("Plans", []):
        found += _full_scans(child, limited, watched)
    return found


def _scans_in(statements, watched=WATCHED) -> list[str]:
    found = []
    connection = db.session.connection()
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    for sql, params in statements:
        plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).scalar()
        if _full_scans(plan[0]["Plan"], watched=watched):
            text = connection.exec_driver_sql("EXPLAIN " + sql, params).scalars().all()
            found.append(sql + "\n" + "\n".join(text))
    db.session.rollback()
    return found


URLS = [
    "/contacts",
    "/contacts?stage=customer",
    "/contacts?sort=-activity",
    "/contacts?sort=company",
    "/contacts?sort=-company&stage=customer",
    "/contacts?q=dur",
    "/contacts?q=durand+jean",
    "/contacts?q=e",
    "/companies",
    "/companies?q=atel",
    "/search?q=dur",
]


def test_lists_and_searches_read_contacts_and_companies_through_indexes(app, ctx, login):
    from crm.models import User
    from crm.scale_data import REP_EMAIL, ScaleSizes, seed_scale

    seed_scale(ScaleSizes(contacts=3_000, companies=400, deals=100, activities=3_000, users=20))
    rep = db.session.scalars(db.select(User).where(User.email == REP_EMAIL)).one()
    client = login(app.test_client(), rep)

    found = {}
    for url in URLS:
        statements = _statements_of(client, url)
        assert statements, f"{url} read neither contacts nor companies"
        found[url] = _scans_in(statements)
    assert found == {url: [] for url in URLS}
    # The check itself: a filter no index serves reads the table whole, and is caught.
    assert _scans_in([("SELECT id FROM contact WHERE title = 'Buyer' ORDER BY id", None)])


SUPPORT = {"incident", "technician_booking"}
SUPPORT_URLS = [
    "/incidents",  # a support agent's default: their own open incidents, most urgent first
    "/incidents?view=open",
    "/incidents?view=unassigned",
    "/incidents?q=dur",
    "/incidents?q=machine",
    "/interventions",  # the dispatch board, this week
    "/interventions?view=day",
]


def test_incident_queue_and_dispatch_board_read_incidents_and_bookings_through_indexes(
    app, ctx, login
):
    from crm.models import User
    from crm.scale_data import SUPPORT_EMAIL, ScaleSizes, seed_scale

    seed_scale(
        ScaleSizes(
            contacts=1_000,
            companies=100,
            deals=50,
            activities=1_000,
            users=50,
            agenda=200,
            incidents=4_000,
            interventions=1_500,
        )
    )
    agent = db.session.scalars(db.select(User).where(User.email == SUPPORT_EMAIL)).one()
    client = login(app.test_client(), agent)

    found = {}
    for url in SUPPORT_URLS:
        statements = _statements_of(client, url, SUPPORT)
        assert statements, f"{url} read neither incidents nor bookings"
        found[url] = _scans_in(statements, SUPPORT)
    scans = [f"{url}:\n{plan}" for url, plans in found.items() for plan in plans]
    assert not scans, "\n\n".join(scans)
    # The board's bookings are read in the week's range, by technician.
    board = _statements_of(client, "/interventions", {"technician_booking"})
    assert any("starts_at <" in sql for sql, _params in board)
