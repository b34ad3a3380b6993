"""Forecasts and objectives on hand-built deals, with the figures worked out by hand.

The clock is fixed at 15 March 2026, 12:00 UTC; users are in Europe/Paris (UTC+1 in March).
Default pipeline: Prospection 10 %, First contact 20 %, Demo 40 % (meeting), Proposal review
70 % (proposal), Won, Lost.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crm.extensions import db
from crm.models import Deal, DealLine, DealStageHistory, Quota
from crm.permissions import visible_deals
from crm.services import forecast as fc
from crm.services.deals import margin
from tests.factories import make_deal, make_pipeline, make_team, make_user

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
TODAY = date(2026, 3, 15)
MARCH = fc.Period("month", date(2026, 3, 1))
Q1 = fc.Period("quarter", date(2026, 1, 1))
D = Decimal


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=UTC)


@pytest.fixture
def pipeline(ctx):
    return make_pipeline()


def stages(pipeline):
    prospection, first_contact, demo, proposal, won, lost = pipeline.stages
    return prospection, first_contact, demo, proposal, won, lost


def walk(deal: Deal, *moves) -> Deal:
    """Move `deal` through (stage, when) pairs, writing the stage history as the app does."""
    for stage, when in moves:
        db.session.add(
            DealStageHistory(
                deal_id=deal.id, from_stage=deal.stage, to_stage=stage, changed_at=when
            )
        )
        deal.stage = stage
        deal.stage_entered_at = when
        deal.closed_at = when if stage.kind != "open" else None
    db.session.flush()
    return deal


def line(deal: Deal, quantity: str, price: str, cost: str | None, discount: str = "0") -> None:
    deal.lines.append(
        DealLine(
            description="line",
            quantity=D(quantity),
            unit_price=D(price),
            unit_cost=D(cost) if cost is not None else None,
            discount_percent=D(discount),
            position=len(deal.lines),
        )
    )
    db.session.flush()


def quota(target: str, period: fc.Period, user=None, team=None) -> None:
    db.session.add(
        Quota(
            user=user,
            team=team,
            period_kind=period.kind,
            period_start=period.start,
            target=D(target),
        )
    )
    db.session.flush()


# ---- periods -------------------------------------------------------------------------------


class TestPeriod:
    def test_parse_months_and_quarters_from_the_url(self):
        assert fc.Period.parse("2026-03", TODAY) == MARCH
        assert fc.Period.parse("2026-Q1", TODAY) == Q1
        assert fc.Period.parse("2026-Q4", TODAY).start == date(2026, 10, 1)
        for junk in ("", None, "2026-13", "2026-Q5", "march", "2026-3"):
            assert fc.Period.parse(junk, TODAY) == MARCH

    def test_bounds_and_neighbours_cross_the_year(self):
        december = fc.Period("month", date(2025, 12, 1))
        assert december.end == date(2026, 1, 1)
        assert december.next.key == "2026-01" and december.previous.key == "2025-11"
        assert Q1.previous.key == "2025-Q4" and Q1.next.key == "2026-Q2"
        assert Q1.end == date(2026, 4, 1)
        assert MARCH.quarter == Q1
        assert Q1.as_month(TODAY) == MARCH  # today is inside: its month
        assert Q1.next.as_month(TODAY).key == "2026-04"  # else the first month

    def test_bounds_are_local_midnights(self):
        start, end = MARCH.utc_bounds(fc.ZoneInfo("Europe/Paris"))
        assert start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
        assert end == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)  # summer time from 29 March


# ---- weighted pipeline --------------------------------------------------------------------------


@pytest.fixture
def rep_book(pipeline):
    """A rep's open deals across the buckets, a won deal, and a colleague's deal."""
    prospection, first_contact, demo, proposal, won, _lost = stages(pipeline)
    rep, colleague = make_user(), make_user()
    deal = lambda stage, amount, close=None, **kw: make_deal(  # noqa: E731
        pipeline, stage, rep, amount, expected_close=close, **kw
    )
    deals = {
        "a": deal(demo, "1000", date(2026, 3, 20)),  # March: 400.00
        "b": deal(proposal, "2500", date(2026, 3, 31)),  # March: 1750.00
        "c": deal(prospection, "333.33", date(2026, 4, 2)),  # April: 33.33
        "d": deal(proposal, "1000", date(2026, 4, 10), currency="USD"),  # April: USD 700.00
        "e": deal(first_contact, "800", date(2026, 3, 10)),  # overdue: 160.00
        "f": deal(demo, "5000", date(2026, 9, 1)),  # later (after August): 2000.00
        "g": deal(prospection, "100"),  # no date: 10.00
        "won": deal(won, "9999", date(2026, 3, 20), closed_at=at("2026-03-02")),
    }
    make_deal(pipeline, demo, colleague, "7777", expected_close=date(2026, 3, 20))
    db.session.commit()
    return rep, deals


def test_weighted_pipeline_by_month_per_currency(rep_book):
    rep, _deals = rep_book
    scope = fc.Scope.of(rep)
    buckets = {b.key: b for b in fc.pipeline_by_month(fc.deal_sums(scope, TODAY), TODAY)}
    assert list(buckets) == [
        "overdue",
        "2026-03",
        "2026-04",
        "2026-05",
        "2026-06",
        "2026-07",
        "2026-08",
        "later",
        "undated",
    ]
    assert buckets["2026-03"].weighted == {"EUR": D("2150.00")}
    assert buckets["2026-03"].amount == {"EUR": D("3500.00")}
    assert buckets["2026-03"].count == 2
    assert buckets["2026-04"].weighted == {"EUR": D("33.33"), "USD": D("700.00")}
    assert buckets["overdue"].weighted == {"EUR": D("160.00")}
    assert buckets["later"].weighted == {"EUR": D("2000.00")}
    assert buckets["undated"].weighted == {"EUR": D("10.00")}
    assert buckets["2026-05"].count == 0 and buckets["2026-05"].weighted == {}
    total = fc.total_of(list(buckets.values()))
    assert total.count == 7
    assert total.weighted == {"EUR": D("4353.33"), "USD": D("700.00")}


def test_weighted_is_rounded_per_deal_like_the_deal_itself(pipeline):
    prospection = pipeline.stages[0]
    rep = make_user()
    deals = [
        make_deal(pipeline, prospection, rep, "10.05", expected_close=date(2026, 3, 20))
        for _ in range(2)
    ]
    db.session.commit()
    sums = fc.deal_sums(fc.Scope.of(rep), TODAY)
    (march,) = [b for b in fc.pipeline_by_month(sums, TODAY) if b.count]
    # 1.005 each, rounded half-even to 1.00 on the deal: the bucket is the sum of what deals show.
    assert march.weighted == {"EUR": sum(d.weighted_amount for d in deals)} == {"EUR": D("2.00")}


def test_pipeline_by_rep(rep_book, pipeline):
    rep, _deals = rep_book
    manager = make_user(role="admin")
    by_owner = fc.pipeline_by_rep(fc.deal_sums(fc.Scope.of(manager), TODAY))
    assert by_owner[rep.id].weighted == {"EUR": D("4353.33"), "USD": D("700.00")}
    assert by_owner[rep.id].count == 7
    (other,) = [b for owner, b in by_owner.items() if owner != rep.id]
    assert other.weighted == {"EUR": D("3110.80")}  # 7777 × 40 %


def test_weighted_total_equals_the_visible_deals(rep_book, pipeline):
    rep, _deals = rep_book
    team = make_team()
    manager = make_user(role="manager", team=team)
    rep.team = team
    make_deal(
        pipeline, pipeline.stages[2], None, "1234.56", expected_close=date(2026, 5, 5)
    )  # no owner
    db.session.commit()
    for user in (rep, manager, make_user(role="admin")):
        expected = fc.Amounts()
        for deal in db.session.scalars(visible_deals(user)):
            if deal.stage.kind == "open":
                expected.add(deal.currency, deal.weighted_amount)
        forecast = fc.build_forecast(user, MARCH, now=NOW)
        assert forecast.weighted_total == expected, user.role
        rows = fc.Amounts()
        for rep_line in forecast.reps:
            rows = rows.merged(rep_line.pipeline.weighted)
        if forecast.scope.is_team:
            assert rows == expected, user.role  # the rows of the team table add up to the total


def test_won_by_month_uses_the_users_time_zone(pipeline):
    won = pipeline.stages[4]
    rep = make_user()  # Europe/Paris
    make_deal(pipeline, won, rep, "2000", closed_at=at("2026-02-28", 22, 30))  # 23:30 in Paris: Feb
    make_deal(pipeline, won, rep, "1000", closed_at=at("2026-02-28", 23, 30))  # 00:30 on 1 March
    make_deal(pipeline, won, rep, "300", currency="USD", closed_at=at("2026-03-06"))
    db.session.commit()
    tz = fc.user_timezone(rep)
    february_march = [date(2026, 2, 1), date(2026, 3, 1)]
    sums = fc.deal_sums(fc.Scope.of(rep), closed_bounds=fc.month_bounds(february_march, tz))
    months = dict(fc.won_by_month(sums, february_march, tz))
    assert months[date(2026, 2, 1)] == {"EUR": D("2000")}
    assert months[date(2026, 3, 1)] == {"EUR": D("1000"), "USD": D("300")}


# ---- forecast against quota, margin --------------------------------------------------------------


@pytest.fixture
def rep_with_quota(rep_book, pipeline):
    rep, deals = rep_book
    won = pipeline.stages[4]
    make_deal(pipeline, won, rep, "3000", closed_at=at("2026-03-05"))
    make_deal(pipeline, won, rep, "500", currency="USD", closed_at=at("2026-03-06"))
    make_deal(pipeline, won, rep, "2000", closed_at=at("2026-02-28", 22, 30))  # February in Paris
    make_deal(pipeline, won, rep, "1000", closed_at=at("2026-02-28", 23, 30))  # March in Paris
    make_deal(pipeline, won, rep, "4000", closed_at=at("2025-12-20"))  # before the quarter
    deals["won"].closed_at = at("2026-04-02")  # closes after the period: not counted
    quota("10000", MARCH, user=rep)
    quota("30000", Q1, user=rep)
    quota("99999", MARCH, user=make_user())  # someone else's
    db.session.commit()
    return rep, deals


def test_rep_forecast_against_month_and_quarter_quota(rep_with_quota):
    rep, _deals = rep_with_quota
    forecast = fc.build_forecast(rep, MARCH, now=NOW)
    month, quarter = forecast.objectives
    assert (month.period, quarter.period) == (MARCH, Q1)
    # Won in March (Paris time): 3000 + 1000 EUR; the 500 USD is shown, not counted.
    assert month.won == {"EUR": D("4000"), "USD": D("500")}
    # Open, expected from today to the end of March: a 400 + b 1750; e is overdue: not counted.
    assert month.weighted == {"EUR": D("2150.00")}
    assert month.target == D("10000")
    assert month.forecast == D("6150.00")
    assert month.won_percent == D("40.0")
    assert month.forecast_percent == D("61.5")
    assert month.gap == D("3850.00")
    assert month.not_counted == {"USD": D("500")}
    # The quarter adds February's 2000 (Paris time); December is outside it.
    assert quarter.won == {"EUR": D("6000"), "USD": D("500")}
    assert quarter.weighted == {"EUR": D("2150.00")}
    assert quarter.forecast == D("8150.00")
    assert quarter.forecast_percent == D("27.2")  # 27.166...
    assert not forecast.scope.is_team
    assert [line.user for line in forecast.reps] == [rep]


def test_a_past_period_forecast_is_what_was_won(rep_with_quota):
    rep, _deals = rep_with_quota
    february = fc.build_forecast(rep, MARCH.previous, now=NOW)
    month = february.objectives[0]
    assert month.won == {"EUR": D("2000")}
    assert month.weighted == {}
    assert month.target is None and month.forecast_percent is None


def test_a_quarter_shows_only_itself(rep_with_quota):
    rep, _deals = rep_with_quota
    forecast = fc.build_forecast(rep, Q1, now=NOW)
    assert [o.period for o in forecast.objectives] == [Q1]
    assert forecast.objectives[0].forecast_percent == D("27.2")


def test_margin_of_won_and_open_deals(rep_with_quota, pipeline):
    rep, deals = rep_with_quota
    won = pipeline.stages[4]
    sold = make_deal(pipeline, won, rep, "3000", closed_at=at("2026-03-10"))
    line(sold, "2", "1500", "1000")  # 3000 - 2000 = 1000
    discounted = make_deal(pipeline, won, rep, "900", closed_at=at("2026-03-11"))
    line(discounted, "1", "1000", "500", discount="10")  # 900 - 500 = 400
    line(deals["a"], "1", "1000", "600")  # open, expected in March: 400
    half_known = deals["b"]
    line(half_known, "1", "2000", "1200")
    line(half_known, "1", "500", None)  # a line without cost: the deal's margin is unknown
    db.session.commit()
    forecast = fc.build_forecast(rep, MARCH, now=NOW)
    # Won in March: the two above, plus the three won deals without lines (unknown).
    assert forecast.margin_won.amounts == {"EUR": D("1400.00")}
    assert (forecast.margin_won.known, forecast.margin_won.unknown) == (2, 3)
    assert forecast.margin_open.amounts == {"EUR": D("400.00")}
    assert (forecast.margin_open.known, forecast.margin_open.unknown) == (1, 1)
    assert not forecast.margin_open.is_unknown


def test_sums_made_in_sql_are_the_sums_of_what_each_deal_shows(pipeline):
    """The database adds up weighted amounts and margins rounded per deal and per line as the
    deal's page rounds them (half to even), on either database: amounts on the half cent."""
    prospection, first_contact, demo, proposal, won, _lost = stages(pipeline)
    rep = make_user()
    amounts = ["0.05", "1.05", "10.05", "10.15", "333.33", "0.50", "12345.65", "7.25"]
    open_deals, won_deals = [], []
    for i, amount in enumerate(amounts):
        currency = "USD" if i % 3 == 0 else "EUR"
        for stage in (prospection, first_contact, demo, proposal):
            deal = make_deal(
                pipeline, stage, rep, amount, currency=currency, expected_close=date(2026, 3, 20)
            )
            # A cost above the price on every other deal: negative margins round too.
            line(deal, "1.5", amount, "0.33" if i % 2 else "99999.99", discount="33.33")
            line(deal, "3", "0.15", "0.01", discount="50")
            open_deals.append(deal)
        sold = make_deal(pipeline, won, rep, amount, currency=currency, closed_at=at("2026-03-10"))
        line(sold, "2.5", "0.35", "0.17", discount="10")
        won_deals.append(sold)
    db.session.commit()

    forecast = fc.build_forecast(rep, MARCH, now=NOW)
    weighted, open_margin, won_margin, won_amount = (fc.Amounts() for _ in range(4))
    for deal in open_deals:
        weighted.add(deal.currency, deal.weighted_amount)
        open_margin.add(deal.currency, margin(deal))
    for deal in won_deals:
        won_margin.add(deal.currency, margin(deal))
        won_amount.add(deal.currency, deal.amount)
    assert forecast.weighted_total == weighted
    assert forecast.objectives[0].weighted == weighted  # all expected from today to March's end
    assert forecast.objectives[0].won == won_amount
    assert forecast.margin_open.amounts == open_margin
    assert forecast.margin_won.amounts == won_margin
    assert (forecast.margin_open.known, forecast.margin_won.known) == (32, 8)


