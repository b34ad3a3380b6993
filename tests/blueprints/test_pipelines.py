"""The pipeline admin page: cards of stages, each change answered with its card, 422 on a refusal."""

import re

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.models import Deal, DealStageHistory, Pipeline, Stage
from tests.conftest import htmx_headers
from tests.factories import make_deal, make_pipeline


@pytest.fixture
def admin(as_role):
    return as_role("admin")


def _stage(pipeline: Pipeline, name: str) -> Stage:
    return next(s for s in pipeline.stages if s.name == name)


def _card_headers(pipeline: Pipeline) -> dict:
    return htmx_headers(f"section#pipeline-{pipeline.id}")


def _stage_names(html: str, pipeline: Pipeline) -> list[str]:
    return re.findall(r'name="s\d+-name"[^>]*value="([^"]*)"', html)


def _stage_data(stage: Stage, **changes) -> dict:
    values = {
        "name": stage.name,
        "probability": str(stage.probability),
        "kind": stage.kind,
        "milestone": stage.milestone or "",
        "stall_days": str(stage.stall_days or ""),
    }
    values.update(changes)
    return {f"s{stage.id}-{key}": value for key, value in values.items()}


def test_page_shows_every_pipeline_with_its_ordered_stages(admin):
    client, _ = admin
    pipeline = make_pipeline("New business")
    pipeline.is_default = True
    make_pipeline("Renewals")
    make_deal(pipeline, _stage(pipeline, "Demo"))
    db.session.commit()
    response = client.get("/admin/pipelines")
    assert response.status_code == 200
    html = response.text
    assert html.count('class="card pipeline-card"') == 2
    assert _stage_names(html, pipeline)[:6] == [
        "Prospection",
        "First contact",
        "Demo",
        "Proposal review",
        "Won",
        "Lost",
    ]
    assert "Default pipeline" in html and "1 deal" in html


def test_page_runs_a_bounded_number_of_queries(admin):
    client, _ = admin
    make_pipeline()
    db.session.commit()
    small = int(client.get("/admin/pipelines").headers["X-SQL-Queries"])
    for _i in range(5):
        pipeline = make_pipeline()
        for stage in pipeline.stages:
            make_deal(pipeline, stage)
    db.session.commit()
    assert int(client.get("/admin/pipelines").headers["X-SQL-Queries"]) == small <= 6


@pytest.mark.parametrize("role", ["manager", "sales", "support", "technician"])
def test_only_admins_get_in(as_role, role):
    client, _ = as_role(role)
    pipeline = make_pipeline()
    db.session.commit()
    assert client.get("/admin/pipelines").status_code == 403
    assert (
        client.post(
            f"/admin/pipelines/{pipeline.id}", data={f"p{pipeline.id}-name": "X"}
        ).status_code
        == 403
    )
    stage = _stage(pipeline, "Demo")
    assert client.post(f"/admin/pipelines/stages/{stage.id}/delete").status_code == 403
    db.session.expire_all()
    assert db.session.get(Stage, stage.id) is not None


