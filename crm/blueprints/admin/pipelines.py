"""Administration of pipelines and their stages.

One page lists every pipeline as a card of stages. Each change posts to the server
and answers with the card it changed (or the whole list, for a new pipeline or a new
default); a refused change answers 422 with the card, the inputs as typed and the
reason beside them. The rules themselves live in crm.services.pipelines.
"""

from dataclasses import dataclass, field

from flask import abort, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext, pgettext
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.exc import IntegrityError
from wtforms import IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from crm import htmx as hx
from crm.blueprints.admin.routes import bp
from crm.extensions import db
from crm.form_helpers import choices
from crm.models import Pipeline, Stage
from crm.permissions import requires
from crm.services import pipelines as svc
from crm.services.pipelines import PipelineError, StageValues


def kind_labels() -> dict[str, str]:
    """The kinds of stage, in the reader's language ("Open" here is not the verb)."""
    return {
        "open": pgettext("stage kind", "Open"),
        "won": pgettext("stage kind", "Won"),
        "lost": pgettext("stage kind", "Lost"),
    }


MILESTONE_LABELS = {"meeting": _l("Meeting"), "proposal": _l("Proposal")}


# ---- forms ---------------------------------------------------------------------


class PipelineForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=svc.PIPELINE_NAME_MAX)])
    copy_from = SelectField(_l("Stages"), coerce=str, validate_choice=True)


class RenameForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=svc.PIPELINE_NAME_MAX)])