def test_margin_is_unknown_without_costs(pipeline):
    won = pipeline.stages[4]
    rep = make_user()
    deal = make_deal(pipeline, won, rep, "500", closed_at=at("2026-03-10"))
    line(deal, "1", "500", None)
    db.session.commit()
    figure, open_figure = fc.margins(fc.Scope.of(rep), MARCH, TODAY)
    assert figure.is_unknown and figure.amounts == {}
    assert (figure.known, figure.unknown) == (0, 1)
    assert not open_figure.is_unknown and (open_figure.known, open_figure.unknown) == (0, 0)


# ---- the team: table, conversion, win rate, cycle, risk -------------------------------------------


@pytest.fixture
def team_setup(pipeline):
    team, other_team = make_team("North"), make_team("South")
    manager = make_user(role="manager", team=team, name="Mona Manager")
    alice = make_user(team=team, name="Alice")
    bob = make_user(team=team, name="Bob")
    outsider = make_user(team=other_team, name="Olga")
    db.session.commit()
    return team, manager, alice, bob, outsider


def test_team_table_by_rep_against_the_team_target(team_setup, pipeline):
    team, manager, alice, bob, outsider = team_setup
    _p, _f, demo, proposal, won, _l = stages(pipeline)
    make_deal(pipeline, won, alice, "5000", closed_at=at("2026-03-03"))
    make_deal(pipeline, proposal, alice, "1000", expected_close=date(2026, 3, 25))  # 700
    make_deal(pipeline, demo, bob, "2000", expected_close=date(2026, 3, 28))  # 800
    make_deal(pipeline, demo, bob, "1000", expected_close=date(2026, 6, 1))  # not this month
    make_deal(pipeline, demo, None, "500", expected_close=date(2026, 3, 30))  # no owner: 200
    make_deal(pipeline, won, outsider, "8000", closed_at=at("2026-03-03"))  # other team
    quota("8000", MARCH, user=alice)
    quota("4000", MARCH, user=bob)
    quota("15000", MARCH, team=team)
    quota("40000", Q1, team=team)
    db.session.commit()

    forecast = fc.build_forecast(manager, MARCH, now=NOW)
    rows = {(line.user.name if line.user else None): line for line in forecast.reps}
    assert list(rows) == ["Alice", "Bob", "Mona Manager", None]
    a, b = rows["Alice"].objective, rows["Bob"].objective
    assert (a.target, a.won, a.weighted, a.forecast, a.forecast_percent) == (
        D("8000"),
        {"EUR": D("5000")},
        {"EUR": D("700.00")},
        D("5700.00"),
        D("71.3"),
    )
    assert (b.target, b.won, b.weighted, b.forecast_percent) == (
        D("4000"),
        {},
        {"EUR": D("800.00")},
        D("20.0"),
    )
    assert rows["Bob"].pipeline.weighted == {"EUR": D("1200.00")}  # every open deal of Bob's
    assert rows[None].objective.weighted == {"EUR": D("200.00")}
    team_line = forecast.team_line.objective
    assert team_line.target == D("15000")
    assert team_line.won == {"EUR": D("5000")}
    assert team_line.weighted == {"EUR": D("1700.00")}
    assert team_line.forecast_percent == D("44.7")  # 6700 / 15000
    assert [o.target for o in forecast.objectives] == [D("15000"), D("40000")]