class TestStageEdits:
    def test_save_a_stage_answers_the_card(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        demo = _stage(pipeline, "Demo")
        db.session.commit()
        response = client.post(
            f"/admin/pipelines/stages/{demo.id}",
            data=_stage_data(demo, name="Live demo", probability="45", stall_days="7"),
            headers=_card_headers(pipeline),
        )
        assert response.status_code == 200
        assert response.text.lstrip().startswith(f'<section id="pipeline-{pipeline.id}"')
        db.session.expire_all()
        demo = db.session.get(Stage, demo.id)
        assert (demo.name, demo.probability, demo.stall_days, demo.milestone) == (
            "Live demo",
            45,
            7,
            "meeting",
        )

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"probability": "150"}, "Between 0 and 100."),
            ({"name": ""}, "This field is required."),
            ({"name": "won"}, "Another stage of this pipeline already has this name."),
            ({"milestone": "proposal"}, "Proposal review already stands for this milestone."),
            ({"stall_days": "0"}, "Between 1 and 3650 days."),
            (
                {"kind": "won"},
                "This stage holds deals: move them to another stage before changing its kind.",
            ),
        ],
    )
    def test_refusals_answer_422_with_the_input_kept(self, admin, changes, message):
        client, _ = admin
        pipeline = make_pipeline()
        demo = _stage(pipeline, "Demo")
        make_deal(pipeline, demo)
        db.session.commit()
        data = _stage_data(demo, **changes)
        response = client.post(
            f"/admin/pipelines/stages/{demo.id}", data=data, headers=_card_headers(pipeline)
        )
        assert response.status_code == 422
        assert message in response.text
        for key, value in data.items():
            if key.endswith(("name", "probability", "stall_days")) and value:
                assert f'value="{value}"' in response.text, key
        db.session.expire_all()
        assert db.session.get(Stage, demo.id).name == "Demo"

    def test_pipeline_rule_is_shown_on_the_card(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        won = _stage(pipeline, "Won")
        db.session.commit()
        response = client.post(
            f"/admin/pipelines/stages/{won.id}",
            data=_stage_data(won, kind="lost"),
            headers=_card_headers(pipeline),
        )
        assert response.status_code == 422
        assert (
            '<div class="form-errors" role="alert"><p>A pipeline needs at least one won stage.'
            in response.text
        )

    def test_move_up_and_down(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        demo = _stage(pipeline, "Demo")
        db.session.commit()
        response = client.post(
            f"/admin/pipelines/stages/{demo.id}/move",
            data={"direction": "up"},
            headers=_card_headers(pipeline),
        )
        assert response.status_code == 200
        assert _stage_names(response.text, pipeline)[1] == "Demo"
        assert re.search(
            r'value="up"[^>]*\n[^>]*autofocus', response.text
        )  # the focus stays on the button
        refused = client.post(
            f"/admin/pipelines/stages/{_stage(pipeline, 'Won').id}/move",
            data={"direction": "up"},
            headers=_card_headers(pipeline),
        )
        assert refused.status_code == 200  # Won above Proposal review is fine
        db.session.expire_all()
        names = [s.name for s in db.session.get(Pipeline, pipeline.id).stages]
        assert names == ["Prospection", "Demo", "First contact", "Won", "Proposal review", "Lost"]
        assert (
            client.post(
                f"/admin/pipelines/stages/{demo.id}/move", data={"direction": "sideways"}
            ).status_code
            == 400
        )

    def test_moving_a_closed_stage_first_is_refused(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        for name in ("First contact", "Demo", "Proposal review"):
            make_deal(pipeline, _stage(pipeline, name))
        from crm.services.pipelines import reorder_stages

        order = ["Prospection", "Won", "First contact", "Demo", "Proposal review", "Lost"]
        reorder_stages(None, pipeline, [_stage(pipeline, n).id for n in order])
        db.session.commit()
        response = client.post(
            f"/admin/pipelines/stages/{_stage(pipeline, 'Won').id}/move",
            data={"direction": "up"},
            headers=_card_headers(pipeline),
        )
        assert response.status_code == 422
        assert "The first stage must be an open one" in response.text

    def test_add_a_stage(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        db.session.commit()
        prefix = f"new{pipeline.id}"
        response = client.post(
            f"/admin/pipelines/{pipeline.id}/stages",
            data={
                f"{prefix}-name": "Negotiation",
                f"{prefix}-probability": "85",
                f"{prefix}-kind": "open",
                f"{prefix}-milestone": "",
                f"{prefix}-stall_days": "",
            },
            headers=_card_headers(pipeline),
        )
        assert response.status_code == 200
        assert _stage_names(response.text, pipeline)[4:] == ["Negotiation", "Won", "Lost"]
        bad = client.post(
            f"/admin/pipelines/{pipeline.id}/stages",
            data={
                f"{prefix}-name": "Later",
                f"{prefix}-probability": "abc",
                f"{prefix}-kind": "open",
            },
            headers=_card_headers(pipeline),
        )
        assert bad.status_code == 422 and 'value="Later"' in bad.text


class TestDeleteStage:
    def test_a_stage_without_deals_asks_then_goes(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        demo = _stage(pipeline, "Demo")
        db.session.commit()
        demo_id = demo.id
        panel = client.get(
            f"/admin/pipelines/stages/{demo_id}/delete", headers=_card_headers(pipeline)
        )
        assert "Delete Demo? No deal is in it." in panel.text and "move_to" not in panel.text
        response = client.post(
            f"/admin/pipelines/stages/{demo_id}/delete", headers=_card_headers(pipeline)
        )
        assert response.status_code == 200
        assert response.headers["HX-Trigger"] and "Demo" not in _stage_names(
            response.text, pipeline
        )
        db.session.expire_all()
        assert db.session.get(Stage, demo_id) is None

    def test_a_stage_with_deals_moves_them_first(self, admin):
        client, me = admin
        pipeline = make_pipeline()
        demo, proposal = _stage(pipeline, "Demo"), _stage(pipeline, "Proposal review")
        deals = [make_deal(pipeline, demo) for _ in range(2)]
        db.session.commit()
        demo_id = demo.id
        panel = client.get(
            f"/admin/pipelines/stages/{demo.id}/delete", headers=_card_headers(pipeline)
        )
        assert "Demo holds 2 deals." in panel.text
        select_html = re.search(r'<select[^>]*name="move_to".*?</select>', panel.text, re.S).group(
            0
        )
        options = re.findall(r'<option value="(\d*)">([^<]+)</option>', select_html)
        assert [name for _v, name in options] == [
            "Choose a stage",
            "Prospection",
            "First contact",
            "Proposal review",
        ]

        refused = client.post(
            f"/admin/pipelines/stages/{demo.id}/delete",
            data={"move_to": ""},
            headers=_card_headers(pipeline),
        )
        assert refused.status_code == 422 and "Choose where its deals go." in refused.text
        wrong_kind = client.post(
            f"/admin/pipelines/stages/{demo.id}/delete",
            data={"move_to": str(_stage(pipeline, "Won").id)},
            headers=_card_headers(pipeline),
        )
        assert wrong_kind.status_code == 422 and "same kind" in wrong_kind.text
        db.session.expire_all()
        assert db.session.get(Stage, demo.id) is not None

        response = client.post(
            f"/admin/pipelines/stages/{demo.id}/delete",
            data={"move_to": str(proposal.id)},
            headers=_card_headers(pipeline),
        )
        assert response.status_code == 200
        assert "2 deals moved to Proposal review" in response.headers["HX-Trigger"]
        db.session.expire_all()
        assert db.session.get(Stage, demo_id) is None
        for deal in deals:
            assert db.session.get(Deal, deal.id).stage_id == proposal.id
            moves = db.session.scalars(
                select(DealStageHistory).where(
                    DealStageHistory.deal_id == deal.id, DealStageHistory.to_stage_id == proposal.id
                )
            ).all()
            assert [m.changed_by_id for m in moves] == [me.id]

    def test_the_last_won_stage_cannot_be_deleted(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        won = _stage(pipeline, "Won")
        db.session.commit()
        panel = client.get(
            f"/admin/pipelines/stages/{won.id}/delete", headers=_card_headers(pipeline)
        )
        assert "Won cannot be deleted: A pipeline needs at least one won stage." in panel.text
        assert "Delete the stage" not in panel.text
        response = client.post(
            f"/admin/pipelines/stages/{won.id}/delete", headers=_card_headers(pipeline)
        )
        assert response.status_code == 422
        db.session.expire_all()
        assert db.session.get(Stage, won.id) is not None

    def test_without_htmx_the_page_carries_the_question(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        demo = _stage(pipeline, "Demo")
        make_deal(pipeline, demo)
        db.session.commit()
        page = client.get(f"/admin/pipelines/stages/{demo.id}/delete")
        assert "<html" in page.text and "Demo holds 1 deal." in page.text
        done = client.post(
            f"/admin/pipelines/stages/{demo.id}/delete",
            data={"move_to": str(_stage(pipeline, "Prospection").id)},
        )
        assert done.status_code == 303


class TestPipelines:
    def test_create_with_starter_stages_or_a_copy(self, admin):
        client, _ = admin
        source = make_pipeline("New business")
        db.session.commit()
        response = client.post(
            "/admin/pipelines",
            data={"name": "Partners", "copy_from": ""},
            headers=htmx_headers("div#pipelines-panel"),
        )
        assert response.status_code == 200 and "<html" not in response.text
        created = db.session.scalars(select(Pipeline).where(Pipeline.name == "Partners")).one()
        assert [(s.name, s.kind) for s in created.stages] == [
            ("In progress", "open"),
            ("Won", "won"),
            ("Lost", "lost"),
        ]
        client.post(
            "/admin/pipelines",
            data={"name": "Renewals", "copy_from": str(source.id)},
            headers=htmx_headers("div#pipelines-panel"),
        )
        copy = db.session.scalars(select(Pipeline).where(Pipeline.name == "Renewals")).one()
        assert len(copy.stages) == 6

    def test_create_refusals(self, admin):
        client, _ = admin
        make_pipeline("Renewals")
        db.session.commit()
        response = client.post(
            "/admin/pipelines",
            data={"name": "RENEWALS", "copy_from": ""},
            headers=htmx_headers("div#pipelines-panel"),
        )
        assert response.status_code == 422
        assert (
            "Another pipeline already has this name." in response.text
            and 'value="RENEWALS"' in response.text
        )
        unknown = client.post(
            "/admin/pipelines",
            data={"name": "X", "copy_from": "999999"},
            headers=htmx_headers("div#pipelines-panel"),
        )
        assert unknown.status_code == 422

    def test_rename_and_set_default(self, admin):
        client, _ = admin
        a, b = make_pipeline("A"), make_pipeline("B")
        a.is_default = True
        db.session.commit()
        response = client.post(
            f"/admin/pipelines/{b.id}",
            data={f"p{b.id}-name": "Key accounts"},
            headers=_card_headers(b),
        )
        assert response.status_code == 200 and 'value="Key accounts"' in response.text
        taken = client.post(
            f"/admin/pipelines/{b.id}", data={f"p{b.id}-name": "a"}, headers=_card_headers(b)
        )
        assert taken.status_code == 422 and 'value="a"' in taken.text
        response = client.post(
            f"/admin/pipelines/{b.id}/default", headers=htmx_headers("div#pipelines-panel")
        )
        assert response.status_code == 200 and response.text.count("Default pipeline") == 1
        db.session.expire_all()
        assert (
            db.session.get(Pipeline, a.id).is_default,
            db.session.get(Pipeline, b.id).is_default,
        ) == (False, True)
        assert db.session.get(Pipeline, b.id).name == "Key accounts"

    def test_cancel_gets_the_card_back(self, admin):
        client, _ = admin
        pipeline = make_pipeline()
        db.session.commit()
        response = client.get(
            f"/admin/pipelines/{pipeline.id}/card", headers=_card_headers(pipeline)
        )
        assert response.status_code == 200 and "stage-delete" not in response.text
