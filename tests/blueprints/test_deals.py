"""A deal's page: quick-add, fields, product lines, stages, notes, and concurrent saves."""

import re
import threading
from decimal import Decimal

import pytest

from crm.extensions import db
from crm.models import Activity, Deal, DealStageHistory
from tests.conftest import htmx_headers
from tests.factories import (
    make_company,
    make_contact,
    make_deal,
    make_pipeline,
    make_product,
    make_team,
    make_user,
)

PAGE = htmx_headers("div#deal-page")


def _reload(deal) -> Deal:
    db.session.expire_all()
    return db.session.get(Deal, deal.id)


@pytest.fixture
def rep(as_role):
    return as_role("sales")


class TestQuickAdd:
    def test_from_a_contact_page_the_contact_and_company_are_filled_in(self, rep):
        client, me = rep
        make_pipeline()
        acme = make_company("Acme")
        contact = make_contact(company=acme)
        db.session.commit()
        page = client.get(f"/contacts/{contact.id}").text
        assert 'id="deal-quick-add"' in page and f'name="contact" value="{contact.id}"' in page
        response = client.post(
            "/deals",
            data={
                "title": "Tills for Acme",
                "amount": "1,500.50",
                "contact": contact.id,
                "return_to": f"/contacts/{contact.id}",
            },
            headers=htmx_headers("form#deal-quick-add"),
        )
        assert response.status_code == 200
        assert f'"path": "/contacts/{contact.id}"' in response.headers["HX-Location"]
        deal = db.session.scalars(db.select(Deal)).one()
        assert (deal.contact_id, deal.company_id, deal.owner_id) == (contact.id, acme.id, me.id)
        assert deal.amount == Decimal("1500.50")
        assert deal.stage.name == "Prospection"
        assert "Tills for Acme" in client.get(f"/contacts/{contact.id}").text

    def test_a_title_is_required(self, rep):
        client, _ = rep
        make_pipeline()
        db.session.commit()
        response = client.post(
            "/deals",
            data={"title": " ", "amount": "12"},
            headers=htmx_headers("form#deal-quick-add"),
        )
        assert response.status_code == 422
        assert 'value="12"' in response.text

    def test_an_unsafe_return_address_is_ignored(self, rep):
        client, _ = rep
        make_pipeline()
        db.session.commit()
        response = client.post("/deals", data={"title": "X", "return_to": "//evil.example/"})
        assert response.headers["Location"].startswith("/deals/")