def test_admin_picks_a_team(team_setup, pipeline):
    team, _manager, alice, _bob, outsider = team_setup
    demo = pipeline.stages[2]
    make_deal(pipeline, demo, alice, "1000", expected_close=date(2026, 3, 20))
    make_deal(pipeline, demo, outsider, "3000", expected_close=date(2026, 3, 20))
    make_deal(pipeline, demo, None, "5000", expected_close=date(2026, 3, 20))
    db.session.commit()
    admin = make_user(role="admin")
    everything = fc.build_forecast(admin, MARCH, now=NOW)
    assert everything.weighted_total == {"EUR": D("3600.00")}
    north = fc.build_forecast(admin, MARCH, team=team, now=NOW)
    assert north.weighted_total == {"EUR": D("400.00")}
    assert {line.user.name for line in north.reps} == {"Alice", "Bob", "Mona Manager"}


@pytest.fixture
def funnel_deals(team_setup, pipeline):
    """The deals of the conversion, win rate and cycle tests (see each comment)."""
    team, manager, alice, bob, outsider = team_setup
    prospection, first_contact, demo, proposal, won, lost = stages(pipeline)

    def deal(owner=alice, created="2026-02-01"):
        return make_deal(pipeline, prospection, owner, "1000", created_at=at(created, 0))

    # meeting → proposal → won: all three steps; created 20 Feb, won 12 March 12:00: 20.5 days.
    walk(
        deal(created="2026-02-20"),
        (demo, at("2026-03-02")),
        (proposal, at("2026-03-10")),
        (won, at("2026-03-12")),
    )
    # meeting → proposal, still open.
    walk(deal(bob), (demo, at("2026-03-03")), (proposal, at("2026-03-05")))
    # meeting, then lost.
    walk(deal(), (demo, at("2026-03-04")), (lost, at("2026-03-08")))
    # straight to proposal: counts as having had the meeting.
    walk(deal(bob), (proposal, at("2026-03-06")))
    # two meetings (back and forth): counted once.
    walk(
        deal(),
        (demo, at("2026-03-01")),
        (first_contact, at("2026-03-02")),
        (demo, at("2026-03-09")),
    )
    # straight from prospection to won: passed every step; created 1 March, won 11 March 06:00.
    walk(deal(created="2026-03-01"), (won, at("2026-03-11", 6)))
    # won, then reopened: not won.
    walk(deal(), (demo, at("2026-03-02")), (won, at("2026-03-05")), (proposal, at("2026-03-08")))
    # first meeting in February: February's cohort, not March's.
    walk(deal(), (demo, at("2026-02-20")), (proposal, at("2026-03-05")))
    # lost in February: not in March's win rate.
    walk(deal(), (lost, at("2026-02-25")))
    # never reached a milestone.
    walk(deal(), (first_contact, at("2026-03-05")))
    # another team's deal.
    walk(deal(outsider), (demo, at("2026-03-05")), (won, at("2026-03-06")))
    db.session.commit()
    return manager


