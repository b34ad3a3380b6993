"""The forecast and the dashboards at scale: the same few SQL statements (at most 10) with a
handful of deals or hundreds, whoever looks. Their figures are GROUP BY queries: no statement
per deal, per rep, per line or per month."""

from datetime import timedelta
from decimal import Decimal

from crm.extensions import db
from crm.models import DealLine, DealStageHistory, Quota
from crm.models.types import utcnow
from crm.services import forecast as fc
from tests.factories import (
    make_activity,
    make_contact,
    make_deal,
    make_event,
    make_incident,
    make_intervention,
    make_pipeline,
    make_team,
    make_user,
)

LIMIT = 10
MANAGER_PAGES = [
    "/deals/forecast",
    "/deals/forecast?period={quarter}",
    "/deals/forecast?period={last_month}",
    "/dashboard",
    "/dashboard?tab=team",
    "/dashboard?tab=team&period=last_quarter",
    "/dashboard?tab=support",
]


def _fill(pipeline, team, count: int) -> None:
    """`count` deals per rep of every kind (open in every bucket, overdue, stalled, won, lost),
    with product lines with and without costs, stage moves, meetings held and logged, targets,
    activities, incidents and interventions: every figure of both pages has rows."""
    prospection, _first, demo, proposal, won, lost = pipeline.stages
    reps = [make_user(team=team) for _ in range(3)]
    contact = make_contact()
    technician = make_user(role="technician")
    now = utcnow()
    today = now.date()
    for rep in reps:
        for period in (
            fc.Period.containing("month", today),
            fc.Period.containing("quarter", today),
        ):
            db.session.add(
                Quota(user=rep, period_kind=period.kind, period_start=period.start, target=1000)
            )
    for i in range(count):
        rep = reps[i % len(reps)]
        open_deal = make_deal(
            pipeline,
            (prospection, demo, proposal)[i % 3],
            rep if i % 7 else None,
            f"{1000 + i}.05",
            currency="USD" if i % 5 == 0 else "EUR",
            expected_close=today + timedelta(days=i % 240 - 30) if i % 11 else None,
            stage_entered_at=now - timedelta(days=i % 60),
            created_at=now - timedelta(days=90),
        )
        closed = make_deal(
            pipeline,
            won if i % 2 else lost,
            rep,
            "3000",
            closed_at=now - timedelta(days=i % 200),
            created_at=now - timedelta(days=250),
        )
        for deal in (open_deal, closed):
            deal.lines.append(
                DealLine(
                    description="Licence",
                    quantity=Decimal("3"),
                    unit_price=Decimal("333.33"),
                    unit_cost=Decimal("100") if i % 3 else None,
                    discount_percent=Decimal("12.5"),
                )
            )
            db.session.add(
                DealStageHistory(
                    deal=deal, from_stage=prospection, to_stage=demo, changed_at=now - timedelta(i)
                )
            )
        db.session.add(
            DealStageHistory(
                deal=closed, from_stage=demo, to_stage=closed.stage, changed_at=closed.closed_at
            )
        )
        make_activity(
            contact, ("call", "meeting", "note", "email")[i % 4], author=rep, deal=open_deal
        )
        make_event(organizer=rep, start=now - timedelta(days=i % 20), kind="meeting", deal=closed)
        make_incident(status=("new", "open", "waiting")[i % 3], created_at=now - timedelta(days=i))
    for i in range(min(count, 5)):
        make_intervention(technicians=[technician], start=now + timedelta(hours=i + 1))
    db.session.commit()


def _queries(client, url: str) -> int:
    response = client.get(url)
    assert response.status_code == 200, url
    return int(response.headers["X-SQL-Queries"])


def _counts(client, urls) -> dict[str, int]:
    today = utcnow().date()
    month = fc.Period.containing("month", today)
    keys = {"quarter": month.quarter.key, "last_month": month.previous.key}
    return {url: _queries(client, url.format(**keys)) for url in urls}


def test_the_forecast_and_dashboards_run_the_same_few_queries_whatever_the_deals(as_role):
    team = make_team()
    pipeline = make_pipeline()
    client, manager = as_role("manager", team=team)
    _fill(pipeline, team, 4)
    few = _counts(client, MANAGER_PAGES)
    _fill(pipeline, team, 150)
    many = _counts(client, MANAGER_PAGES)
    assert many == few
    assert max(many.values()) <= LIMIT, many


def test_a_rep_and_an_admin_too(as_role):
    team = make_team()
    pipeline = make_pipeline()
    _fill(pipeline, team, 4)
    rep_client, rep = as_role("sales", team=team)
    admin_client, _admin = as_role("admin")
    rep_pages = ["/deals/forecast", "/deals/forecast?period={quarter}", "/dashboard"]
    admin_pages = [*MANAGER_PAGES, f"/deals/forecast?team={team.id}"]
    make_deal(pipeline, pipeline.stages[2], rep, "500", expected_close=utcnow().date())
    db.session.commit()
    few = (_counts(rep_client, rep_pages), _counts(admin_client, admin_pages))
    _fill(pipeline, team, 120)
    for i in range(60):
        make_deal(pipeline, pipeline.stages[i % 3], rep, "700", expected_close=utcnow().date())
    db.session.commit()
    many = (_counts(rep_client, rep_pages), _counts(admin_client, admin_pages))
    assert many == few
    assert max([*many[0].values(), *many[1].values()]) <= LIMIT, many
