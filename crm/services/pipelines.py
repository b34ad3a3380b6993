"""Editing pipelines and their stages without ever losing a deal.

Rules kept here (the admin page only parses and renders):

- every pipeline keeps at least one open stage, one won stage and one lost stage,
  and its first stage is open: new deals start there;
- a stage that holds deals keeps its kind (open, won or lost): changing it would
  close or reopen those deals behind their owners' backs;
- a stage is deleted only once its deals are moved to another stage of the same
  pipeline and of the same kind, in the same transaction, each move written to
  DealStageHistory and to the deal's timeline with the admin as author; a moved
  deal keeps its stage_entered_at, so a stalled deal stays flagged;
- at most one stage of a pipeline stands for each milestone (meeting, proposal);
- exactly one pipeline is the default one.

Every change locks its pipeline row first (SELECT ... FOR UPDATE on PostgreSQL),
so that two admins editing the same pipeline at once cannot together break a rule
that each of their changes kept. Nothing here commits: the caller does.
"""

from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.models import Activity, Deal, DealStageHistory, Pipeline, Stage, User
from crm.models.deals import MILESTONES, STAGE_KINDS
from crm.models.types import utcnow

PIPELINE_NAME_MAX, STAGE_NAME_MAX = 120, 80
STALL_DAYS_MAX = 3650


class PipelineError(ValueError):
    """A change refused by a rule: `code` says which, `field` which input is at fault
    (None for the pipeline as a whole), `params` what the message needs."""

    def __init__(self, code: str, field: str | None = None, **params):
        super().__init__(code)
        self.code = code
        self.field = field
        self.params = params


@dataclass(frozen=True)
class StageValues:
    """What an admin sets on a stage."""

    name: str
    probability: int
    kind: str = "open"
    milestone: str | None = None
    stall_days: int | None = None


# ---- reading -----------------------------------------------------------------


def all_pipelines() -> list[Pipeline]:
    """Every pipeline with its stages in order: two queries."""
    query = (
        select(Pipeline)
        .options(selectinload(Pipeline.stages))
        .order_by(Pipeline.position, Pipeline.id)
    )
    return list(db.session.scalars(query))


def deal_counts(pipeline_ids: list[int] | None = None) -> dict[int, int]:
    """{stage id: number of deals in it}, open and closed alike: one query."""
    query = select(Deal.stage_id, func.count()).group_by(Deal.stage_id)
    if pipeline_ids is not None:
        query = query.where(Deal.pipeline_id.in_(pipeline_ids))
    return dict(db.session.execute(query).all())


def deals_in(stage: Stage) -> int:
    return db.session.scalar(select(func.count()).where(Deal.stage_id == stage.id)) or 0


def move_targets(stage: Stage) -> list[Stage]:
    """Where the deals of `stage` may go: the other stages of its pipeline, of its kind."""
    return [s for s in stage.pipeline.stages if s.id != stage.id and s.kind == stage.kind]


# ---- checks --------------------------------------------------------------------