def test_conversion_meeting_proposal_won(funnel_deals):
    funnel = fc.conversion(fc.Scope.of(funnel_deals), MARCH)
    assert (funnel.meeting, funnel.proposal, funnel.won) == (7, 5, 2)
    assert funnel.proposal_rate == D("71.4")
    assert funnel.won_rate == D("40.0")
    assert funnel.overall_rate == D("28.6")
    february = fc.conversion(fc.Scope.of(funnel_deals), MARCH.previous)
    assert (february.meeting, february.proposal, february.won) == (1, 1, 0)


def closed_in(scope: fc.Scope, period: fc.Period):
    """What win_rate and sales_cycle take: the deals closed in the period, and its bounds."""
    start, end = period.utc_bounds(fc.user_timezone(scope.user))
    return fc.deal_sums(scope, closed_bounds=[start, end]), start, end


def test_win_rate_and_sales_cycle(funnel_deals):
    scope = fc.Scope.of(funnel_deals)
    rate = fc.win_rate(*closed_in(scope, MARCH))
    assert (rate.won, rate.lost, rate.rate) == (2, 1, D("66.7"))
    cycle = fc.sales_cycle(*closed_in(scope, MARCH))
    assert cycle.deals == 2
    assert cycle.average_days == D("15.4")  # (20.5 + 10.25) / 2 = 15.375
    february = fc.win_rate(*closed_in(scope, MARCH.previous))
    assert (february.won, february.lost, february.rate) == (0, 1, D("0.0"))
    empty = fc.Period("month", date(2025, 1, 1))
    assert fc.win_rate(*closed_in(scope, empty)).rate is None
    assert fc.sales_cycle(*closed_in(scope, empty)).average_days is None


