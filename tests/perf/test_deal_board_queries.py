"""The deal board and the deal list at scale: the same few SQL statements (at most 10) with
10 deals or 1,010, whoever looks; and light answers however many deals a column holds: the
board page at most 60 KB, its fragment (a filter change) and a column's next cards (a scroll)
at most 20 KB, and so the deal list's page and rows."""

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm.extensions import db
from crm.models import Deal
from crm.models.search_keys import fold
from crm.models.types import utcnow
from crm.services import deal_board, keyset
from tests.conftest import htmx_headers
from tests.factories import make_company, make_contact, make_pipeline, make_team, make_user

LIMIT = 10
PAGE_BYTES, FRAGMENT_BYTES = 60 * 1024, 20 * 1024


@pytest.fixture
def pipeline(ctx):
    pipeline = make_pipeline("New business")
    pipeline.is_default = True
    return pipeline


def _add_deals(pipeline, owners, count: int) -> None:
    """`count` deals as the benchmark's pipeline holds them: spread over every stage and owner,
    titles and customers of real length, two thirds of them stalled, the soonest past their
    expected close (the cards a column shows first)."""
    now = utcnow()
    companies = [make_company(f"Hôtel du Centre Paris {n:02}") for n in range(5)]
    contacts = [make_contact("Manon", f"Lefebvre {n}", company=c) for n, c in enumerate(companies)]
    for i in range(count):
        stage = pipeline.stages[i % len(pipeline.stages)]
        title = f"Renouvellement Hôtel Centre {i:04}"
        db.session.add(
            Deal(
                title=title,
                title_key=fold(title),
                pipeline=pipeline,
                stage=stage,
                amount=Decimal(1000 + 7 * i),
                currency="USD" if i % 9 == 0 else "EUR",
                owner=owners[i % len(owners)],
                company=companies[i % 5],
                contact=contacts[i % 5],
                expected_close=now.date() + timedelta(days=i % 90 - 60),
                stage_entered_at=now - timedelta(days=60 if i % 3 else 2),
                closed_at=now if stage.is_closed else None,
            )
        )
    db.session.commit()


def _queries(response) -> int:
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return int(response.headers["X-SQL-Queries"])


def _next_cards_url(pipeline) -> str:
    """A column's next cards, after a card that sorts before all of them."""
    after = keyset.encode_cursor(date(2000, 1, 1), 0)
    return f"/deals/stages/{pipeline.stages[0].id}/cards?after={after}&left=100"


@pytest.mark.parametrize("role", ["sales", "manager", "admin"])
def test_the_board_runs_the_same_few_queries_for_10_or_1010_deals(as_role, pipeline, role):
    team = make_team()
    client, me = as_role(role, team=team)
    owners = [me] + [make_user(role="sales", team=team) for _ in range(3)]
    board_fragment = htmx_headers("div#deal-board")
    column_end = htmx_headers("a.column-more")
    requests = {
        "page": ("/deals", {}),
        "fragment": ("/deals", board_fragment),
        "filtered": (f"/deals?pipeline={pipeline.id}&q=hotel&close=this_quarter", board_fragment),
        "next cards": (_next_cards_url(pipeline), column_end),
        "list": ("/deals/list", {}),
        "list rows": ("/deals/list?q=hotel", htmx_headers("tbody#deal-rows")),
    }

    def queries() -> dict[str, int]:
        return {
            name: _queries(client.get(url, headers=headers))
            for name, (url, headers) in requests.items()
        }

    _add_deals(pipeline, owners, 10)
    few = queries()
    _add_deals(pipeline, owners, 1000)
    many = queries()
    assert many == few
    assert max(many.values()) <= LIMIT, many


def test_the_board_stays_light_however_many_deals_a_column_holds(as_role, pipeline):
    """A manager's board (each card names its owner) with 120 deals a column."""
    team = make_team()
    client, me = as_role("manager", team=team)
    owners = [make_user(role="sales", team=team, name="Isabelle André") for _ in range(4)]
    _add_deals(pipeline, owners, 6 * 120)

    page = client.get("/deals")
    assert len(page.data) <= PAGE_BYTES, len(page.data)
    assert page.text.count('<article id="deal-') == 6 * deal_board.FIRST_CARDS
    assert page.text.count("<abbr title=") == 6 * deal_board.FIRST_CARDS
    assert page.text.count('<em class="overdue">') >= 3 * deal_board.FIRST_CARDS

    fragment = client.get("/deals", headers=htmx_headers("div#deal-board"))
    assert len(fragment.data) <= FRAGMENT_BYTES, len(fragment.data)
    # Every column's head counts all its deals, and its end loads the rest.
    assert fragment.text.count('title="120 deals">120<') == 6
    ends = re.findall(r'hx-get="(/deals/stages/[^"]+)"', fragment.text)
    assert len(ends) == 6

    cards = client.get(ends[0].replace("&amp;", "&"), headers=htmx_headers("a.column-more"))
    assert cards.text.count('<article id="deal-') == deal_board.NEXT_CARDS
    assert len(cards.data) <= FRAGMENT_BYTES, len(cards.data)


def test_the_deal_list_stays_light(as_role, pipeline, app):
    team = make_team()
    client, me = as_role("manager", team=team)
    _add_deals(pipeline, [me, make_user(role="sales", team=team)], 200)
    page = client.get("/deals/list")
    assert len(page.data) <= PAGE_BYTES, len(page.data)
    rows = client.get("/deals/list", headers=htmx_headers("tbody#deal-rows"))
    assert rows.text.count("<tr>") == app.config["PAGE_SIZE"]
    assert len(rows.data) <= FRAGMENT_BYTES, len(rows.data)