class TestPage:
    def test_owner_sees_the_deal_others_do_not(self, rep, as_role):
        client, me = rep
        team = make_team()
        me.team = team
        deal = make_deal(owner=me, title="Big one")
        db.session.commit()
        assert "Big one" in client.get(f"/deals/{deal.id}").text
        other_rep, _ = as_role("sales")
        assert other_rep.get(f"/deals/{deal.id}").status_code == 404
        outsider_manager, _ = as_role("manager")
        assert outsider_manager.get(f"/deals/{deal.id}").status_code == 404
        team_manager, _ = as_role("manager", team_id=team.id)
        assert team_manager.get(f"/deals/{deal.id}").status_code == 200
        support, _ = as_role("support")
        assert support.get(f"/deals/{deal.id}").status_code == 403

    def test_save_fields(self, rep):
        client, me = rep
        deal = make_deal(owner=me)
        contact = make_contact("Zoé", "Zeller")
        db.session.commit()
        response = client.post(
            f"/deals/{deal.id}",
            headers=PAGE,
            data={
                "version": deal.version_id,
                "title": "Renamed",
                "amount": "2500",
                "currency": "EUR",
                "expected_close": "2026-12-15",
                "owner": str(me.id),
                "contact": f"Zoé Zeller (#{contact.id})",
                "company": "Globex",
                "source": "referral",
            },
        )
        assert response.status_code == 200, response.text
        saved = _reload(deal)
        assert (saved.title, saved.amount, str(saved.expected_close)) == (
            "Renamed",
            Decimal("2500.00"),
            "2026-12-15",
        )
        assert (saved.contact_id, saved.company.name, saved.version_id) == (contact.id, "Globex", 2)

    def test_a_rep_cannot_give_a_deal_away(self, rep):
        client, me = rep
        deal = make_deal(owner=me)
        other = make_user()
        db.session.commit()
        response = client.post(
            f"/deals/{deal.id}",
            headers=PAGE,
            data={
                "version": deal.version_id,
                "title": deal.title,
                "currency": "EUR",
                "owner": str(other.id),
            },
        )
        assert response.status_code == 422
        assert "Only a manager" in response.text
        assert _reload(deal).owner_id == me.id

    def test_a_stale_save_gets_409_naming_who_changed_it_and_keeps_the_input(
        self, rep, as_role, login, app
    ):
        client, me = rep
        team = make_team()
        me.team = team
        manager, _boss = as_role("manager", name="Marc Boss", team_id=team.id)
        deal = make_deal(owner=me, title="Original")
        db.session.commit()
        form = {"version": deal.version_id, "currency": "EUR", "owner": str(me.id)}
        first = manager.post(
            f"/deals/{deal.id}", headers=PAGE, data={**form, "title": "Manager's title"}
        )
        assert first.status_code == 200
        second = client.post(
            f"/deals/{deal.id}", headers=PAGE, data={**form, "title": "Rep's title"}
        )
        assert second.status_code == 409
        assert "This deal was changed by Marc Boss." in second.text
        assert 'value="Rep&#39;s title"' in second.text
        assert _reload(deal).title == "Manager's title"

    def test_twenty_concurrent_saves_one_wins_the_rest_get_409(self, app, rep, login):
        _, me = rep
        deal = make_deal(owner=me, title="Contended")
        db.session.commit()
        version, deal_id = deal.version_id, deal.id
        results: dict[int, int] = {}
        barrier = threading.Barrier(20)

        clients = [login(app.test_client(), me) for _ in range(20)]
        owner = str(me.id)

        def save(n: int) -> None:
            barrier.wait()
            response = clients[n].post(
                f"/deals/{deal_id}",
                headers=PAGE,
                data={"version": version, "title": f"Title {n}", "currency": "EUR", "owner": owner},
            )
            results[n] = response.status_code

        threads = [threading.Thread(target=save, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = [n for n, status in results.items() if status == 200]
        assert len(results) == 20
        assert len(winners) == 1, results
        assert sorted(set(results.values())) == [200, 409]
        stored = _reload(deal)
        assert (stored.title, stored.version_id) == (f"Title {winners[0]}", version + 1)


class TestLines:
    def test_product_lines_make_the_amount_and_the_margin(self, rep):
        client, me = rep
        deal = make_deal(owner=me, amount="999")
        product = make_product(
            "LIC", name="Licence", unit_price=Decimal("100.00"), unit_cost=Decimal("30.00")
        )
        db.session.commit()
        added = client.post(
            f"/deals/{deal.id}/lines",
            headers=PAGE,
            data={"product_id": product.id, "quantity": "3", "discount": "10"},
        )
        assert added.status_code == 200
        client.post(
            f"/deals/{deal.id}/lines",
            headers=PAGE,
            data={"description": "Travel", "quantity": "1", "unit_price": "50"},
        )
        saved = _reload(deal)
        assert [line.total for line in saved.lines] == [Decimal("270.00"), Decimal("50.00")]
        assert saved.amount == Decimal("320.00")
        page = client.get(f"/deals/{deal.id}").text
        assert "Follows the product lines." in page
        line = saved.lines[1]
        removed = client.post(f"/deals/{deal.id}/lines/{line.id}/delete", headers=PAGE)
        assert removed.status_code == 200
        assert _reload(deal).amount == Decimal("270.00")

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"quantity": "0", "description": "x"}, "Number must be at least 0.01."),
            ({"quantity": "1"}, "Pick a product or describe the line."),
            ({"quantity": "abc", "description": "x"}, "Enter an amount such as"),
            ({"quantity": "1", "product_id": "999999"}, "Pick a product from the catalogue."),
        ],
    )
    def test_bad_lines_are_refused_with_the_input_kept(self, rep, data, message):
        client, me = rep
        deal = make_deal(owner=me)
        db.session.commit()
        response = client.post(f"/deals/{deal.id}/lines", headers=PAGE, data=data)
        assert response.status_code == 422
        assert message in response.text
        assert not _reload(deal).lines


