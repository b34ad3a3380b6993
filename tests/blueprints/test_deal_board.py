"""The deal board: the page, its filters, moving a card, and who may do what."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest

from crm.extensions import db
from crm.models import Activity, Deal, DealStageHistory
from crm.models.types import utcnow
from crm.services import deal_board
from tests.conftest import htmx_headers
from tests.factories import (
    make_company,
    make_contact,
    make_deal,
    make_pipeline,
    make_team,
    make_user,
)
from tests.test_translations import french_catalogue  # noqa: F401  (a fixture: the compiled French catalogue)

BOARD = "div#deal-board"


def stage(pipeline, name):
    return next(s for s in pipeline.stages if s.name == name)


def cards_by_column(html: str) -> dict[str, list[str]]:
    """{stage name: titles of its cards}, read from the page."""
    columns = {}
    for section in re.findall(r'<section class="board-column.*?</section>', html, re.S):
        name = re.search(r"<h2>([^<]+)</h2>", section).group(1)
        columns[name] = re.findall(r'<article [^>]*><a href="/deals/\d+">([^<]+)</a>', section)
    return columns


def head(html: str, stage_id: int) -> str:
    match = re.search(rf'<header id="stage-head-{stage_id}".*?</header>', html, re.S)
    assert match, f"no head for stage {stage_id}"
    return match.group(0)


def toast_of(response) -> str:
    return json.loads(response.headers["HX-Trigger"])["crm:toast"]["message"]


@pytest.fixture
def pipeline(ctx):
    pipeline = make_pipeline("New business")
    pipeline.is_default = True
    return pipeline


@pytest.fixture
def rep(as_role):
    return as_role("sales", name="Sarah Connor")


def move(client, deal, stage_id, version=None, headers=None, **form):
    data = {
        "stage_id": stage_id,
        "version": deal.version_id if version is None else version,
        **form,
    }
    if headers is None:
        headers = htmx_headers(f"article#deal-{deal.id}")
    return client.post(f"/deals/{deal.id}/move", data=data, headers=headers)


class TestBoardPage:
    def test_columns_cards_and_totals(self, rep, pipeline):
        client, me = rep
        company = make_company("Acme")
        make_deal(
            pipeline,
            owner=me,
            title="Acme renewal",
            amount="12500",
            company=company,
            contact=make_contact("Ada", "Lovelace", company=company),
        )
        make_deal(pipeline, stage(pipeline, "Demo"), owner=me, title="Globex pilot", amount="3000")
        db.session.commit()

        response = client.get("/deals")
        assert response.status_code == 200
        html = response.text
        assert cards_by_column(html) == {
            "Prospection": ["Acme renewal"],
            "First contact": [],
            "Demo": ["Globex pilot"],
            "Proposal review": [],
            "Won": [],
            "Lost": [],
        }
        assert "Acme · Ada Lovelace" in html
        assert "<abbr" not in html  # a rep's cards are all theirs: no owner on them
        prospection = head(html, pipeline.stages[0].id)
        assert "€12,500" in prospection and "€1,250 weighted" in prospection
        demo = head(html, stage(pipeline, "Demo").id)
        assert "€3,000" in demo and "€1,200 weighted" in demo
        assert '<span class="column-count" title="1 deal">1</span>' in demo
        # SortableJS only on this page; the drop glue lives in app.js.
        assert "vendor/Sortable.min.js" in html
        assert 'id="lost-dialog"' in html
        # One move form for the page, copied into a card when its "⋯" opens.
        assert html.count('class="card-move"') == 1 and 'id="card-move-template"' in html

    def test_flags_stalled_and_overdue(self, rep, pipeline):
        client, me = rep
        make_deal(
            pipeline, owner=me, title="Sleeping", stage_entered_at=utcnow() - timedelta(days=30)
        )
        make_deal(
            pipeline, owner=me, title="Late", expected_close=utcnow().date() - timedelta(days=5)
        )
        db.session.commit()
        html = client.get("/deals").text
        cards = {
            re.search(r">([^<]+)</a>", card).group(1): card
            for card in re.findall(r"<article .*?</article>", html, re.S)
        }
        assert '<em class="stalled">Stalled</em>' in cards["Sleeping"]
        assert "overdue" not in cards["Sleeping"]
        assert '<em class="overdue">Overdue</em>' in cards["Late"]
        assert "stalled" not in cards["Late"]

    def test_several_currencies_are_listed_apart(self, rep, pipeline):
        client, me = rep
        make_deal(pipeline, owner=me, amount="1000")
        make_deal(pipeline, owner=me, amount="1000")
        make_deal(pipeline, owner=me, amount="400", currency="USD")
        db.session.commit()
        prospection = head(client.get("/deals").text, pipeline.stages[0].id)
        assert "€2,000" in prospection
        assert "+ $400" in prospection and "1 deal" in prospection
        assert "€2,400" not in prospection

    def test_pipeline_tabs_and_default_pipeline(self, rep, pipeline):
        client, me = rep
        renewals = make_pipeline("Renewals")
        make_deal(pipeline, owner=me, title="New logo")
        make_deal(renewals, owner=me, title="Renewal 2027")
        db.session.commit()
        html = client.get("/deals").text
        assert "New logo" in html and "Renewal 2027" not in html
        assert re.search(rf'name="pipeline" value="{pipeline.id}" checked', html)
        html = client.get(f"/deals?pipeline={renewals.id}").text
        assert "Renewal 2027" in html and "New logo" not in html
        assert re.search(rf'name="pipeline" value="{renewals.id}" checked', html)

    def test_filters_in_the_url_answer_only_the_board(self, as_role, pipeline):
        client, manager = as_role("manager", team=make_team())
        rep = make_user(role="sales", team=manager.team, name="Rita Rep")
        make_deal(pipeline, owner=rep, title="Acme renewal", amount="100")
        make_deal(pipeline, owner=manager, title="Globex pilot", amount="200")
        db.session.commit()

        page = client.get("/deals").text
        assert f'<option value="{rep.id}" >Rita Rep</option>' in page  # the team, as owner choices
        assert '<abbr title="Rita Rep">RR</abbr>' in page  # whose deal each card is
        response = client.get(
            f"/deals?pipeline={pipeline.id}&owner={rep.id}", headers=htmx_headers(BOARD)
        )
        assert response.status_code == 200
        assert "<html" not in response.text and 'id="deal-filters"' not in response.text
        assert cards_by_column(response.text)["Prospection"] == ["Acme renewal"]
        assert "€100" in head(response.text, pipeline.stages[0].id)
        assert cards_by_column(client.get("/deals?q=globex").text)["Prospection"] == [
            "Globex pilot"
        ]
        assert cards_by_column(client.get("/deals?owner=me").text)["Prospection"] == [
            "Globex pilot"
        ]
        html = client.get("/deals?q=nothing-like-this").text
        assert "No deal matches these filters." in html

    def test_a_column_shows_its_first_cards_then_the_next_ones_as_one_scrolls(
        self, rep, pipeline, monkeypatch
    ):
        client, me = rep
        today = utcnow().date()
        first = deal_board.FIRST_CARDS
        for i in range(first + 3):
            make_deal(
                pipeline, owner=me, title=f"Deal {i:02}", expected_close=today + timedelta(days=i)
            )
        make_deal(pipeline, owner=me, title="Undated deal")  # undated: last
        make_deal(pipeline, owner=me, title="Globex")  # filtered out
        make_deal(pipeline, owner=make_user(role="sales"), title="Their deal")  # not the rep's
        db.session.commit()
        prospection = pipeline.stages[0]

        html = client.get("/deals?q=deal").text
        assert cards_by_column(html)["Prospection"] == [f"Deal {i:02}" for i in range(first)]
        total = first + 4
        assert f'title="{total} deals">{total}<' in head(html, prospection.id)  # counts them all
        more = re.search(
            r'<a class="column-more" href="([^"]+)" hx-get="([^"]+)" '
            r'hx-trigger="revealed" hx-swap="outerHTML">and 4 more</a>\s*</div>',
            html,
        )
        assert more, "no end of column that loads the next cards"
        # Without JavaScript, the end of the column is a link to its deals in the list.
        assert more.group(1) == (
            f"/deals/list?q=deal&amp;pipeline={pipeline.id}&amp;stage={prospection.id}"
        )

        monkeypatch.setattr(deal_board, "NEXT_CARDS", 2)
        next_url = more.group(2).replace("&amp;", "&")
        assert next_url.startswith(f"/deals/stages/{prospection.id}/cards?")
        response = client.get(next_url, headers=htmx_headers("a.column-more"))
        assert response.status_code == 200 and "<html" not in response.text
        titles = re.findall(r'<article [^>]*><a href="/deals/\d+">([^<]+)</a>', response.text)
        assert titles == [f"Deal {first:02}", f"Deal {first + 1:02}"]
        more = re.search(r'hx-get="([^"]+)"[^>]*>and 2 more</a>$', response.text.strip())
        assert more, "no end of column after the second cards"
        response = client.get(
            more.group(1).replace("&amp;", "&"), headers=htmx_headers("a.column-more")
        )
        titles = re.findall(r'<article [^>]*><a href="/deals/\d+">([^<]+)</a>', response.text)
        assert titles == [f"Deal {first + 2:02}", "Undated deal"]
        assert "column-more" not in response.text  # the end of the column

        # Opened as a page, the next cards are the column's deals in the list.
        response = client.get(next_url)
        assert response.status_code == 303
        assert response.headers["Location"] == (
            f"/deals/list?q=deal&pipeline={pipeline.id}&stage={prospection.id}"
        )
        assert client.get("/deals/stages/999999/cards").status_code == 404

    def test_no_pipeline_yet(self, rep):
        client, _ = rep
        assert "There is no pipeline yet" in client.get("/deals").text


class TestMove:
    def test_move_answers_the_card_and_both_heads(self, rep, pipeline):
        client, me = rep
        demo = stage(pipeline, "Demo")
        deal = make_deal(pipeline, owner=me, title="Acme renewal", amount="1000")
        make_deal(pipeline, demo, owner=me, amount="500")
        db.session.commit()

        response = move(client, deal, demo.id)
        assert response.status_code == 200
        html = response.text
        assert toast_of(response) == "Deal moved to Demo."
        card = re.match(r'\s*<article id="deal-(\d+)" class="deal-card" data-version="(\d+)"', html)
        assert card and card.groups() == (str(deal.id), "2")
        # The heads of the column it left and of the one it joined, as <hx-partial>s.
        prospection_id = pipeline.stages[0].id
        assert f'<hx-partial hx-target="#stage-head-{prospection_id}" hx-swap="outerHTML">' in html
        assert f'<hx-partial hx-target="#stage-head-{demo.id}" hx-swap="outerHTML">' in html
        assert 'title="0 deals">0<' in head(html, prospection_id)
        assert "€1,500" in head(html, demo.id) and "€600 weighted" in head(html, demo.id)

        db.session.expire_all()
        moved = db.session.get(Deal, deal.id)
        assert (moved.stage_id, moved.version_id, moved.updated_by_id) == (demo.id, 2, me.id)
        history = db.session.scalars(
            db.select(DealStageHistory)
            .where(DealStageHistory.deal_id == deal.id)
            .order_by(DealStageHistory.id)
        ).all()
        assert [(h.from_stage_id, h.to_stage_id) for h in history][-1] == (prospection_id, demo.id)
        event = db.session.scalars(db.select(Activity).where(Activity.deal_id == deal.id)).one()
        assert event.data == {
            "event": "deal_stage",
            "deal": "Acme renewal",
            "from": "Prospection",
            "to": "Demo",
        }

    def test_heads_follow_the_filters_of_the_page(self, rep, pipeline):
        client, me = rep
        demo = stage(pipeline, "Demo")
        deal = make_deal(pipeline, owner=me, title="Acme renewal", amount="1000")
        make_deal(pipeline, demo, owner=me, title="Globex", amount="500")
        db.session.commit()
        headers = {
            **htmx_headers(f"article#deal-{deal.id}"),
            "HX-Current-URL": f"http://localhost/deals?pipeline={pipeline.id}&q=acme",
        }
        response = move(client, deal, demo.id, headers=headers)
        assert "€1,000" in head(response.text, demo.id)  # Globex is filtered out

    def test_to_lost_without_a_reason_is_refused(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me)
        db.session.commit()
        response = move(client, deal, stage(pipeline, "Lost").id, lost_reason="   ")
        assert response.status_code == 422
        assert "Say why the deal was lost." in response.text
        assert f'id="lost-reason-{deal.id}"' in response.text
        assert re.search(r'<option value="\d+" selected>Lost</option>', response.text)
        db.session.expire_all()
        assert db.session.get(Deal, deal.id).stage_id == pipeline.stages[0].id

    def test_to_lost_with_a_reason(self, rep, pipeline):
        client, me = rep
        lost = stage(pipeline, "Lost")
        deal = make_deal(pipeline, owner=me, title="Initech")
        db.session.commit()
        response = move(client, deal, lost.id, lost_reason=" Went with a competitor ")
        assert response.status_code == 200
        assert toast_of(response) == "Deal moved to Lost."
        db.session.expire_all()
        saved = db.session.get(Deal, deal.id)
        assert (saved.stage_id, saved.lost_reason) == (lost.id, "Went with a competitor")
        assert saved.closed_at is not None
        event = db.session.scalars(db.select(Activity).where(Activity.deal_id == deal.id)).one()
        assert event.data["reason"] == "Went with a competitor"
        # The card is in the Lost column after a reload: closed today, within the last 30 days.
        assert cards_by_column(client.get("/deals").text)["Lost"] == ["Initech"]

    def test_stale_version_is_a_409_naming_who_changed_it(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me)
        db.session.commit()
        manager = make_user(role="manager", name="Marc Manager")
        deal.updated_by = manager
        deal.amount = Decimal("2000")  # someone else's save: version 1 -> 2
        db.session.commit()

        response = move(client, deal, stage(pipeline, "Demo").id, version=1)
        assert response.status_code == 409
        assert (
            "This deal was changed by Marc Manager. Reload to see their changes." in response.text
        )
        assert response.headers["HX-Retarget"] == "#toasts"
        db.session.expire_all()
        assert db.session.get(Deal, deal.id).stage_id == pipeline.stages[0].id

    def test_stale_version_from_another_window_of_the_same_user(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me, updated_by=me)
        db.session.commit()
        deal.amount = Decimal("5")
        db.session.commit()
        response = move(client, deal, stage(pipeline, "Demo").id, version=1)
        assert response.status_code == 409
        assert "You changed this deal in another window." in response.text

    def test_same_stage_changes_nothing(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me)
        db.session.commit()
        response = move(client, deal, pipeline.stages[0].id)
        assert response.status_code == 200 and "HX-Trigger" not in response.headers
        db.session.expire_all()
        assert db.session.get(Deal, deal.id).version_id == 1

    def test_stage_of_another_pipeline_is_a_400(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me)
        other = make_pipeline()
        db.session.commit()
        assert move(client, deal, other.stages[1].id).status_code == 400
        assert move(client, deal, "").status_code == 400

    def test_without_javascript_back_to_the_board_with_its_filters(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me)
        db.session.commit()
        referer = f"http://localhost/deals?pipeline={pipeline.id}&owner=me"
        response = move(client, deal, stage(pipeline, "Demo").id, headers={"Referer": referer})
        assert response.status_code == 303
        assert response.headers["Location"] == f"/deals?pipeline={pipeline.id}&owner=me"
        assert "Deal moved to Demo." in client.get(response.headers["Location"]).text

    def test_without_javascript_lost_asks_for_the_reason_on_a_page(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me, title="Initech")
        db.session.commit()
        response = move(client, deal, stage(pipeline, "Lost").id, headers={})
        assert response.status_code == 422
        assert "<html" in response.text and "Why was this deal lost?" in response.text
        assert "Say why the deal was lost." in response.text and "Initech" in response.text

    def test_without_javascript_the_card_menu_opens_a_move_page(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me, title="Initech")
        db.session.commit()
        board = f"/deals?pipeline={pipeline.id}&owner=me"
        html = client.get(f"/deals/{deal.id}/move", headers={"Referer": f"http://localhost{board}"})
        assert "<h1>Move to another stage</h1>" in html.text
        assert f'<a href="/deals/{deal.id}/move" aria-labelledby="move-menu">' in html.text
        assert 'id="move-menu" hidden>Move to another stage<' in html.text
        assert f'action="/deals/{deal.id}/move"' in html.text
        assert re.search(r'<option value="\d+" selected>Prospection</option>', html.text)
        return_to = board.replace("&", "&amp;")
        assert f'name="return_to" value="{return_to}"' in html.text

        # Posted from that page, the move goes back to the board it was opened from.
        demo = stage(pipeline, "Demo").id
        response = move(client, deal, demo, headers={}, return_to=board)
        assert response.status_code == 303 and response.headers["Location"] == board
        db.session.expire_all()
        assert db.session.get(Deal, deal.id).stage_id == demo

    def test_a_move_never_returns_to_another_site(self, rep, pipeline):
        client, me = rep
        deal = make_deal(pipeline, owner=me)
        db.session.commit()
        demo = stage(pipeline, "Demo").id
        response = move(client, deal, demo, headers={}, return_to="https://evil.example/x")
        assert response.headers["Location"] == "/deals"


class TestAccess:
    def test_another_reps_deal_is_a_404(self, rep, pipeline):
        client, _ = rep
        deal = make_deal(pipeline, owner=make_user(role="sales"))
        db.session.commit()
        assert client.get(f"/deals/{deal.id}/move").status_code == 404
        assert move(client, deal, stage(pipeline, "Demo").id).status_code == 404
        assert move(client, deal, stage(pipeline, "Demo").id, headers={}).status_code == 404

    def test_a_manager_moves_the_deals_of_the_team_only(self, as_role, pipeline):
        client, manager = as_role("manager", team=make_team())
        teammate_deal = make_deal(pipeline, owner=make_user(role="sales", team=manager.team))
        outsider_deal = make_deal(pipeline, owner=make_user(role="sales"))
        db.session.commit()
        demo = stage(pipeline, "Demo").id
        assert move(client, teammate_deal, demo).status_code == 200
        assert move(client, outsider_deal, demo).status_code == 404

    @pytest.mark.parametrize("role", ["support", "technician"])
    def test_support_and_technicians_are_refused(self, as_role, pipeline, role):
        client, _ = as_role(role)
        deal = make_deal(pipeline, owner=make_user(role="sales"))
        db.session.commit()
        assert client.get("/deals").status_code == 403
        assert move(client, deal, stage(pipeline, "Demo").id).status_code == 403
        response = client.get("/deals", headers=htmx_headers(BOARD))
        assert response.status_code == 403 and response.headers["HX-Retarget"] == "#toasts"


def test_the_board_runs_the_same_few_queries_for_10_or_500_deals(as_role, pipeline):
    """The N+1 guard: an admin's board (owner and team choices too) with 10, then 500 deals."""
    client, admin = as_role("admin")
    team = make_team()
    owners = [admin] + [make_user(role="sales", team=team) for _ in range(4)]
    companies = [make_company() for _ in range(5)]
    contacts = [make_contact(company=c) for c in companies]
    now = utcnow()

    def add(count):
        for i in range(count):
            stage_ = pipeline.stages[i % len(pipeline.stages)]
            db.session.add(
                Deal(
                    title=f"Deal {i}",
                    title_key=f"deal {i}",
                    pipeline=pipeline,
                    stage=stage_,
                    amount=Decimal(1000 + i),
                    currency="USD" if i % 7 == 0 else "EUR",
                    owner=owners[i % len(owners)],
                    company=companies[i % 5],
                    contact=contacts[i % 5],
                    expected_close=now.date() + timedelta(days=i % 60 - 20),
                    closed_at=now if stage_.is_closed else None,
                )
            )
        db.session.commit()

    def queries(url):
        response = client.get(url)
        assert response.status_code == 200
        return int(response.headers["X-SQL-Queries"])

    urls = [
        "/deals",
        f"/deals?pipeline={pipeline.id}&q=deal&close=this_quarter",
        f"/deals?team={team.id}",
    ]
    add(10)
    small = {url: queries(url) for url in urls}
    add(490)
    large = {url: queries(url) for url in urls}
    assert large == small
    assert max(large.values()) <= 10, large
    html = client.get("/deals").text
    # 83 or 84 deals per column: the first cards of each, and the end that loads the others.
    assert html.count('<article id="deal-') == 6 * deal_board.FIRST_CARDS
    assert html.count('class="column-more"') == 6


@pytest.mark.usefixtures("french_catalogue")
def test_the_board_in_french(as_role, pipeline):
    client, me = as_role("sales", locale="fr")
    make_deal(
        pipeline,
        owner=me,
        title="Boulangerie Martin",
        amount="12500",
        stage_entered_at=utcnow() - timedelta(days=40),
    )
    make_deal(pipeline, owner=me, amount="400", currency="USD")
    db.session.commit()
    html = client.get("/deals").text
    prospection = head(html, pipeline.stages[0].id)
    assert "12\u202f500\u00a0€" in prospection and "1\u202f250\u00a0€ pondéré" in prospection
    assert "+ 400\u00a0$US sur 1 affaire" in prospection
    assert (
        ">Stagnante<" in html
        and "Changer d’étape" in html
        and "Pourquoi cette affaire a-t-elle été perdue" in html
    )
    for english in (">Stalled<", " weighted", ">Move<", "Why was this deal lost?", "List view"):
        assert english not in html, english
