"""The forecast page and the quotas page: who sees what, the period in the URL, inline targets."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from babel.numbers import format_currency

from crm.extensions import db
from crm.models import Quota
from crm.permissions import visible_deals
from crm.services import forecast as fc
from tests.conftest import htmx_headers
from tests.factories import make_deal, make_pipeline, make_team, make_user


def _euros(value) -> str:
    return format_currency(Decimal(value), "EUR", locale="en")


def _weighted_total(html: str) -> list[str]:
    cell = re.search(r'id="weighted-total">(.*?)</td>', html, re.S).group(1)
    return re.findall(r'<span class="money[^"]*">([^<]+)</span>', cell)


@pytest.fixture
def pipeline(ctx):
    return make_pipeline()


@pytest.fixture
def team_world(as_role, pipeline):
    """Team North (manager, Alice, Bob), team South (Olga); overdue deals to show at risk."""
    north, south = make_team("North"), make_team("South")
    client, manager = as_role("manager", team=north, name="Mona Manager")
    alice = make_user(team=north, name="Alice Archer")
    bob = make_user(team=north, name="Bob Baker")
    olga = make_user(team=south, name="Olga Orloff")
    today = fc.local_today(manager)
    demo, proposal = pipeline.stages[2], pipeline.stages[3]
    deals = {
        "alice": make_deal(
            pipeline,
            proposal,
            alice,
            "1000",
            title="Alice late",
            expected_close=today - timedelta(days=3),
        ),
        "bob": make_deal(
            pipeline, demo, bob, "2500", title="Bob soon", expected_close=today + timedelta(days=40)
        ),
        "olga": make_deal(
            pipeline,
            demo,
            olga,
            "7777",
            title="Olga late",
            expected_close=today - timedelta(days=3),
        ),
    }
    db.session.commit()
    return (
        client,
        manager,
        {
            "north": north,
            "south": south,
            "alice": alice,
            "bob": bob,
            "olga": olga,
            "deals": deals,
            "today": today,
        },
    )


class TestForecastPage:
    def test_a_rep_sees_only_their_numbers(self, as_role, pipeline, ctx):
        client, rep = as_role("sales", name="Rita Rep")
        other = make_user(name="Other Rep")
        today = fc.local_today(rep)
        mine = make_deal(
            pipeline,
            pipeline.stages[3],
            rep,
            "1000",
            title="Mine late",
            expected_close=today - timedelta(days=2),
        )
        make_deal(
            pipeline,
            pipeline.stages[3],
            other,
            "7777",
            title="Theirs late",
            expected_close=today - timedelta(days=2),
        )
        db.session.add(
            Quota(
                user=rep,
                period_kind="month",
                period_start=today.replace(day=1),
                target=Decimal("5000"),
            )
        )
        db.session.commit()
        html = client.get("/deals/forecast").text
        assert "Mine late" in html and f'href="/deals/{mine.id}"' in html
        assert "Theirs late" not in html and "7,777" not in html and "Other Rep" not in html
        assert 'id="rep-table"' not in html
        assert "My target" in html and _euros(5000) in html
        assert _weighted_total(html) == [_euros(700)]

    def test_a_manager_sees_the_team_rep_by_rep(self, team_world):
        client, _manager, w = team_world
        html = client.get("/deals/forecast").text
        table = re.search(
            r'<table class="list numbers" id="rep-table">.*?</table>', html, re.S
        ).group(0)
        assert re.findall(r'<th scope="row">([^<]+)</th>', table) == [
            "Alice Archer",
            "Bob Baker",
            "Mona Manager",
            "Team",
        ]
        assert "Olga" not in html and "7,777" not in html
        assert "Alice late" in html and f'href="/deals/{w["deals"]["alice"].id}"' in html
        assert "Team target" in html
        for section in (
            "funnel",
            "win-rate",
            "cycle",
            "at-risk",
            "pipeline-by-month",
            "won-by-month",
        ):
            assert f'id="{section}"' in html, section

    def test_an_admin_picks_a_team(self, team_world, as_role):
        manager_client, _manager, w = team_world
        client, _admin = as_role("admin")
        everyone = client.get("/deals/forecast").text
        assert "Olga Orloff" in everyone and "Alice Archer" in everyone
        assert "All teams" in everyone
        south = client.get(f"/deals/forecast?team={w['south'].id}").text
        assert "Olga Orloff" in south and "Alice Archer" not in south
        assert f'<option value="{w["south"].id}" selected>South</option>' in south
        # A manager cannot look at another team through the URL.
        assert "Olga" not in manager_client.get(f"/deals/forecast?team={w['south'].id}").text

    @pytest.mark.parametrize("role", ["sales", "manager", "admin"])
    def test_weighted_total_is_the_sum_of_the_visible_deals(
        self, team_world, as_role, pipeline, role
    ):
        _client, manager, w = team_world
        make_deal(
            pipeline,
            pipeline.stages[0],
            None,
            "333.33",
            title="Nobody's",
            expected_close=w["today"] + timedelta(days=400),
        )
        make_deal(pipeline, pipeline.stages[3], w["alice"], "100", currency="USD")
        db.session.commit()
        if role == "manager":
            client, user = team_world[0], manager
        else:
            client, user = as_role(role, team=w["north"])
            if role == "sales":
                make_deal(pipeline, pipeline.stages[1], user, "55.55")
                db.session.commit()
        expected = fc.Amounts()
        for deal in db.session.scalars(visible_deals(user)):
            if deal.stage.kind == "open":
                expected.add(deal.currency, deal.weighted_amount)
        shown = _weighted_total(client.get("/deals/forecast").text)
        assert shown == [format_currency(v, c, locale="en") for c, v in expected.items_sorted()]
        assert shown  # the world has open deals for every role

    def test_the_period_is_kept_in_the_url(self, team_world):
        client, _manager, _w = team_world
        html = client.get("/deals/forecast?period=2026-Q1").text
        assert "Q1 2026" in html
        assert 'href="/deals/forecast?period=2025-Q4"' in html
        assert 'href="/deals/forecast?period=2026-Q2"' in html
        assert 'href="/deals/forecast?period=2026-01"' in html  # Month: the quarter's first
        assert 'href="/deals/quotas?period=2026-Q1"' in html
        html = client.get("/deals/forecast?period=2025-12").text
        assert "December 2025" in html and 'href="/deals/forecast?period=2026-01"' in html

    def test_an_admin_keeps_the_team_when_changing_period(self, team_world, as_role):
        _client, _manager, w = team_world
        client, _admin = as_role("admin")
        html = client.get(f"/deals/forecast?period=2026-03&team={w['north'].id}").text
        assert f'href="/deals/forecast?period=2026-04&amp;team={w["north"].id}"' in html

    def test_htmx_gets_the_body_only(self, team_world):
        client, _manager, _w = team_world
        response = client.get(
            "/deals/forecast?period=2026-02", headers=htmx_headers("div#forecast")
        )
        assert response.status_code == 200
        assert "<html" not in response.text and "February 2026" in response.text
        assert 'id="rep-table"' in response.text

    def test_no_inline_style_or_script(self, team_world):
        client, _manager, _w = team_world
        for url in ("/deals/forecast", "/deals/quotas"):
            html = client.get(url).text
            assert " style=" not in html and "<script>" not in html, url
            assert re.search(
                r'<rect class="bar-\w+" width="[\d.]+" height="10"/>', html
            ) or url.endswith("quotas")

    @pytest.mark.parametrize("role", ["sales", "manager", "admin"])
    def test_empty_database(self, as_role, role):
        client, _user = as_role(role)
        for url in (
            "/deals/forecast",
            "/deals/forecast?period=2026-Q3",
            "/deals/forecast?team=999",
        ):
            response = client.get(url)
            assert response.status_code == 200, url
            assert "No deal is overdue or stalled." in response.text

    @pytest.mark.parametrize("role", ["support", "technician"])
    def test_support_and_technicians_are_refused(self, as_role, role):
        client, _user = as_role(role)
        assert client.get("/deals/forecast").status_code == 403
        assert client.get("/deals/quotas").status_code == 403
        assert client.post("/deals/quotas", data={"kind": "user", "id": "1"}).status_code == 403


class TestQuotas:
    def test_a_rep_may_not_set_targets(self, as_role):
        client, rep = as_role("sales")
        assert client.get("/deals/quotas").status_code == 403
        response = client.post("/deals/quotas", data={"kind": "user", "id": rep.id, "target": "1"})
        assert response.status_code == 403

    def test_a_manager_sees_their_team_only(self, team_world):
        client, manager, w = team_world
        html = client.get("/deals/quotas?period=2026-04").text
        assert "April 2026" in html
        assert f'id="quota-team-{w["north"].id}"' in html
        for person in (w["alice"], w["bob"], manager):
            assert f'id="quota-user-{person.id}"' in html
        assert "Olga" not in html and "South" not in html

    def test_save_a_target_inline(self, team_world):
        client, _manager, w = team_world
        alice = w["alice"]
        response = client.post(
            "/deals/quotas",
            data={"period": "2026-04", "kind": "user", "id": alice.id, "target": "12,000.50"},
            headers=htmx_headers(f"tr#quota-user-{alice.id}"),
        )
        assert response.status_code == 200
        assert response.text.lstrip().startswith(f'<tr id="quota-user-{alice.id}"')
        assert 'value="12,000.5"' in response.text
        toast = json.loads(response.headers["HX-Trigger"])["crm:toast"]["message"]
        assert toast == "Target of Alice Archer for April 2026: €12,000.50."
        quota = db.session.scalars(db.select(Quota)).one()
        assert (quota.user_id, quota.period_kind, str(quota.period_start), quota.target) == (
            alice.id,
            "month",
            "2026-04-01",
            Decimal("12000.50"),
        )
        # Saved again: updated, not duplicated; then emptied: removed.
        client.post(
            "/deals/quotas",
            data={"period": "2026-04", "kind": "user", "id": alice.id, "target": "15000"},
            headers=htmx_headers(),
        )
        db.session.expire_all()
        assert db.session.scalars(db.select(Quota)).one().target == Decimal("15000")
        client.post(
            "/deals/quotas",
            data={"period": "2026-04", "kind": "user", "id": alice.id, "target": ""},
            headers=htmx_headers(),
        )
        assert db.session.scalars(db.select(Quota)).all() == []

    def test_a_team_target_per_quarter(self, team_world):
        client, _manager, w = team_world
        north = w["north"]
        response = client.post(
            "/deals/quotas",
            headers=htmx_headers(),
            data={"period": "2026-Q2", "kind": "team", "id": north.id, "target": "90000"},
        )
        assert response.status_code == 200
        quota = db.session.scalars(db.select(Quota)).one()
        assert (quota.team_id, quota.period_kind, str(quota.period_start)) == (
            north.id,
            "quarter",
            "2026-04-01",
        )
        html = client.get("/deals/forecast?period=2026-Q2").text
        assert "Team target · Q2 2026" in html and _euros(90000) in html

    @pytest.mark.parametrize(
        ("typed", "message"),
        [
            ("-5", "The target must be a positive amount."),
            ("0", "The target must be a positive amount."),
            ("abc", "Enter an amount, for example 12,000.5."),
            ("12000,50", "Enter an amount, for example 12,000.5."),
            ("10.005", "Use at most two decimals."),
            ("1e15", "This amount is too large."),
            ("NaN", "The target must be a positive amount."),
        ],
    )
    def test_a_wrong_amount_is_refused_with_the_input_kept(self, team_world, typed, message):
        client, _manager, w = team_world
        bob = w["bob"]
        response = client.post(
            "/deals/quotas",
            headers=htmx_headers(f"tr#quota-user-{bob.id}"),
            data={"period": "2026-04", "kind": "user", "id": bob.id, "target": typed},
        )
        assert response.status_code == 422
        assert f'value="{typed}"' in response.text
        assert message in response.text and 'aria-invalid="true"' in response.text
        assert db.session.scalars(db.select(Quota)).all() == []

    def test_without_htmx_a_wrong_amount_shows_the_page_again(self, team_world):
        client, _manager, w = team_world
        bob = w["bob"]
        response = client.post(
            "/deals/quotas",
            data={"period": "2026-04", "kind": "user", "id": bob.id, "target": "-1"},
        )
        assert response.status_code == 422
        assert "<html" in response.text and 'value="-1"' in response.text
        response = client.post(
            "/deals/quotas",
            data={"period": "2026-04", "kind": "user", "id": bob.id, "target": "100"},
        )
        assert response.status_code == 303
        assert response.headers["Location"].endswith("/deals/quotas?period=2026-04")

    def test_a_manager_cannot_set_another_teams_targets(self, team_world):
        client, _manager, w = team_world
        for kind, record in (("user", w["olga"]), ("team", w["south"])):
            response = client.post(
                "/deals/quotas",
                headers=htmx_headers(),
                data={"period": "2026-04", "kind": kind, "id": record.id, "target": "1"},
            )
            assert response.status_code == 404, kind
        assert (
            client.post(
                "/deals/quotas", data={"kind": "user", "id": "999999", "target": "1"}
            ).status_code
            == 404
        )
        assert client.post("/deals/quotas", data={}).status_code == 400
        assert db.session.scalars(db.select(Quota)).all() == []

    def test_an_admin_sets_any_target(self, team_world, as_role):
        _client, _manager, w = team_world
        client, _admin = as_role("admin")
        html = client.get("/deals/quotas").text
        assert "Olga Orloff" in html and "Alice Archer" in html
        response = client.post(
            "/deals/quotas",
            headers=htmx_headers(),
            data={"kind": "user", "id": w["olga"].id, "target": "3000"},
        )
        assert response.status_code == 200
        assert db.session.scalars(db.select(Quota)).one().user_id == w["olga"].id

    def test_a_french_manager_types_french_numbers(self, team_world):
        client, manager, w = team_world
        manager.locale = "fr"
        db.session.commit()
        response = client.post(
            "/deals/quotas",
            headers=htmx_headers(),
            data={
                "period": "2026-04",
                "kind": "user",
                "id": w["alice"].id,
                "target": "12\u202f000,50",
            },
        )
        assert response.status_code == 200
        assert db.session.scalars(db.select(Quota)).one().target == Decimal("12000.50")

    def test_the_previous_target_is_shown_beside(self, team_world):
        client, _manager, w = team_world
        db.session.add(
            Quota(
                user=w["bob"],
                period_kind="month",
                period_start=fc.Period.parse("2026-03", w["today"]).start,
                target=Decimal("4000"),
            )
        )
        db.session.commit()
        html = client.get("/deals/quotas?period=2026-04").text
        row = re.search(rf'<tr id="quota-user-{w["bob"].id}".*?</tr>', html, re.S).group(0)
        assert _euros(4000) in row and 'value=""' in row


def _add_team_deals(pipeline, owners, count: int, today) -> None:
    """`count` deals of every kind: open (some overdue, some stalled), won this month, lost."""
    from crm.models.types import utcnow

    _p, first_contact, demo, proposal, won, lost = pipeline.stages
    for i in range(count):
        owner = owners[i % len(owners)]
        make_deal(
            pipeline,
            demo,
            owner,
            "1000",
            expected_close=today + timedelta(days=i % 90 - 10),
            stage_entered_at=utcnow() - timedelta(days=i % 40),
        )
        make_deal(
            pipeline,
            proposal,
            owner,
            "2000",
            currency="USD" if i % 4 else "EUR",
            expected_close=today + timedelta(days=i % 30),
        )
        make_deal(pipeline, won, owner, "3000", closed_at=utcnow() - timedelta(hours=i % 5))
        make_deal(pipeline, lost, owner, "500", closed_at=utcnow() - timedelta(hours=i % 5))
    db.session.commit()


def test_the_forecast_runs_a_bounded_number_of_queries(team_world, pipeline):
    client, manager, w = team_world
    owners = [w["alice"], w["bob"], manager]

    def queries(url):
        response = client.get(url)
        assert response.status_code == 200
        return int(response.headers["X-SQL-Queries"])

    _add_team_deals(pipeline, owners, 3, w["today"])
    small = [queries("/deals/forecast"), queries("/deals/quotas")]
    _add_team_deals(pipeline, owners, 120, w["today"])
    large = [queries("/deals/forecast"), queries("/deals/quotas")]
    assert large == small
    assert large[0] <= 25, large


def test_the_overdue_bucket_is_the_overdue_list(team_world, pipeline):
    client, manager, w = team_world
    _add_team_deals(pipeline, [w["alice"], w["bob"]], 30, w["today"])
    overdue = [
        deal
        for deal in db.session.scalars(visible_deals(manager))
        if deal.stage.kind == "open" and deal.expected_close and deal.expected_close < w["today"]
    ]
    html = client.get("/deals/forecast").text
    row = re.search(r'<tr class="overdue">.*?</tr>', html, re.S).group(0)
    assert 'href="/deals/list?close=overdue"' in row
    assert re.search(r'<td class="num">(\d+)</td>', row).group(1) == str(len(overdue))
    at_risk_badge = re.search(
        r'Deals at risk</h2>|Deals at risk <span class="badge">(\d+)</span>', html
    )
    assert int(at_risk_badge.group(1)) >= len(overdue)  # overdue or stalled


def test_a_far_fetched_period_falls_back_to_this_month(team_world):
    client, _manager, w = team_world
    for junk in ("0000-01", "9999-Q4", "2026-00"):
        response = client.get(f"/deals/forecast?period={junk}")
        assert response.status_code == 200, junk
        assert fc.Period.containing("month", w["today"]).key in response.text


def test_the_forecast_in_french(team_world):
    from tests.test_translations import NARROW_NBSP, NBSP, compile_french_if_stale

    if compile_french_if_stale():
        from crm.extensions import babel

        domain = vars(babel).get("domain_instance")
        if domain is not None:
            domain.cache.clear()
    client, manager, w = team_world
    manager.locale = "fr"
    db.session.add(
        Quota(
            team=w["north"],
            period_kind="month",
            period_start=date(2026, 3, 1),
            target=Decimal("15000"),
        )
    )
    db.session.commit()
    html = client.get("/deals/forecast?period=2026-03").text
    assert '<html lang="fr">' in html
    for text in (
        "Prévisions",
        "Objectif de l’équipe · mars 2026",
        "T1 2026",
        "Affaires à risque",
        "Par commercial",
        "Taux de réussite",
        f"sur 15{NARROW_NBSP}000,00{NBSP}€",
    ):
        assert text in html, text
    for english in (">Forecast<", "Team target", "Deals at risk", "Win rate"):
        assert english not in html, english
    html = client.get("/deals/quotas?period=2026-Q2").text
    assert "Objectifs" in html and "T2 2026" in html and "toute l’équipe" in html
