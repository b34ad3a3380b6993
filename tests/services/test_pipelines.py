"""Pipeline rules: order, kinds, milestones, defaults, and deleting a stage without losing a deal."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.extensions import db
from crm.models import Activity, Deal, DealStageHistory, Pipeline, Stage
from crm.models.types import utcnow
from crm.services import pipelines as svc
from crm.services.pipelines import PipelineError, StageValues
from tests.factories import make_contact, make_deal, make_pipeline, make_user


@pytest.fixture
def admin(ctx):
    return make_user(role="admin")


def _names(pipeline: Pipeline) -> list[str]:
    db.session.expire(pipeline, ["stages"])
    return [s.name for s in pipeline.stages]


def _stage(pipeline: Pipeline, name: str) -> Stage:
    return next(s for s in pipeline.stages if s.name == name)


def _error(call, *args, **kwargs) -> PipelineError:
    """The error `call` raises; what the test set up before is kept, what the call did is not."""
    db.session.commit()
    with pytest.raises(PipelineError) as error:
        call(*args, **kwargs)
    db.session.rollback()
    return error.value


DEFAULT = ["Prospection", "First contact", "Demo", "Proposal review", "Won", "Lost"]


class TestOrder:
    def test_move_up_and_down_saves_positions(self, admin):
        pipeline = make_pipeline()
        assert svc.move_stage(admin, _stage(pipeline, "Demo"), -1)
        db.session.commit()
        assert _names(pipeline) == [
            "Prospection",
            "Demo",
            "First contact",
            "Proposal review",
            "Won",
            "Lost",
        ]
        assert [s.position for s in pipeline.stages] == list(range(6))
        assert svc.move_stage(admin, _stage(pipeline, "Demo"), +1)
        assert not svc.move_stage(admin, _stage(pipeline, "Lost"), +1)  # already last
        assert not svc.move_stage(admin, _stage(pipeline, "Prospection"), -1)
        db.session.commit()
        assert _names(pipeline) == DEFAULT

    def test_the_first_stage_stays_open(self, admin):
        pipeline = make_pipeline()
        won_first = [_stage(pipeline, "Won").id] + [
            s.id for s in pipeline.stages if s.name != "Won"
        ]
        assert _error(svc.reorder_stages, admin, pipeline, won_first).code == "first_not_open"
        svc.reorder_stages(
            admin,
            pipeline,
            [
                _stage(pipeline, n).id
                for n in ["Prospection", "Won", "First contact", "Demo", "Proposal review", "Lost"]
            ],
        )
        assert _error(svc.move_stage, admin, _stage(pipeline, "Won"), -1).code == "first_not_open"
        assert (
            _error(svc.move_stage, admin, _stage(pipeline, "Prospection"), +1).code
            == "first_not_open"
        )

    def test_reorder_names_every_stage_once(self, admin):
        pipeline = make_pipeline()
        ids = [s.id for s in pipeline.stages]
        assert _error(svc.reorder_stages, admin, pipeline, ids[:-1]).code == "order_mismatch"
        svc.reorder_stages(admin, pipeline, [ids[1], ids[0], *ids[2:]])
        db.session.commit()
        assert _names(pipeline)[:2] == ["First contact", "Prospection"]


class TestStages:
    def test_an_open_stage_is_added_before_won_and_lost(self, admin):
        pipeline = make_pipeline()
        svc.add_stage(admin, pipeline, StageValues("Negotiation", 80, "open", None, 10))
        svc.add_stage(admin, pipeline, StageValues("Lost to a rival", 0, "lost"))
        db.session.commit()
        assert _names(pipeline) == [*DEFAULT[:4], "Negotiation", "Won", "Lost", "Lost to a rival"]
        assert [s.position for s in pipeline.stages] == list(range(8))

    def test_update_and_closed_stages_drop_stall_days_and_milestone(self, admin):
        pipeline = make_pipeline()
        stage = _stage(pipeline, "Won")
        svc.update_stage(admin, stage, StageValues("Signed", 100, "won", "proposal", 12))
        db.session.commit()
        assert (stage.name, stage.milestone, stage.stall_days) == ("Signed", None, None)

    @pytest.mark.parametrize(
        ("values", "code", "field"),
        [
            (StageValues("", 10), "name_required", "name"),
            (StageValues("x" * 81, 10), "name_too_long", "name"),
            (StageValues("demo", 10), "stage_name_taken", "name"),  # case does not matter
            (StageValues("New", 101), "probability_range", "probability"),
            (StageValues("New", -1), "probability_range", "probability"),
            (StageValues("New", 10, "maybe"), "kind_unknown", "kind"),
            (StageValues("New", 10, "open", "meeting"), "milestone_taken", "milestone"),
            (StageValues("New", 10, "open", None, 0), "stall_days_range", "stall_days"),
        ],
    )
    def test_values_are_checked(self, admin, values, code, field):
        pipeline = make_pipeline()
        error = _error(svc.add_stage, admin, pipeline, values)
        assert (error.code, error.field) == (code, field)
        if code == "milestone_taken":
            assert error.params == {"stage": "Demo"}

    def test_the_last_open_won_or_lost_stage_keeps_its_kind(self, admin):
        pipeline = make_pipeline("Small")
        for name in ("First contact", "Demo", "Proposal review"):
            svc.delete_stage(admin, _stage(pipeline, name))
        db.session.commit()
        assert _names(pipeline) == ["Prospection", "Won", "Lost"]
        assert (
            _error(
                svc.update_stage, admin, _stage(pipeline, "Won"), StageValues("Won", 100, "lost")
            ).code
            == "no_won"
        )
        assert (
            _error(
                svc.update_stage, admin, _stage(pipeline, "Prospection"), StageValues("P", 0, "won")
            ).code
            == "no_open"
        )

    def test_a_stage_with_deals_keeps_its_kind(self, admin):
        pipeline = make_pipeline()
        make_deal(pipeline, _stage(pipeline, "Demo"))
        error = _error(
            svc.update_stage, admin, _stage(pipeline, "Demo"), StageValues("Demo", 40, "won")
        )
        assert (error.code, error.field) == ("kind_has_deals", "kind")
        svc.update_stage(
            admin, _stage(pipeline, "Demo"), StageValues("Live demo", 45, "open", "meeting", 30)
        )
        db.session.commit()
        assert _stage(pipeline, "Live demo").probability == 45


class TestDelete:
    def test_a_stage_without_deals_goes_at_once(self, admin):
        pipeline = make_pipeline()
        other = make_pipeline()
        make_deal(other, _stage(other, "Demo"))  # same name, another pipeline
        assert svc.delete_stage(admin, _stage(pipeline, "Demo")) == 0
        db.session.commit()
        assert _names(pipeline) == [
            "Prospection",
            "First contact",
            "Proposal review",
            "Won",
            "Lost",
        ]
        assert [s.position for s in pipeline.stages] == list(range(5))

    def test_a_stage_with_deals_asks_where_they_go(self, admin):
        pipeline = make_pipeline()
        make_deal(pipeline, _stage(pipeline, "Demo"))
        error = _error(svc.delete_stage, admin, _stage(pipeline, "Demo"))
        assert (error.code, error.field, error.params) == (
            "move_to_required",
            "move_to",
            {"count": 1},
        )
        assert "Demo" in _names(pipeline)

    def test_deals_move_with_history_and_timeline_then_the_stage_goes(self, admin):
        pipeline = make_pipeline()
        demo, proposal = _stage(pipeline, "Demo"), _stage(pipeline, "Proposal review")
        contact = make_contact()
        owner = make_user()
        entered = utcnow() - timedelta(days=40)
        deals = [
            make_deal(
                pipeline,
                demo,
                owner=owner,
                contact=contact,
                company=contact.company,
                stage_entered_at=entered,
            )
            for _ in range(3)
        ]
        untouched = make_deal(pipeline, proposal)
        db.session.commit()
        versions = {d.id: d.version_id for d in deals}
        assert svc.delete_stage(admin, demo, move_to=proposal) == 3
        db.session.commit()
        db.session.expire_all()

        assert db.session.get(Stage, demo.id) is None
        for deal in deals:
            deal = db.session.get(Deal, deal.id)
            assert deal.stage_id == proposal.id
            assert deal.version_id == versions[deal.id] + 1
            assert deal.updated_by_id == admin.id
            assert abs(deal.stage_entered_at - entered) < timedelta(
                seconds=1
            )  # the stall clock runs on
            history = db.session.scalars(
                select(DealStageHistory)
                .where(DealStageHistory.deal_id == deal.id)
                .order_by(DealStageHistory.id)
            ).all()
            # The first row pointed at the deleted stage, the move's row came from it: both now NULL.
            assert [(h.from_stage_id, h.to_stage_id) for h in history] == [
                (None, None),
                (None, proposal.id),
            ]
            assert history[-1].changed_by_id == admin.id
            entry = db.session.scalars(select(Activity).where(Activity.deal_id == deal.id)).one()
            assert (entry.kind, entry.author_id, entry.contact_id) == (
                "system",
                admin.id,
                contact.id,
            )
            assert entry.data == {
                "event": "deal_stage",
                "deal": deal.title,
                "from": "Demo",
                "to": "Proposal review",
                "cause": "stage_deleted",
            }
        assert db.session.get(Deal, untouched.id).version_id == 1
        assert db.session.scalar(select(db.func.count()).select_from(Deal)) == 4

    def test_a_deal_read_before_the_move_is_not_saved_over_it(self, admin):
        from sqlalchemy.orm import Session
        from sqlalchemy.orm.exc import StaleDataError

        pipeline = make_pipeline()
        demo, proposal = _stage(pipeline, "Demo"), _stage(pipeline, "Proposal review")
        deal_id = make_deal(pipeline, demo).id
        db.session.commit()
        with Session(db.engine, expire_on_commit=False) as other:
            stale = other.get(Deal, deal_id)  # someone opened the deal before the admin's change
            other.commit()
            svc.delete_stage(admin, demo, move_to=proposal)
            db.session.commit()
            stale.title = "Saved on top"
            with pytest.raises(StaleDataError):
                other.commit()
        assert db.session.get(Deal, deal_id).stage_id == proposal.id

    @pytest.mark.parametrize(
        ("target", "code"),
        [("Won", "move_to_kind"), ("Demo", "move_to_invalid"), ("other", "move_to_invalid")],
    )
    def test_deals_only_go_to_another_stage_of_the_same_pipeline_and_kind(
        self, admin, target, code
    ):
        pipeline = make_pipeline()
        other = make_pipeline()
        make_deal(pipeline, _stage(pipeline, "Demo"))
        to = _stage(other, "Demo") if target == "other" else _stage(pipeline, target)
        assert _error(svc.delete_stage, admin, _stage(pipeline, "Demo"), move_to=to).code == code
        assert (
            db.session.scalar(
                select(db.func.count())
                .select_from(Deal)
                .where(Deal.stage_id == _stage(pipeline, "Demo").id)
            )
            == 1
        )

    def test_the_last_won_or_lost_stage_is_never_deleted(self, admin):
        pipeline = make_pipeline()
        assert svc.deletion_problem(_stage(pipeline, "Won")) == "no_won"
        assert _error(svc.delete_stage, admin, _stage(pipeline, "Lost")).code == "no_lost"
        assert svc.deletion_problem(_stage(pipeline, "Demo")) is None

    def test_deleting_the_first_stage_keeps_an_open_one_first(self, admin):
        pipeline = make_pipeline()
        svc.reorder_stages(
            admin,
            pipeline,
            [
                _stage(pipeline, n).id
                for n in ["Prospection", "Won", "Lost", "First contact", "Demo", "Proposal review"]
            ],
        )
        assert svc.deletion_problem(_stage(pipeline, "Prospection")) == "first_not_open"

    def test_closed_deals_move_between_lost_stages_keeping_their_reason(self, admin):
        pipeline = make_pipeline()
        lost = _stage(pipeline, "Lost")
        svc.add_stage(admin, pipeline, StageValues("No budget", 0, "lost"))
        closed_at = utcnow() - timedelta(days=3)
        deal = make_deal(pipeline, lost, lost_reason="Too expensive", closed_at=closed_at)
        db.session.commit()
        svc.delete_stage(admin, lost, move_to=_stage(pipeline, "No budget"))
        db.session.commit()
        db.session.expire_all()
        deal = db.session.get(Deal, deal.id)
        assert (deal.stage.name, deal.lost_reason) == ("No budget", "Too expensive")
        assert abs(deal.closed_at - closed_at) < timedelta(seconds=1)


class TestPipelines:
    def test_create_copies_stages_and_the_first_is_default(self, admin):
        first = svc.create_pipeline(
            admin,
            "New business",
            starter_stages=[
                StageValues("Open", 20),
                StageValues("Won", 100, "won"),
                StageValues("Lost", 0, "lost"),
            ],
        )
        db.session.commit()
        assert first.is_default and [s.position for s in first.stages] == [0, 1, 2]
        copy = svc.create_pipeline(admin, "Renewals", copy_from=make_pipeline())
        db.session.commit()
        assert not copy.is_default and copy.position == first.position + 1
        assert _names(copy) == DEFAULT
        assert _stage(copy, "Demo").milestone == "meeting"

    def test_names_are_unique_whatever_their_case(self, admin):
        make_pipeline("Renewals")
        assert (
            _error(svc.create_pipeline, admin, "renewals", copy_from=make_pipeline()).code
            == "pipeline_name_taken"
        )
        other = make_pipeline("Other")
        assert _error(svc.rename_pipeline, admin, other, " RENEWALS ").code == "pipeline_name_taken"
        svc.rename_pipeline(admin, other, "  Key   accounts ")
        assert other.name == "Key accounts"

    def test_a_pipeline_without_won_stage_is_refused(self, admin):
        error = _error(
            svc.create_pipeline,
            admin,
            "Bad",
            starter_stages=[StageValues("Open", 20), StageValues("Lost", 0, "lost")],
        )
        assert error.code == "no_won"

    def test_one_default_at_a_time(self, admin):
        a, b = make_pipeline(), make_pipeline()
        a.is_default = True
        db.session.commit()
        svc.set_default(admin, b)
        db.session.commit()
        db.session.expire_all()
        assert [p.is_default for p in (a, b)] == [False, True]
        from crm.services.deals import default_pipeline

        assert default_pipeline() == b

    def test_reading_counts_deals_per_stage_in_one_query(self, admin):
        pipeline = make_pipeline()
        make_deal(pipeline, _stage(pipeline, "Demo"))
        make_deal(pipeline, _stage(pipeline, "Demo"))
        make_deal(pipeline, _stage(pipeline, "Won"))
        db.session.commit()
        assert svc.deal_counts() == {_stage(pipeline, "Demo").id: 2, _stage(pipeline, "Won").id: 1}
        assert [p.id for p in svc.all_pipelines()] == [pipeline.id]