class TestStages:
    def test_moving_writes_history_and_the_timeline(self, rep):
        client, me = rep
        pipeline = make_pipeline()
        contact = make_contact()
        deal = make_deal(pipeline=pipeline, owner=me, contact=contact)
        db.session.commit()
        demo = pipeline.stages[2]
        response = client.post(
            f"/deals/{deal.id}/stage",
            headers=PAGE,
            data={"version": deal.version_id, "stage_id": demo.id},
        )
        assert response.status_code == 200
        assert _reload(deal).stage_id == demo.id
        moves = db.session.scalars(
            db.select(DealStageHistory).where(DealStageHistory.to_stage_id == demo.id)
        ).all()
        assert len(moves) == 1 and moves[0].changed_by_id == me.id
        assert "moved from Prospection to Demo" in client.get(f"/contacts/{contact.id}").text

    def test_lost_needs_a_reason(self, rep):
        client, me = rep
        pipeline = make_pipeline()
        deal = make_deal(pipeline=pipeline, owner=me)
        db.session.commit()
        lost = next(s for s in pipeline.stages if s.kind == "lost")
        refused = client.post(
            f"/deals/{deal.id}/stage",
            headers=PAGE,
            data={"version": deal.version_id, "stage_id": lost.id, "lost_reason": ""},
        )
        assert refused.status_code == 422 and "Say why the deal was lost" in refused.text
        accepted = client.post(
            f"/deals/{deal.id}/stage",
            headers=PAGE,
            data={"version": deal.version_id, "stage_id": lost.id, "lost_reason": "Too expensive"},
        )
        assert accepted.status_code == 200
        saved = _reload(deal)
        assert (saved.stage_id, saved.lost_reason) == (lost.id, "Too expensive")
        assert saved.closed_at is not None

    def test_a_stage_of_another_pipeline_is_refused(self, rep):
        client, me = rep
        deal = make_deal(owner=me)
        foreign = make_pipeline().stages[1]
        db.session.commit()
        response = client.post(
            f"/deals/{deal.id}/stage", data={"version": deal.version_id, "stage_id": foreign.id}
        )
        assert response.status_code == 400


def test_notes_land_on_the_deal_and_the_contact_timeline(rep):
    client, me = rep
    contact = make_contact()
    deal = make_deal(owner=me, contact=contact)
    db.session.commit()
    response = client.post(
        f"/deals/{deal.id}/notes", headers=PAGE, data={"body": "Asked for a discount"}
    )
    assert response.status_code == 200 and "Asked for a discount" in response.text
    note = db.session.scalars(db.select(Activity).where(Activity.kind == "note")).one()
    assert (note.deal_id, note.contact_id) == (deal.id, contact.id)


def test_another_reps_deal_events_stay_off_my_contact_timeline(as_role):
    mine, me = as_role("sales")
    _, other = as_role("sales")
    contact = make_contact()
    deal = make_deal(owner=other, contact=contact, title="Secret deal")
    db.session.add(
        Activity(
            kind="system",
            contact=contact,
            deal=deal,
            data={"event": "deal_created", "deal": "Secret deal"},
        )
    )
    db.session.commit()
    assert "Secret deal" not in mine.get(f"/contacts/{contact.id}").text


def test_contact_picker_suggests_visible_contacts(rep):
    client, _ = rep
    make_contact("Hélène", "Martin")
    db.session.commit()
    response = client.get(
        "/deals/contact-options?contact=hel", headers=htmx_headers("datalist#contact-options")
    )
    assert re.search(r'<option value="Hélène Martin \(#\d+\)">', response.text)


class TestList:
    def test_search_sort_and_pages(self, app, rep):
        client, me = rep
        app.config["PAGE_SIZE"] = 4
        pipeline = make_pipeline()
        for i in range(10):
            make_deal(
                pipeline=pipeline, owner=me, title=f"Deal {i:02d}", amount=str(100 * (10 - i))
            )
        make_deal(pipeline=pipeline, owner=make_user(), title="Not mine")
        db.session.commit()
        seen, url = [], "/deals/list?sort=amount"
        while url:
            html = client.get(url, headers=htmx_headers("tr#load-more") if seen else {}).text
            seen += re.findall(r'<a href="/deals/\d+">(Deal \d\d)</a>', html)
            found = re.search(r'id="load-more" hx-get="([^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
        assert seen == [f"Deal {i:02d}" for i in range(9, -1, -1)]
        only = client.get("/deals/list?q=deal+03", headers=htmx_headers("tbody#deal-rows")).text
        assert re.findall(r">(Deal \d\d)</a>", only) == ["Deal 03"]


def test_the_list_opens_on_one_column_of_the_board(rep):
    client, me = rep
    pipeline = make_pipeline()
    make_deal(pipeline=pipeline, stage=pipeline.stages[0], owner=me, title="In prospection")
    make_deal(pipeline=pipeline, stage=pipeline.stages[2], owner=me, title="In demo")
    db.session.commit()
    html = client.get(f"/deals/list?pipeline={pipeline.id}&stage={pipeline.stages[2].id}").text
    assert "In demo" in html and "In prospection" not in html
    assert f"stage={pipeline.stages[2].id}" in html  # sorting keeps the column
