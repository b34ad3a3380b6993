"""Report figures agree with the lists they summarize, with independent counts and with hand
counts; every dataset and grouping; periods and months in the user's time zone."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from crm.extensions import db
from crm.models import Activity, Contact, CustomFieldDefinition, Deal, Incident, Stage, User
from crm.services import deal_list
from crm.services import reports as rp
from crm.services.contacts import ContactFilters, list_contacts
from crm.services.deal_filters import DealFilters
from crm.services.incidents import IncidentFilters, list_incidents
from tests.dashboards_factories import at, build_sales
from tests.factories import make_activity, make_contact, make_incident, make_team, make_user

NOW = at(2026, 3, 20)
TODAY = date(2026, 3, 20)


@pytest.fixture(autouse=True)
def request_context(data_app, ctx):
    """Labels are translated when read, in the language of a request."""
    with data_app.test_request_context():
        yield


def report(user, **args):
    query = rp.parse_query(MultiDict(args), user, TODAY)
    return rp.run(user, query)


def figures(result, measure=None) -> dict:
    """{(row label-or-key, column key): value} of every non-empty cell."""
    return {key: result.value(cell) for key, cell in result.cells.items()}


def count_of(model, *conditions) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*conditions))


def listed(user, endpoint: str, args: dict) -> int:
    """How many records the list behind a link shows: its own service, same filters."""
    args = MultiDict({key: str(value) for key, value in args.items()})  # as in a URL
    if endpoint == "deals.list_view":
        page = deal_list.list_deals(
            user, DealFilters.from_args(args), "-updated", None, size=10_000
        )
        return len(page.deals)
    if endpoint == "contacts.index":
        return len(list_contacts(user, ContactFilters.from_args(args), size=10_000).contacts)
    if endpoint == "incidents.index":
        return len(
            list_incidents(user, IncidentFilters.from_args(args, user), size=10_000).incidents
        )
    raise AssertionError(endpoint)


def check_links(user, result) -> int:
    """Every cell and total that links to a list links to exactly its own records."""
    checked = 0
    keys = [(r.key, c.key) for r in result.rows for c in result.columns] if result.columns else []
    keys += [(r.key, rp.ALL) for r in result.rows]
    keys += [(rp.ALL, c.key) for c in result.columns] + [(rp.ALL, rp.ALL)]
    for row_key, column_key in keys:
        if row_key is rp.ALL and column_key is rp.ALL:
            cell = result.total
        elif column_key is rp.ALL:
            cell = result.row_totals.get(row_key, rp.Cell())
        elif row_key is rp.ALL:
            cell = result.column_totals.get(column_key, rp.Cell())
        else:
            cell = result.cell(row_key, column_key)
        args = result.list_args(row_key, column_key)
        if args is None:
            continue
        assert listed(user, result.list_endpoint, args) == cell.count, (row_key, column_key, args)
        checked += 1
    return checked


# ---- deals --------------------------------------------------------------------------------------


def test_deals_by_owner_and_stage_agree_with_the_deal_list_and_hand_counts(ctx):
    s = build_sales(NOW)
    result = report(s.manager, dataset="deals", group="owner", group2="stage")
    st = s.stages
    # The manager sees the North team's deals: Ann a1 won, a2 proposal, a3 lost; Bob b1 won,
    # b2 and b3 in prospection. Eve's deal is another team's.
    assert figures(result) == {
        (s.ann.id, st["Won"].id): 1,
        (s.ann.id, st["Proposal review"].id): 1,
        (s.ann.id, st["Lost"].id): 1,
        (s.bob.id, st["Won"].id): 1,
        (s.bob.id, st["Prospection"].id): 2,
    }
    assert result.total.count == 6
    assert [h.label for h in result.rows] == ["Ann Able", "Bob Baker"]
    # Stages in pipeline order, not alphabetical.
    assert [h.label for h in result.columns] == ["Prospection", "Proposal review", "Won", "Lost"]
    # Every figure (empty ones too: the list shows none) opens the deal list filtered the
    # same way, and the list counts the same: 2 x 4 cells, 2 + 4 totals and the grand total.
    assert check_links(s.manager, result) == 8 + 2 + 4 + 1


def test_deal_amounts_sum_and_average_per_currency(ctx):
    s = build_sales(NOW)
    admin = make_user(role="admin")
    result = report(admin, dataset="deals", group="team", measure="amount_sum")
    # EUR only: North 1000 + 2000 + 500 + 3000 + 400 = 6900, South 9000; b3 is in USD.
    assert figures(result) == {
        (s.team.id, None): Decimal("6900.00"),
        (s.other_team.id, None): Decimal("9000.00"),
    }
    assert result.other_currencies == {"USD": 1}
    average = report(admin, dataset="deals", group="team", measure="amount_avg")
    assert figures(average)[(s.team.id, None)] == Decimal("1380.00")
    assert average.value(average.total) == Decimal("2650.00")  # 15900 / 6
    usd = report(admin, dataset="deals", group="owner", measure="amount_sum", currency="USD")
    assert figures(usd) == {(s.bob.id, None): Decimal("700.00")}
    # Sums are not linked: the deal list does not filter by currency.
    assert result.list_args(s.team.id) is None


def test_deals_closed_in_a_period_by_month_and_status(ctx):
    build_sales(NOW)
    admin = make_user(role="admin", timezone="Europe/Paris")
    result = report(
        admin, dataset="deals", group="status", group2="month", date="closed", period="this_quarter"
    )
    # Closed in the quarter: won a1, b1, e1 and lost a3, all in March.
    assert figures(result) == {("won", 2): 3, ("lost", 2): 1}
    assert [h.label for h in result.columns] == [date(2026, 3, 1)]
    assert result.total.count == count_of(
        Deal,
        Deal.closed_at >= at(2026, 1, 1, 0) - timedelta(hours=1),
        Deal.closed_at < at(2026, 4, 1, 0),
    )
    # A period the deal list cannot apply: no link rather than a wrong one.
    assert check_links(admin, result) == 0


def test_deals_expected_this_month_link_to_the_close_filter(ctx):
    s = build_sales(NOW)
    admin = make_user(role="admin")
    result = report(
        admin, dataset="deals", group="owner", date="expected_close", period="this_month"
    )
    # Expected in March: a2 (25th) and b2 (1st).
    assert figures(result) == {(s.ann.id, None): 1, (s.bob.id, None): 1}
    assert result.list_args(s.ann.id) == {"owner": s.ann.id, "close": "this_month"}


def test_every_deal_grouping_adds_up_to_the_independent_count(ctx):
    s = build_sales(NOW)
    admin = make_user(role="admin", timezone="Europe/Paris")
    everything = count_of(Deal)
    for key in rp.DEALS.dimensions:
        result = report(admin, dataset="deals", group=key)
        assert result.total.count == everything, key
        assert sum(c.count for c in result.row_totals.values()) == everything, key
    by_country = report(admin, dataset="deals", group="country")
    assert figures(by_country) == {("France", None): 1, (None, None): 6}
    by_pipeline = report(admin, dataset="deals", group="pipeline", stage=str(s.stages["Won"].id))
    assert figures(by_pipeline) == {(s.pipeline.id, None): 3}
    assert check_links(admin, by_pipeline) == 2


def test_filters_narrow_the_report_and_the_list_alike(ctx):
    s = build_sales(NOW)
    admin = make_user(role="admin")
    result = report(admin, dataset="deals", group="stage", team=str(s.team.id), owner=str(s.bob.id))
    assert figures(result) == {(s.stages["Won"].id, None): 1, (s.stages["Prospection"].id, None): 2}
    assert check_links(admin, result) == 3
    # The status filter has no list filter: figures, but no link.
    result = report(admin, dataset="deals", group="owner", status="open")
    assert result.total.count == count_of(Deal, Deal.stage.has(Stage.kind == "open"))
    assert check_links(admin, result) == 0


# ---- activities, incidents, contacts ---------------------------------------------------------------


def test_activities_by_author_and_kind(ctx):
    ann = make_user(name="Ann", team=make_team("T1"))
    bob = make_user(name="Bob")
    contact = make_contact()
    for kind, author in [("call", ann), ("call", ann), ("note", bob), ("meeting", ann)]:
        make_activity(contact, kind, author=author, occurred_at=at(2026, 3, 5))
    make_activity(contact, "call", author=bob, occurred_at=at(2026, 1, 5))
    admin = make_user(role="admin")
    result = report(admin, dataset="activities", group="owner", group2="kind", period="this_month")
    assert figures(result) == {(ann.id, "call"): 2, (ann.id, "meeting"): 1, (bob.id, "note"): 1}
    all_time = report(admin, dataset="activities", group="kind")
    assert all_time.total.count == count_of(Activity)
    by_team = report(admin, dataset="activities", group="team", kind="call")
    assert figures(by_team) == {(ann.team_id, None): 2, (None, None): 1}


def test_incidents_by_status_and_priority_agree_with_the_queue(ctx):
    team = make_team("Support")
    for status, priority, team_ in [
        ("new", "high", team),
        ("new", "high", None),
        ("open", "low", team),
        ("resolved", "normal", None),
        ("closed", "urgent", team),
    ]:
        make_incident(status=status, priority=priority, team=team_)
    manager = make_user(role="manager")
    result = report(manager, dataset="incidents", group="status", group2="priority")
    assert figures(result) == {
        ("new", "high"): 2,
        ("open", "low"): 1,
        ("resolved", "normal"): 1,
        ("closed", "urgent"): 1,
    }
    # Statuses in their workflow order.
    assert [h.key for h in result.rows] == ["new", "open", "resolved", "closed"]
    assert check_links(manager, result) == 16 + 4 + 4 + 1
    by_team = report(manager, dataset="incidents", group="team", priority="high")
    assert figures(by_team) == {(team.id, None): 1, (None, None): 1}
    assert (
        check_links(manager, by_team) == 2
    )  # the team's row and the total; "no team" has no filter


def test_a_reps_incidents_are_those_of_their_customers(ctx):
    rep = make_user(role="sales")
    mine = make_contact(owner=rep)
    make_incident(contact=mine)
    make_incident(contact=make_contact())
    result = report(rep, dataset="incidents", group="status")
    assert result.total.count == 1


def test_contacts_by_stage_and_owner_agree_with_the_contact_list(ctx):
    ann, bob = make_user(name="Ann"), make_user(name="Bob")
    for stage, owner in [("lead", ann), ("lead", ann), ("customer", bob), ("lead", None)]:
        make_contact(stage=stage, owner=owner, source="web")
    admin = make_user(role="admin")
    result = report(admin, dataset="contacts", group="stage", group2="owner")
    assert figures(result) == {("lead", ann.id): 2, ("customer", bob.id): 1, ("lead", None): 1}
    # Stage x owner, "no owner" (owner=none) and the totals all link to the contact list.
    assert check_links(admin, result) == 6 + 2 + 3 + 1
    by_source = report(admin, dataset="contacts", group="source", stage="lead")
    assert figures(by_source) == {("web", None): 3}


def test_months_and_weeks_are_those_of_the_users_time_zone(ctx):
    paris = make_user(role="admin", timezone="Europe/Paris")
    tokyo = make_user(role="admin", timezone="Asia/Tokyo")
    # 23:30 UTC on March 31st: April 1st in Paris (summer time) and in Tokyo, March in UTC.
    make_contact(created_at=at(2026, 3, 31, 23) + timedelta(minutes=30))
    # 16:00 UTC on March 31st: still March in Paris, already April 1st in Tokyo.
    make_contact(created_at=at(2026, 3, 31, 16))
    make_contact(created_at=at(2026, 3, 2))
    quarter = dict(dataset="contacts", group="month", period="this_quarter")
    assert figures(report(paris, **quarter)) == {(2, None): 2}
    april = dict(
        dataset="contacts",
        group="month",
        period="custom",
        **{"from": "2026-04-01", "to": "2026-04-30"},
    )
    assert report(paris, **april).total.count == 1
    assert report(tokyo, **april).total.count == 2
    # Weeks start on Monday: March 30 (Monday) holds both late ones in Paris.
    weeks = report(paris, dataset="contacts", group="week")
    assert {
        h.label: result
        for h, result in zip(
            weeks.rows, [weeks.row_totals[h.key].count for h in weeks.rows], strict=True
        )
    } == {date(2026, 3, 2): 1, date(2026, 3, 30): 2}
    assert [h.label for h in weeks.rows] == [date(2026, 3, 2), date(2026, 3, 30)]


def test_custom_choice_fields_group_records(ctx, monkeypatch):
    from crm.services import custom_fields

    definition = CustomFieldDefinition(
        entity="contact",
        key="budget",
        label="Budget",
        field_type="choice",
        choices=["small", "large"],
    )
    db.session.add(definition)
    db.session.flush()
    try:
        custom_fields.definitions("contact")
    except NotImplementedError:  # the custom fields work has not landed: stand in for it
        monkeypatch.setattr(custom_fields, "definitions", lambda entity, **_: [definition])
    for budget in ("large", "small", "large", None):
        make_contact(custom_fields={"budget": budget} if budget else {})
    admin = make_user(role="admin")
    result = report(admin, dataset="contacts", group="cf_budget")
    assert [h.key for h in result.rows] == ["small", "large", None]
    assert figures(result) == {("small", None): 1, ("large", None): 2, (None, None): 1}


def test_without_the_custom_fields_service_there_is_no_custom_grouping(ctx, monkeypatch):
    from crm.services import custom_fields

    def not_yet(entity, include_inactive=False):
        raise NotImplementedError

    monkeypatch.setattr(custom_fields, "definitions", not_yet)
    assert rp.custom_dimensions(rp.CONTACTS) == {}
    admin = make_user(role="admin")
    with pytest.raises(rp.ReportError) as refused:
        report(admin, dataset="contacts", group="cf_budget")
    assert refused.value.field == "group"


# ---- the question, checked ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"dataset": "payroll"}, "dataset"),
        ({"group": "salary"}, "group"),
        ({"group": "owner", "group2": "owner"}, "group2"),
        ({"dataset": "contacts", "measure": "amount_sum"}, "measure"),
        ({"date": "birthday"}, "date"),
        ({"period": "forever"}, "period"),
        ({"period": "custom", "from": "2026-03-01"}, "to"),
        ({"period": "custom", "from": "31/03/2026", "to": "2026-04-01"}, "from"),
        ({"period": "custom", "from": "2026-04-01", "to": "2026-03-01"}, "to"),
        ({"period": "custom", "from": "0001-01-01", "to": "2026-03-01"}, "from"),
        ({"owner": "1 OR 1=1"}, "owner"),
        ({"status": "sold"}, "status"),
        ({"measure": "amount_sum", "currency": "EURO'"}, "currency"),
    ],
)
def test_bad_questions_are_refused_with_the_field_named(ctx, args, field):
    admin = make_user(role="admin")
    with pytest.raises(rp.ReportError) as refused:
        rp.parse_query(MultiDict(args), admin, TODAY)
    assert refused.value.field == field
    assert str(refused.value.message)


def test_amounts_are_not_offered_to_whom_may_not_see_them(ctx, monkeypatch):
    from crm.permissions import POLICY

    manager = make_user(role="manager")
    assert "amount_sum" in rp.measures_for(rp.DEALS, manager)
    monkeypatch.setitem(POLICY, "deals.see_amounts", frozenset({"admin"}))
    assert list(rp.measures_for(rp.DEALS, manager)) == ["count"]
    with pytest.raises(rp.ReportError):
        rp.parse_query(MultiDict({"measure": "amount_sum"}), manager, TODAY)


def test_many_rows_end_in_others_and_totals_stay_whole(ctx, monkeypatch):
    monkeypatch.setattr(rp, "MAX_ROWS", 3)
    for n in range(6):
        make_contact(source=f"s{n}")
    make_contact(source="s0")
    admin = make_user(role="admin")
    result = report(admin, dataset="contacts", group="source")
    assert [h.key for h in result.rows][-1] == rp.OTHERS
    assert len(result.rows) == 3 and result.hidden_rows == 4
    assert result.total.count == 7 == count_of(Contact)
    assert result.row_totals["s0"].count == 2
    assert result.list_args(rp.OTHERS) is None


def test_too_many_weeks_is_a_clear_refusal(ctx):
    make_contact(created_at=at(2016, 1, 1))
    make_contact(created_at=at(2026, 1, 1))
    admin = make_user(role="admin")
    with pytest.raises(rp.ReportError) as refused:
        report(admin, dataset="contacts", group="week")
    assert refused.value.field == "group"
    assert report(admin, dataset="contacts", group="month").total.count == 2


def test_the_csv_rows_are_the_table_with_totals(ctx):
    s = build_sales(NOW)
    result = report(s.manager, dataset="deals", group="owner", group2="status")
    header, rows = rp.table_rows(result, lambda h: str(h.label))
    assert header == ["Owner / Status", "Open", "Won", "Lost", "Total"]
    assert rows == [
        ["Ann Able", "1", "1", "1", "3"],
        ["Bob Baker", "2", "1", "0", "3"],
        ["Total", "3", "2", "1", "6"],
    ]


def test_no_user_sees_more_than_their_scope(ctx):
    s = build_sales(NOW)
    rep_report = report(s.eve, dataset="deals", group="owner")
    assert figures(rep_report) == {(s.eve.id, None): 1}
    assert count_of(User) == 4  # nothing else made behind the test's back
    assert count_of(Incident) == 0