class StageForm(FlaskForm):
    name = StringField(_l("Stage"), validators=[DataRequired(), Length(max=svc.STAGE_NAME_MAX)])
    probability = IntegerField(
        _l("Probability"),
        validators=[NumberRange(0, 100, message=_l("Between 0 and 100."))],
        default=10,
    )
    kind = SelectField(_l("Kind"), default="open")
    milestone = SelectField(
        _l("Milestone"),
        choices=choices([("", _l("None")), *MILESTONE_LABELS.items()]),
        validators=[Optional()],
        default="",
    )
    stall_days = IntegerField(
        _l("Stalled after (days)"),
        validators=[
            Optional(),
            NumberRange(
                1,
                svc.STALL_DAYS_MAX,
                message=_l("Between 1 and %(max)d days.", max=svc.STALL_DAYS_MAX),
            ),
        ],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind.choices = choices(kind_labels().items())

    def values(self) -> StageValues:
        return StageValues(
            name=self.name.data or "",
            probability=self.probability.data if self.probability.data is not None else -1,
            kind=self.kind.data,
            milestone=self.milestone.data or None,
            stall_days=self.stall_days.data,
        )


class DeleteStageForm(FlaskForm):
    move_to = SelectField(_l("Move its deals to"), coerce=str, validate_choice=False)


def _stage_form(stage: Stage, formdata=None) -> StageForm:
    form = StageForm(formdata=formdata, prefix=f"s{stage.id}", obj=None if formdata else stage)
    if formdata is None:
        form.milestone.data = stage.milestone or ""
    return form


def _add_form(pipeline: Pipeline, formdata=None) -> StageForm:
    return StageForm(formdata=formdata, prefix=f"new{pipeline.id}")


def _rename_form(pipeline: Pipeline, formdata=None) -> RenameForm:
    return RenameForm(
        formdata=formdata, prefix=f"p{pipeline.id}", obj=None if formdata else pipeline
    )


def _pipeline_form(all_pipelines, formdata=None) -> PipelineForm:
    form = PipelineForm(formdata=formdata)
    form.copy_from.choices = choices(
        [("", _("In progress, Won, Lost"))]
        + [(str(p.id), _("Copy of %(name)s", name=p.name)) for p in all_pipelines]
    )
    return form


# ---- what a card shows -----------------------------------------------------------


@dataclass
class Card:
    """One pipeline on the page, with whatever form state it is answered with."""

    pipeline: Pipeline
    counts: dict[int, int]
    rename_form: RenameForm
    add_form: StageForm
    stage_forms: dict[int, StageForm] = field(default_factory=dict)
    message: str | None = None  # a refusal about the pipeline as a whole
    deleting: Stage | None = None
    delete_form: DeleteStageForm | None = None
    delete_problem: str | None = None  # why the stage being deleted cannot go
    focus: tuple[int, str] | None = None  # (stage id, "up" or "down") after a move

    @property
    def deal_total(self) -> int:
        return sum(self.counts.get(s.id, 0) for s in self.pipeline.stages)

    def form_for(self, stage: Stage) -> StageForm:
        if stage.id not in self.stage_forms:
            self.stage_forms[stage.id] = _stage_form(stage)
        return self.stage_forms[stage.id]

    def targets(self) -> list[Stage]:
        return svc.move_targets(self.deleting) if self.deleting else []


def _card(pipeline: Pipeline, counts: dict[int, int] | None = None, **state) -> Card:
    if counts is None:
        counts = svc.deal_counts([pipeline.id])
    state.setdefault("rename_form", _rename_form(pipeline))
    state.setdefault("add_form", _add_form(pipeline))
    return Card(pipeline=pipeline, counts=counts, **state)


def _page(status: int = 200, replace: Card | None = None, pipeline_form=None):
    all_pipelines = svc.all_pipelines()
    counts = svc.deal_counts()
    cards = [
        replace if replace is not None and p.id == replace.pipeline.id else _card(p, counts)
        for p in all_pipelines
    ]
    return hx.render(
        "admin/pipelines.html",
        {"pipelines-panel": "panel"},
        status=status,
        cards=cards,
        pipeline_form=pipeline_form or _pipeline_form(all_pipelines),
    )


def _answer_card(card: Card, status: int = 200):
    """The changed card under htmx; the whole page otherwise (a redirect when all went well)."""
    if not hx.is_htmx():
        if status == 200:
            return hx.location(url_for("admin.pipelines") + f"#pipeline-{card.pipeline.id}")
        return _page(status, replace=card)
    return hx.render_fragment("admin/_pipeline_card.html", "card", status=status, card=card)


def _message(error: PipelineError) -> str:
    messages = {
        "name_required": lambda: _("Give it a name."),
        "name_too_long": lambda: _(
            "At most %(count)d characters.", count=error.params.get("count", 0)
        ),
        "pipeline_name_taken": lambda: _("Another pipeline already has this name."),
        "stage_name_taken": lambda: _("Another stage of this pipeline already has this name."),
        "probability_range": lambda: _("Between 0 and 100."),
        "kind_unknown": lambda: _("Unknown kind."),
        "milestone_unknown": lambda: _("Unknown milestone."),
        "milestone_taken": lambda: _(
            "%(stage)s already stands for this milestone.", stage=error.params.get("stage", "")
        ),
        "stall_days_range": lambda: _(
            "Between 1 and %(max)d days.", max=error.params.get("max", svc.STALL_DAYS_MAX)
        ),
        "kind_has_deals": lambda: _(
            "This stage holds deals: move them to another stage before changing its kind."
        ),
        "no_open": lambda: _("A pipeline needs at least one open stage."),
        "no_won": lambda: _("A pipeline needs at least one won stage."),
        "no_lost": lambda: _("A pipeline needs at least one lost stage."),
        "first_not_open": lambda: _("The first stage must be an open one: new deals start there."),
        "order_mismatch": lambda: _("The stages changed meanwhile. Reload the page."),
        "move_to_required": lambda: _("Choose where its deals go."),
        "move_to_invalid": lambda: _("Choose another stage of this pipeline."),
        "move_to_kind": lambda: _("Deals can only move to a stage of the same kind."),
    }
    return messages[error.code]()


def _pipeline_or_404(pipeline_id: int) -> Pipeline:
    return db.get_or_404(Pipeline, pipeline_id)


def _stage_or_404(stage_id: int) -> Stage:
    return db.get_or_404(Stage, stage_id)


# ---- routes ----------------------------------------------------------------------


@bp.route("/pipelines")
@requires("pipelines.manage")
def pipelines():
    return _page()


@bp.route("/pipelines/<int:pipeline_id>/card")
@requires("pipelines.manage")
def pipeline_card(pipeline_id: int):
    """One pipeline's card as it is now (what "Cancel" goes back to)."""
    card = _card(_pipeline_or_404(pipeline_id))
    if not hx.is_htmx():
        return hx.location(url_for("admin.pipelines") + f"#pipeline-{pipeline_id}")
    return _answer_card(card)


@bp.route("/pipelines", methods=["POST"])
@requires("pipelines.manage")
def create_pipeline():
    form = _pipeline_form(svc.all_pipelines(), request.form)
    if form.validate_on_submit():
        copy_from = (
            db.session.get(Pipeline, int(form.copy_from.data)) if form.copy_from.data else None
        )
        starter = [
            StageValues(_("In progress"), 20, "open", None, 30),
            StageValues(kind_labels()["won"], 100, "won"),
            StageValues(kind_labels()["lost"], 0, "lost"),
        ]
        try:
            pipeline = svc.create_pipeline(
                current_user, form.name.data, copy_from=copy_from, starter_stages=starter
            )
            db.session.commit()
        except PipelineError as error:
            db.session.rollback()
            form.name.errors.append(_message(error))
        except IntegrityError:  # the same name saved by another admin a moment ago
            db.session.rollback()
            form.name.errors.append(_message(PipelineError("pipeline_name_taken")))
        else:
            hx.toast(_("Pipeline %(name)s created.", name=pipeline.name))
            if not hx.is_htmx():
                return hx.location(url_for("admin.pipelines") + f"#pipeline-{pipeline.id}")
            return _page()
    return _page(422, pipeline_form=form)


@bp.route("/pipelines/<int:pipeline_id>", methods=["POST"])
@requires("pipelines.manage")
def rename_pipeline(pipeline_id: int):
    pipeline = _pipeline_or_404(pipeline_id)
    form = _rename_form(pipeline, request.form)
    if form.validate_on_submit():
        try:
            svc.rename_pipeline(current_user, pipeline, form.name.data)
            db.session.commit()
        except PipelineError as error:
            db.session.rollback()
            form.name.errors.append(_message(error))
        except IntegrityError:
            db.session.rollback()
            form.name.errors.append(_message(PipelineError("pipeline_name_taken")))
        else:
            hx.toast(_("Pipeline renamed to %(name)s.", name=pipeline.name))
            return _answer_card(_card(pipeline))
    return _answer_card(_card(pipeline, rename_form=form), 422)


@bp.route("/pipelines/<int:pipeline_id>/default", methods=["POST"])
@requires("pipelines.manage")
def make_default_pipeline(pipeline_id: int):
    pipeline = _pipeline_or_404(pipeline_id)
    svc.set_default(current_user, pipeline)
    db.session.commit()
    hx.toast(_("%(name)s is now the default pipeline.", name=pipeline.name))
    if not hx.is_htmx():
        return hx.location(url_for("admin.pipelines"))
    return _page()


@bp.route("/pipelines/<int:pipeline_id>/stages", methods=["POST"])
@requires("pipelines.manage")
def add_stage(pipeline_id: int):
    pipeline = _pipeline_or_404(pipeline_id)
    form = _add_form(pipeline, request.form)
    message = None
    if form.validate_on_submit():
        try:
            stage = svc.add_stage(current_user, pipeline, form.values())
            db.session.flush()
        except PipelineError as error:
            db.session.rollback()
            message = _place_error(form, error)
        else:
            db.session.commit()
            hx.toast(_("Stage %(name)s added.", name=stage.name))
            return _answer_card(_card(pipeline))
    return _answer_card(_card(pipeline, add_form=form, message=message), 422)


def _place_error(form: FlaskForm, error: PipelineError) -> str | None:
    """Put the refusal beside the field at fault; one about the whole pipeline is returned
    for the card to show."""
    target = getattr(form, error.field, None) if error.field else None
    if target is None:
        return _message(error)
    target.errors = [*target.errors, _message(error)]
    return None


@bp.route("/pipelines/stages/<int:stage_id>", methods=["POST"])
@requires("pipelines.manage")
def update_stage(stage_id: int):
    stage = _stage_or_404(stage_id)
    pipeline = stage.pipeline
    form = _stage_form(stage, request.form)
    message = None
    if form.validate_on_submit():
        try:
            svc.update_stage(current_user, stage, form.values())
        except PipelineError as error:
            db.session.rollback()
            message = _place_error(form, error)
        else:
            db.session.commit()
            hx.toast(_("Stage %(name)s saved.", name=stage.name))
            return _answer_card(_card(pipeline))
    return _answer_card(_card(pipeline, stage_forms={stage.id: form}, message=message), 422)


@bp.route("/pipelines/stages/<int:stage_id>/move", methods=["POST"])
@requires("pipelines.manage")
def move_stage(stage_id: int):
    stage = _stage_or_404(stage_id)
    pipeline = stage.pipeline
    direction = request.form.get("direction", "")
    if direction not in ("up", "down"):
        abort(400)
    try:
        svc.move_stage(current_user, stage, -1 if direction == "up" else 1)
    except PipelineError as error:
        db.session.rollback()
        return _answer_card(
            _card(pipeline, message=_message(error), focus=(stage.id, direction)), 422
        )
    db.session.commit()
    return _answer_card(_card(pipeline, focus=(stage.id, direction)))


def _delete_card(stage: Stage, form: DeleteStageForm | None = None, **state) -> Card:
    form = form or DeleteStageForm(formdata=None)
    form.move_to.choices = choices(
        [("", _("Choose a stage"))] + [(str(s.id), s.name) for s in svc.move_targets(stage)]
    )
    problem = svc.deletion_problem(stage)
    return _card(
        stage.pipeline,
        deleting=stage,
        delete_form=form,
        delete_problem=_message(PipelineError(problem)) if problem else None,
        **state,
    )


@bp.route("/pipelines/stages/<int:stage_id>/delete")
@requires("pipelines.manage")
def confirm_delete_stage(stage_id: int):
    """Ask before deleting: where its deals go, or why it cannot go."""
    card = _delete_card(_stage_or_404(stage_id))
    if not hx.is_htmx():
        return _page(replace=card)
    return _answer_card(card)


@bp.route("/pipelines/stages/<int:stage_id>/delete", methods=["POST"])
@requires("pipelines.manage")
def delete_stage(stage_id: int):
    stage = _stage_or_404(stage_id)
    pipeline = stage.pipeline
    name = stage.name
    form = DeleteStageForm()
    move_to = None
    if (form.move_to.data or "").isdigit():
        move_to = db.session.get(Stage, int(form.move_to.data))
    try:
        moved = svc.delete_stage(current_user, stage, move_to=move_to)
        db.session.commit()
    except PipelineError as error:
        db.session.rollback()
        stage = _stage_or_404(stage_id)
        form.move_to.errors = [_message(error)] if error.field else []
        card = _delete_card(stage, form)
        if not error.field and not card.delete_problem:
            card.message = _message(error)
        return _answer_card(card, 422)
    except IntegrityError:
        # A deal entered the stage while it was being deleted: nothing was changed.
        db.session.rollback()
        abort(409)
    if moved:
        hx.toast(
            ngettext(
                "Stage %(name)s deleted; %(num)d deal moved to %(target)s.",
                "Stage %(name)s deleted; %(num)d deals moved to %(target)s.",
                moved,
                name=name,
                target=move_to.name,
            )
        )
    else:
        hx.toast(_("Stage %(name)s deleted.", name=name))
    return _answer_card(_card(pipeline))
