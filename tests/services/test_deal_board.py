"""The board's columns: totals raw and weighted per stage and currency, cards, flags, filters."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm.extensions import db
from crm.models.types import utcnow
from crm.services import deal_board
from crm.services.deal_filters import DealFilters
from tests.factories import make_deal, make_pipeline, make_team, make_user

TODAY = date(2026, 3, 16)


@pytest.fixture
def admin(ctx):
    return make_user(role="admin")


@pytest.fixture
def pipeline(ctx):
    return make_pipeline()


def stage(pipeline, name):
    return next(s for s in pipeline.stages if s.name == name)


def board(user, pipeline, filters=None, **options):
    columns = deal_board.load_board(
        user, pipeline, filters or DealFilters(), today=TODAY, **options
    )
    return {column.stage.name: column for column in columns}


def test_one_column_per_stage_in_order_even_when_empty(admin, pipeline):
    columns = deal_board.load_board(admin, pipeline, DealFilters())
    assert [c.stage.name for c in columns] == [
        "Prospection",
        "First contact",
        "Demo",
        "Proposal review",
        "Won",
        "Lost",
    ]
    assert all(c.count == 0 and c.total == 0 and c.deals == [] for c in columns)


def test_totals_raw_and_weighted_per_stage(admin, pipeline):
    make_deal(pipeline, owner=admin, amount="1000")
    make_deal(pipeline, owner=admin, amount="2500.50")
    make_deal(pipeline, stage(pipeline, "Demo"), owner=admin, amount="3000")
    db.session.commit()

    columns = board(admin, pipeline)
    prospection, demo = columns["Prospection"], columns["Demo"]
    assert (prospection.count, prospection.total, prospection.weighted) == (
        2,
        Decimal("3500.50"),
        Decimal("350.05"),  # 10 %
    )
    assert (demo.count, demo.total, demo.weighted) == (1, Decimal("3000.00"), Decimal("1200.00"))
    assert columns["First contact"].count == 0


def test_currencies_are_never_added_together(admin, pipeline):
    make_deal(pipeline, owner=admin, amount="1000")
    make_deal(pipeline, owner=admin, amount="500", currency="USD")
    demo = stage(pipeline, "Demo")
    make_deal(pipeline, demo, owner=admin, amount="100", currency="USD")
    make_deal(pipeline, demo, owner=admin, amount="200", currency="USD")
    make_deal(pipeline, demo, owner=admin, amount="7000")
    db.session.commit()

    columns = board(admin, pipeline)
    prospection = columns["Prospection"]
    # A tie: the default currency leads, the other one is listed apart.
    assert (prospection.count, prospection.currency, prospection.total) == (
        2,
        "EUR",
        Decimal("1000.00"),
    )
    assert [(o.currency, o.count, o.total, o.weighted) for o in prospection.others] == [
        ("USD", 1, Decimal("500.00"), Decimal("50.00"))
    ]
    # The column's main currency is the one most of its deals use.
    demo_column = columns["Demo"]
    assert (demo_column.currency, demo_column.total, demo_column.weighted) == (
        "USD",
        Decimal("300.00"),
        Decimal("120.00"),
    )
    assert [(o.currency, o.total) for o in demo_column.others] == [("EUR", Decimal("7000.00"))]
    assert demo_column.count == 3


def test_closed_columns_show_the_last_30_days(admin, pipeline):
    now = utcnow()
    won, lost = stage(pipeline, "Won"), stage(pipeline, "Lost")
    recent = make_deal(pipeline, won, owner=admin, amount="900", closed_at=now - timedelta(days=3))
    make_deal(pipeline, won, owner=admin, amount="5000", closed_at=now - timedelta(days=45))
    make_deal(pipeline, lost, owner=admin, amount="100", closed_at=now - timedelta(days=29))
    db.session.commit()

    columns = board(admin, pipeline, now=now)
    assert [d.id for d in columns["Won"].deals] == [recent.id]
    assert (columns["Won"].count, columns["Won"].total, columns["Won"].weighted) == (
        1,
        Decimal("900.00"),
        Decimal("900.00"),
    )
    assert (columns["Lost"].count, columns["Lost"].weighted) == (1, Decimal("0.00"))


def test_cards_are_limited_per_column_soonest_close_first(admin, pipeline):
    undated = make_deal(pipeline, owner=admin, title="Undated")
    late = make_deal(pipeline, owner=admin, title="Late", expected_close=TODAY + timedelta(days=30))
    soon = make_deal(pipeline, owner=admin, title="Soon", expected_close=TODAY + timedelta(days=2))
    make_deal(pipeline, stage(pipeline, "Demo"), owner=admin)
    db.session.commit()

    columns = board(admin, pipeline, limit=2)
    prospection = columns["Prospection"]
    assert [d.id for d in prospection.deals] == [soon.id, late.id]
    assert (prospection.count, prospection.more) == (3, 1)
    assert columns["Demo"].more == 0
    assert undated.id not in [d.id for c in columns.values() for d in c.deals]


def test_stalled_and_overdue_flags(admin, pipeline):
    now = utcnow()
    today = now.date()
    stalled = make_deal(pipeline, owner=admin, stage_entered_at=now - timedelta(days=15))  # 14 days
    fresh = make_deal(pipeline, owner=admin, stage_entered_at=now - timedelta(days=13))
    overdue = make_deal(pipeline, owner=admin, expected_close=today - timedelta(days=1))
    due_today = make_deal(pipeline, owner=admin, expected_close=today)
    won_long_ago = make_deal(
        pipeline,
        stage(pipeline, "Won"),
        owner=admin,
        expected_close=today - timedelta(days=9),
        stage_entered_at=now - timedelta(days=60),
        closed_at=now - timedelta(days=2),
    )
    db.session.commit()

    def flags(deal):
        return deal_board.card_flags(deal, today=today, now=now)

    assert flags(stalled) == {"stalled": True, "overdue": False}
    assert flags(fresh) == {"stalled": False, "overdue": False}
    assert flags(overdue) == {"stalled": False, "overdue": True}
    assert flags(due_today)["overdue"] is False
    # A closed deal is neither stalled nor overdue.
    assert flags(won_long_ago) == {"stalled": False, "overdue": False}


def test_filters_apply_to_cards_and_totals(admin, pipeline):
    team = make_team()
    rep = make_user(role="sales", team=team)
    other = make_user(role="sales")
    make_deal(pipeline, owner=rep, title="Acme renewal", amount="1000", expected_close=TODAY)
    make_deal(
        pipeline,
        owner=other,
        title="Globex pilot",
        amount="4000",
        expected_close=TODAY + timedelta(days=40),
    )
    make_deal(
        pipeline,
        owner=admin,
        title="Acme extension",
        amount="300",
        expected_close=TODAY - timedelta(days=3),
    )
    db.session.commit()

    def prospection(**filters):
        column = board(admin, pipeline, DealFilters(**filters))["Prospection"]
        return sorted(d.title for d in column.deals), column.total

    assert prospection() == (["Acme extension", "Acme renewal", "Globex pilot"], Decimal("5300.00"))
    assert prospection(q="acme") == (["Acme extension", "Acme renewal"], Decimal("1300.00"))
    assert prospection(owner="me") == (["Acme extension"], Decimal("300.00"))
    assert prospection(owner=str(other.id)) == (["Globex pilot"], Decimal("4000.00"))
    assert prospection(team=team.id) == (["Acme renewal"], Decimal("1000.00"))
    assert prospection(close="this_month") == (
        ["Acme extension", "Acme renewal"],
        Decimal("1300.00"),
    )
    assert prospection(close="overdue") == (["Acme extension"], Decimal("300.00"))


def test_a_rep_sees_only_their_own_deals_and_totals(pipeline):
    rep, colleague = make_user(role="sales"), make_user(role="sales")
    make_deal(pipeline, owner=rep, amount="100")
    make_deal(pipeline, owner=colleague, amount="9999")
    db.session.commit()

    column = board(rep, pipeline)["Prospection"]
    assert (column.count, column.total) == (1, Decimal("100.00"))
    assert board(make_user(role="support"), pipeline)["Prospection"].count == 0


def test_other_pipelines_stay_off_the_board(admin, pipeline):
    other = make_pipeline()
    make_deal(other, owner=admin, amount="777")
    make_deal(pipeline, owner=admin, amount="1")
    db.session.commit()
    assert board(admin, pipeline)["Prospection"].total == Decimal("1.00")


def test_column_heads_after_a_move(admin, pipeline):
    demo = stage(pipeline, "Demo")
    make_deal(pipeline, owner=admin, amount="100")
    make_deal(pipeline, demo, owner=admin, amount="250")
    db.session.commit()

    heads = deal_board.column_heads(admin, pipeline, DealFilters(), [pipeline.stages[0], demo])
    assert [(h.stage.name, h.count, h.total, h.weighted, h.deals) for h in heads] == [
        ("Prospection", 1, Decimal("100.00"), Decimal("10.00"), []),
        ("Demo", 1, Decimal("250.00"), Decimal("100.00"), []),
    ]


def test_filter_choices_follow_the_role(ctx):
    team = make_team()
    manager = make_user(role="manager", team=team, name="Mia Manager")
    teammate = make_user(role="sales", team=team, name="Tom Teammate")
    make_user(role="sales", name="Olga Outsider")
    make_user(role="support", team=team, name="Sam Support")
    admin = make_user(role="admin", name="Ada Admin")
    db.session.commit()

    assert [u.name for u in deal_board.owner_choices(manager)] == ["Mia Manager", "Tom Teammate"]
    assert {u.name for u in deal_board.owner_choices(admin)} == {
        "Ada Admin",
        "Mia Manager",
        "Olga Outsider",
        "Tom Teammate",
    }
    assert deal_board.owner_choices(teammate) == []
    assert [t.id for t in deal_board.team_choices(admin)] == [team.id]
    assert deal_board.team_choices(manager) == []
