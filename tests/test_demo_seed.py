"""`make run` seeds the demo on a fresh database: it must go through."""

from crm.demo_data import demo_exists, seed_demo
from crm.extensions import db
from crm.models import Deal


def test_the_demo_seeds_an_empty_database(ctx):
    counts = seed_demo(contacts=40, companies=10, deals=30)
    assert counts["deals"] == 30 and demo_exists()
    deals = db.session.scalars(db.select(Deal)).all()
    assert len(deals) == 30
    assert all(deal.stage_entered_at is not None for deal in deals)


def test_the_demo_has_a_week_of_agenda_around_today(ctx):
    from datetime import UTC, datetime, timedelta

    from crm.models import Event, Task, User
    from crm.services.recurrence import expand

    seed_demo(contacts=40, companies=10, deals=30)
    now = datetime.now(UTC)
    events = db.session.scalars(db.select(Event)).all()
    upcoming = [e for e in events if now <= e.starts_at < now + timedelta(days=7)]
    assert len(upcoming) >= 10 and {e.kind for e in upcoming} == {"meeting", "call", "visit"}
    weekly = next(e for e in events if e.rrule == "FREQ=WEEKLY;BYDAY=MO")
    assert len(weekly.attendees) == 3 and len(expand(weekly, now, now + timedelta(days=7))) == 1
    assert any(e.private for e in events) and any(e.all_day for e in events)
    sophie = db.session.scalars(db.select(User).where(User.email == "sales@demo.example")).one()
    tasks = db.session.scalars(db.select(Task).where(Task.assignee_id == sophie.id)).all()
    assert any(t.status == "open" and t.due_at < now - timedelta(days=1) for t in tasks)
    assert any(t.status == "open" and t.due_at > now + timedelta(days=1) for t in tasks)
    assert any(t.status == "done" for t in tasks)


def test_the_demo_gives_the_technician_a_day_and_the_board_a_tray(ctx):
    from collections import Counter

    from crm.models import Intervention

    seed_demo(contacts=40, companies=10, deals=30)
    visits = db.session.scalars(db.select(Intervention)).all()
    assert Counter(v.status for v in visits) == Counter(planned=4, unscheduled=2, done=1)
    assert all(v.incident is not None and v.address for v in visits)