def test_deals_at_risk(team_setup, pipeline):
    _team, manager, alice, bob, outsider = team_setup
    _p, _f, demo, proposal, won, _l = stages(pipeline)  # Demo and Proposal stall after 21 days
    late = make_deal(
        pipeline,
        proposal,
        alice,
        expected_close=date(2026, 3, 10),
        title="Late",
        stage_entered_at=at("2026-03-01"),
    )
    stalled = make_deal(
        pipeline,
        demo,
        bob,
        expected_close=date(2026, 4, 30),
        title="Stalled",
        stage_entered_at=at("2026-02-01"),
    )
    both = make_deal(
        pipeline,
        demo,
        alice,
        expected_close=date(2026, 1, 31),
        title="Both",
        stage_entered_at=at("2026-01-10"),
    )
    make_deal(
        pipeline,
        proposal,
        alice,
        expected_close=date(2026, 4, 1),
        title="Fine",
        stage_entered_at=at("2026-03-01"),
    )  # 14 days in its stage, due later
    make_deal(
        pipeline,
        demo,
        alice,
        expected_close=date(2026, 3, 15),
        title="Due today",
        stage_entered_at=at("2026-02-22", 12, 1),
    )  # 20.99 days: neither late nor stalled
    make_deal(
        pipeline,
        won,
        alice,
        expected_close=date(2026, 3, 1),
        title="Won",
        closed_at=at("2026-03-02"),
        stage_entered_at=at("2026-01-01"),
    )
    make_deal(pipeline, demo, outsider, expected_close=date(2026, 3, 1), title="Not mine")
    db.session.commit()

    risky, count = fc.deals_at_risk(fc.Scope.of(manager), TODAY, NOW)
    assert count == 3
    assert [r.deal.title for r in risky] == ["Both", "Late", "Stalled"]
    assert [(r.overdue_days, r.stalled_days) for r in risky] == [(43, 64), (5, None), (None, 42)]
    assert {r.deal.id for r in risky} == {late.id, stalled.id, both.id}
    mine, count = fc.deals_at_risk(fc.Scope.of(bob), TODAY, NOW)
    assert [r.deal.title for r in mine] == ["Stalled"] and count == 1
    some, count = fc.deals_at_risk(fc.Scope.of(manager), TODAY, NOW, limit=2)
    assert len(some) == 2 and count == 3


