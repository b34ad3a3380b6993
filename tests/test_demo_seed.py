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
