"""Hand-made data for the dashboard and report tests: a team with its manager and two reps, a
rep of another team, deals at known stages and dates, activities, incidents, interventions.

Every figure the tests expect is counted by hand from what is built here (see the comments)."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from crm.extensions import db
from crm.models import Activity, DealStageHistory, Quota
from tests.factories import (
    make_company,
    make_deal,
    make_pipeline,
    make_team,
    make_user,
)


def at(year, month, day, hour=12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@dataclass
class Sales:
    team: object
    other_team: object
    manager: object
    ann: object  # rep of the team
    bob: object  # rep of the team
    eve: object  # rep of the other team
    pipeline: object
    stages: dict
    company: object
    deals: dict = field(default_factory=dict)


def move(deal, stage, when: datetime) -> None:
    """Move a deal as the application does: history row, stage, closing date for won/lost."""
    db.session.add(
        DealStageHistory(deal=deal, from_stage=deal.stage, to_stage=stage, changed_at=when)
    )
    deal.stage = stage
    deal.stage_entered_at = when
    if stage.kind != "open":
        deal.closed_at = when


def build_sales(now: datetime) -> Sales:
    """Deals of March 2026 (the tests' "now" is in it), in the user's time zone Europe/Paris.

    Stages of the default pipeline: Prospection, First contact, Demo (meeting), Proposal review
    (proposal), Won, Lost.
    """
    team = make_team("North")
    other = make_team("South")
    manager = make_user(role="manager", name="Mia Manager", team=team, timezone="Europe/Paris")
    ann = make_user(role="sales", name="Ann Able", team=team, timezone="Europe/Paris")
    bob = make_user(role="sales", name="Bob Baker", team=team, timezone="Europe/Paris")
    eve = make_user(role="sales", name="Eve Other", team=other, timezone="Europe/Paris")
    pipeline = make_pipeline("New business")
    stages = {s.name: s for s in pipeline.stages}
    company = make_company("Acme", country="France")
    s = Sales(team, other, manager, ann, bob, eve, pipeline, stages, company)
    demo = stages["Demo"]
    proposal, won, lost = stages["Proposal review"], stages["Won"], stages["Lost"]

    def deal(key, owner, created, amount, **fields):
        d = make_deal(pipeline, owner=owner, amount=amount, title=key, created_at=created, **fields)
        for history in d_history(d):
            history.changed_at = created
        s.deals[key] = d
        return d

    # Ann: won in March after a demo and a proposal (cycle 10 days), open in proposal, lost.
    a1 = deal("a1", ann, at(2026, 3, 2), "1000", company=company)
    move(a1, demo, at(2026, 3, 3))
    move(a1, proposal, at(2026, 3, 5))
    move(a1, won, at(2026, 3, 12))
    a2 = deal("a2", ann, at(2026, 3, 4), "2000", expected_close=date(2026, 3, 25))
    move(a2, proposal, at(2026, 3, 6))
    a3 = deal("a3", ann, at(2026, 3, 1, 9), "500")
    move(a3, lost, at(2026, 3, 20))
    # Bob: won in March straight from prospection (cycle 4 days), open in prospection, and
    # one open deal in USD.
    b1 = deal("b1", bob, at(2026, 3, 10), "3000")
    move(b1, won, at(2026, 3, 14))
    deal("b2", bob, at(2026, 2, 27), "400", expected_close=date(2026, 3, 1))
    deal("b3", bob, at(2026, 3, 15), "700", currency="USD")
    # Eve (other team): won in March: never in the North team's figures.
    e1 = deal("e1", eve, at(2026, 3, 3), "9000")
    move(e1, won, at(2026, 3, 9))
    # Ann's meeting on b2 held in the agenda: the deal enters the funnel on March 18.
    db.session.add(
        Activity(kind="meeting", deal=s.deals["b2"], author=bob, occurred_at=at(2026, 3, 18))
    )
    db.session.add(
        Quota(team=team, period_kind="month", period_start=date(2026, 3, 1), target=Decimal("8000"))
    )
    db.session.add(
        Quota(user=ann, period_kind="month", period_start=date(2026, 3, 1), target=Decimal("2000"))
    )
    db.session.flush()
    return s


def d_history(deal):
    from sqlalchemy import select

    return db.session.scalars(
        select(DealStageHistory).where(DealStageHistory.deal_id == deal.id)
    ).all()
