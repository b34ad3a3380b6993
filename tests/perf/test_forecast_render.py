"""The forecast page's cheap paths write exactly what the slow ones did: amounts formatted with a
pattern worked out once per locale and currency, and the deals at risk read as plain columns
(no Deal record loaded for a list of 25 lines)."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from babel.numbers import format_currency

from crm.blueprints.deals.forecast import money_format
from crm.extensions import db
from crm.models import Company, Deal, User
from crm.services import forecast as fc
from tests.factories import make_deal, make_pipeline, make_team, make_user


def _amounts() -> list[Decimal]:
    rng = random.Random(11)
    drawn = [
        Decimal(rng.randint(-(10**14), 10**14)).scaleb(-rng.choice([0, 1, 2, 3, 4]))
        for _ in range(3000)
    ]
    edges = ["0", "-0", "0.005", "0.015", "-0.005", "999.995", "1E+3", "123456789012.345"]
    return drawn + [Decimal(text) for text in edges] + [Decimal(i) for i in range(-20, 20)]


@pytest.mark.parametrize("locale", ["en", "fr", "fr_CH", "de", "en_IN"])
@pytest.mark.parametrize("currency", ["EUR", "USD", "GBP", "JPY", "BHD"])
def test_money_is_written_as_babel_writes_it(locale, currency):
    write = money_format(locale, currency)
    for amount in _amounts():
        assert write(amount) == format_currency(amount, currency, locale=locale), amount


def test_the_deals_at_risk_load_no_records(ctx):
    team = make_team()
    manager = make_user(role="manager", team=team)
    rep = make_user(role="sales", team=team)
    pipeline = make_pipeline()
    now = datetime(2026, 3, 15, 12, tzinfo=UTC)
    company = Company(name="Acme", name_key="acme")
    db.session.add(company)
    for i in range(3):
        make_deal(
            pipeline,
            pipeline.stages[2],
            rep if i else None,
            expected_close=now.date() - timedelta(days=10 + i),
            title=f"Late {i}",
            company=company if i == 1 else None,
            stage_entered_at=now - timedelta(days=60),
        )
    db.session.commit()
    rep_name, manager_id = rep.name, manager.id
    db.session.expunge_all()  # nothing loaded but what the list itself reads
    manager = db.session.get(User, manager_id)

    risky, count = fc.deals_at_risk(fc.Scope.of(manager), now.date(), now)

    assert count == 3
    assert [(r.deal.title, r.deal.owner_name, r.deal.company_name) for r in risky] == [
        ("Late 2", rep_name, None),
        ("Late 1", rep_name, "Acme"),
        ("Late 0", None, None),
    ]
    assert [r.overdue_days for r in risky] == [12, 11, 10]
    loaded = {type(record) for record in db.session.identity_map.values()}
    assert Deal not in loaded and Company not in loaded