def test_nothing_at_all(ctx):
    for role in ("admin", "manager", "sales"):
        forecast = fc.build_forecast(make_user(role=role), MARCH, now=NOW)
        assert forecast.weighted_total == {}
        assert forecast.funnel.meeting == 0 and forecast.win_rate.rate is None
        assert forecast.at_risk == [] and forecast.at_risk_count == 0


# ---- quotas -----------------------------------------------------------------------------------------------


def test_set_update_and_remove_a_quota(team_setup):
    team, manager, alice, _bob, _outsider = team_setup
    fc.set_quota(manager, MARCH, D("12000"), user=alice)
    fc.set_quota(manager, MARCH, D("12500.5"), user=alice)
    fc.set_quota(manager, Q1, D("50000"), team=team)
    db.session.commit()
    assert fc.quota_targets(MARCH, users=[alice], teams=[team]) == {
        ("user", alice.id): D("12500.50")
    }
    assert fc.quota_targets(Q1, users=[alice], teams=[team]) == {("team", team.id): D("50000.00")}
    fc.set_quota(manager, MARCH, None, user=alice)
    db.session.commit()
    assert fc.quota_targets(MARCH, users=[alice]) == {}
    assert db.session.scalar(db.select(db.func.count()).select_from(Quota)) == 1