def _lock(pipeline: Pipeline) -> Pipeline:
    """Take the pipeline's row lock and reload its stages as they are now."""
    query = (
        select(Pipeline)
        .where(Pipeline.id == pipeline.id)
        .options(selectinload(Pipeline.stages))
        .with_for_update(of=Pipeline)
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(query).one()


def check_stages(stages: list[Stage]) -> None:
    """The rules on a pipeline's stages, in their order; raises PipelineError."""
    _check_kinds([s.kind for s in stages])


def _check_kinds(kinds: list[str]) -> None:
    for kind in STAGE_KINDS:
        if kind not in kinds:
            raise PipelineError(f"no_{kind}")
    if kinds[0] != "open":
        raise PipelineError("first_not_open")


def _clean_name(name: str | None, limit: int) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise PipelineError("name_required", "name")
    if len(name) > limit:
        raise PipelineError("name_too_long", "name", count=limit)
    return name


def _clean_values(values: StageValues, pipeline: Pipeline, stage: Stage | None) -> StageValues:
    name = _clean_name(values.name, STAGE_NAME_MAX)
    if values.kind not in STAGE_KINDS:
        raise PipelineError("kind_unknown", "kind")
    if not isinstance(values.probability, int) or not 0 <= values.probability <= 100:
        raise PipelineError("probability_range", "probability")
    closed = values.kind != "open"
    milestone = None if closed else (values.milestone or None)
    if milestone is not None and milestone not in MILESTONES:
        raise PipelineError("milestone_unknown", "milestone")
    stall_days = None if closed else values.stall_days
    if stall_days is not None and not 1 <= stall_days <= STALL_DAYS_MAX:
        raise PipelineError("stall_days_range", "stall_days", max=STALL_DAYS_MAX)
    for other in pipeline.stages:
        if stage is not None and other.id == stage.id:
            continue
        if other.name.casefold() == name.casefold():
            raise PipelineError("stage_name_taken", "name")
        if milestone is not None and other.milestone == milestone:
            raise PipelineError("milestone_taken", "milestone", stage=other.name)
    return StageValues(name, values.probability, values.kind, milestone, stall_days)


def _renumber(pipeline: Pipeline) -> None:
    for index, stage in enumerate(pipeline.stages):
        stage.position = index


# ---- pipelines --------------------------------------------------------------------


def _pipeline_name_taken(name: str, exclude_id: int | None = None) -> bool:
    query = select(Pipeline.id).where(func.lower(Pipeline.name) == name.lower())
    if exclude_id is not None:
        query = query.where(Pipeline.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


def create_pipeline(
    actor: User,
    name: str,
    *,
    copy_from: Pipeline | None = None,
    starter_stages: list[StageValues] | None = None,
) -> Pipeline:
    """A new pipeline with the stages of `copy_from`, or else `starter_stages`.

    The first pipeline ever made is the default one.
    """
    name = _clean_name(name, PIPELINE_NAME_MAX)
    if _pipeline_name_taken(name):
        raise PipelineError("pipeline_name_taken", "name")
    if copy_from is not None:
        values = [
            StageValues(s.name, s.probability, s.kind, s.milestone, s.stall_days)
            for s in copy_from.stages
        ]
    else:
        values = list(starter_stages or [])
    pipeline = Pipeline(name=name)
    for value in values:
        stage_values = _clean_values(value, pipeline, None)
        pipeline.stages.append(Stage(**stage_values.__dict__))
    _renumber(pipeline)
    check_stages(pipeline.stages)
    last = db.session.scalar(select(func.max(Pipeline.position)))
    pipeline.position = 0 if last is None else last + 1
    pipeline.is_default = not db.session.scalar(select(func.count()).select_from(Pipeline))
    db.session.add(pipeline)
    return pipeline


def rename_pipeline(actor: User, pipeline: Pipeline, name: str) -> None:
    pipeline = _lock(pipeline)
    name = _clean_name(name, PIPELINE_NAME_MAX)
    if _pipeline_name_taken(name, exclude_id=pipeline.id):
        raise PipelineError("pipeline_name_taken", "name")
    pipeline.name = name


def set_default(actor: User, pipeline: Pipeline) -> None:
    """Make `pipeline` the default one, and no other."""
    # Lock every pipeline: two admins choosing two defaults at once end with one.
    db.session.execute(select(Pipeline.id).with_for_update())
    db.session.execute(
        update(Pipeline)
        .where(Pipeline.id != pipeline.id, Pipeline.is_default.is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session="fetch")
    )
    pipeline.is_default = True


# ---- stages ---------------------------------------------------------------------------


def add_stage(actor: User, pipeline: Pipeline, values: StageValues) -> Stage:
    """A new stage: an open one after the last open stage (before Won and Lost),
    a closed one at the end."""
    pipeline = _lock(pipeline)
    values = _clean_values(values, pipeline, None)
    stage = Stage(**values.__dict__)
    open_positions = [i for i, s in enumerate(pipeline.stages) if s.kind == "open"]
    if values.kind == "open" and open_positions:
        pipeline.stages.insert(open_positions[-1] + 1, stage)
    else:
        pipeline.stages.append(stage)
    _renumber(pipeline)
    check_stages(pipeline.stages)
    return stage


def update_stage(actor: User, stage: Stage, values: StageValues) -> Stage:
    """Rename, re-weigh or re-kind a stage; its deals stay where they are."""
    pipeline = _lock(stage.pipeline)
    values = _clean_values(values, pipeline, stage)
    if values.kind != stage.kind and deals_in(stage):
        raise PipelineError("kind_has_deals", "kind")
    kinds_after = [values.kind if s.id == stage.id else s.kind for s in pipeline.stages]
    _check_kinds(kinds_after)
    stage.name = values.name
    stage.probability = values.probability
    stage.kind = values.kind
    stage.milestone = values.milestone
    stage.stall_days = values.stall_days
    return stage


def move_stage(actor: User, stage: Stage, offset: int) -> bool:
    """Move a stage one place up (-1) or down (+1); False at either end."""
    pipeline = _lock(stage.pipeline)
    stages = list(pipeline.stages)
    index = next(i for i, s in enumerate(stages) if s.id == stage.id)
    target = index + offset
    if offset not in (-1, 1) or not 0 <= target < len(stages):
        return False
    stages[index], stages[target] = stages[target], stages[index]
    check_stages(stages)
    for position, s in enumerate(stages):
        s.position = position
    _reload_order(pipeline)
    return True


def reorder_stages(actor: User, pipeline: Pipeline, stage_ids: list[int]) -> None:
    """Put the stages in the order of `stage_ids`, which must name each of them once
    (for a drag and drop list)."""
    pipeline = _lock(pipeline)
    by_id = {s.id: s for s in pipeline.stages}
    if sorted(stage_ids) != sorted(by_id):
        raise PipelineError("order_mismatch")
    stages = [by_id[i] for i in stage_ids]
    check_stages(stages)
    for position, s in enumerate(stages):
        s.position = position
    _reload_order(pipeline)


def _reload_order(pipeline: Pipeline) -> None:
    """pipeline.stages is ordered by position when loaded: order it now too."""
    pipeline.stages.sort(key=lambda s: s.position)


def deletion_problem(stage: Stage) -> str | None:
    """Why `stage` cannot be deleted even with its deals moved, or None."""
    remaining = [s for s in stage.pipeline.stages if s.id != stage.id]
    if not remaining:
        return f"no_{stage.kind}"
    try:
        check_stages(remaining)
    except PipelineError as error:
        return error.code
    return None


def delete_stage(actor: User, stage: Stage, move_to: Stage | None = None) -> int:
    """Delete `stage`, first moving its deals to `move_to`; returns how many moved.

    Set-based, so the number of statements does not grow with the number of deals:
    the deals are locked, a history row and a timeline entry written for each, the
    deals moved with their version bumped (so that someone editing one of them gets
    the "changed by someone else" answer, not a silent overwrite), the stage deleted.
    """
    pipeline = _lock(stage.pipeline)
    stage = next(s for s in pipeline.stages if s.id == stage.id)
    problem = deletion_problem(stage)
    if problem:
        raise PipelineError(problem)
    deals = db.session.execute(
        select(Deal.id, Deal.title, Deal.contact_id, Deal.company_id)
        .where(Deal.stage_id == stage.id)
        .order_by(Deal.id)
        .with_for_update()
    ).all()
    if deals:
        if move_to is None:
            raise PipelineError("move_to_required", "move_to", count=len(deals))
        if move_to.id == stage.id or move_to.pipeline_id != stage.pipeline_id:
            raise PipelineError("move_to_invalid", "move_to")
        if move_to.kind != stage.kind:
            raise PipelineError("move_to_kind", "move_to")
        _move_deals(actor, stage, move_to, deals)
    pipeline.stages.remove(stage)  # delete-orphan: the row goes at the next flush
    _renumber(pipeline)
    db.session.flush()
    return len(deals)


def _move_deals(actor: User, stage: Stage, move_to: Stage, deals) -> None:
    now = utcnow()
    db.session.execute(
        insert(DealStageHistory),
        [
            {
                "deal_id": d.id,
                "from_stage_id": stage.id,
                "to_stage_id": move_to.id,
                "changed_by_id": actor.id,
                "changed_at": now,
            }
            for d in deals
        ],
    )
    db.session.execute(
        insert(Activity),
        [
            {
                "kind": "system",
                "author_id": actor.id,
                "contact_id": d.contact_id,
                "company_id": d.company_id,
                "deal_id": d.id,
                "occurred_at": now,
                "created_at": now,
                "data": {
                    "event": "deal_stage",
                    "deal": d.title,
                    "from": stage.name,
                    "to": move_to.name,
                    "cause": "stage_deleted",
                },
            }
            for d in deals
        ],
    )
    db.session.execute(
        update(Deal)
        .where(Deal.stage_id == stage.id)
        .values(stage_id=move_to.id, version_id=Deal.version_id + 1, updated_by_id=actor.id)
        .execution_options(synchronize_session=False)
    )
    # Deals already in the session would still show their old stage.
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Deal):
            db.session.expire(obj)