def test_a_manager_sets_targets_only_in_their_team(team_setup):
    team, manager, alice, _bob, outsider = team_setup
    with pytest.raises(fc.QuotaRefused):
        fc.set_quota(manager, MARCH, D("1000"), user=outsider)
    with pytest.raises(fc.QuotaRefused):
        fc.set_quota(manager, MARCH, D("1000"), team=outsider.team)
    with pytest.raises(fc.QuotaRefused):
        fc.set_quota(alice, MARCH, D("1000"), user=alice)  # a rep sets no target
    with pytest.raises(ValueError):
        fc.set_quota(manager, MARCH, D("0"), user=alice)
    admin = make_user(role="admin")
    assert fc.set_quota(admin, MARCH, D("1000"), user=outsider).target == D("1000.00")
    assert [u.name for u in fc.quota_people(manager)] == ["Alice", "Bob", "Mona Manager"]
    assert fc.quota_teams(manager) == [team]
    assert len(fc.quota_teams(admin)) == 2
    assert {u.name for u in fc.quota_people(admin)} >= {"Alice", "Bob", "Mona Manager", "Olga"}
    assert fc.quota_people(alice) == [] and fc.quota_teams(alice) == []


def test_the_cycle_counts_hours_not_calendar_days(pipeline):
    won = pipeline.stages[4]
    rep = make_user()
    created = at("2026-03-01", 23)
    make_deal(pipeline, won, rep, created_at=created, closed_at=created + timedelta(hours=36))
    db.session.commit()
    assert fc.sales_cycle(*closed_in(fc.Scope.of(rep), MARCH)).average_days == D("1.5")
