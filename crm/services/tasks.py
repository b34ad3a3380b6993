"""Tasks: create, complete in one click, change, and the lists that show them.

Every change re-plans the task's reminder (crm/services/reminders.py) in the same
transaction. Due times are aware UTC; a task due "on a day" (all_day) is stored
at that day's local midnight in its assignee's zone, and is overdue once that
day is over. "My tasks" groups are computed in the viewer's zone.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, not_, or_, select, union_all
from sqlalchemy.orm import joinedload, selectinload

from crm.extensions import db
from crm.i18n import DEFAULT_TIMEZONE
from crm.models import Company, Contact, Deal, Event, Task, User
from crm.permissions import ADMIN, MANAGER, visible_events, visible_tasks
from crm.services import keyset
from crm.services.recurrence import (
    expand_all,
    from_local_naive,
    involving,
    local_midnight,
    overlapping,
)
from crm.services.reminders import now, schedule_task, user_zone

GROUPS = ("overdue", "today", "upcoming", "no_date")
FOLLOW_UP_WORKING_DAYS = 2
FOLLOW_UP_TIME = time(9, 0)
DONE_LIMIT = 50
# "My tasks" shows each group's soonest this many; the rest of a group comes a page at a
# time as the user asks or scrolls, rather than a page of hundreds of rows (a rep with a
# year of planned calls).
GROUP_FIRST = 20
RECORD_PANEL_LIMIT = 20


def _loaded(query):
    # All many-to-one: joined into the tasks' own query (one query, not one per relation).
    return query.options(
        joinedload(Task.assignee),
        joinedload(Task.contact),
        joinedload(Task.company),
        joinedload(Task.deal),
    )


# ---- due times -------------------------------------------------------------


def due_from_local(
    day: date | None, at: time | None, zone: ZoneInfo
) -> tuple[datetime | None, bool]:
    """(due_at, all_day) from a local date and an optional local time."""
    if day is None:
        return None, False
    if at is None:
        return from_local_naive(datetime.combine(day, time()), zone), True
    return from_local_naive(datetime.combine(day, at), zone), False


def due_day(task: Task, zone: ZoneInfo) -> date | None:
    """The local day a task is due on: in its assignee's zone when it is due on a day."""
    if task.due_at is None:
        return None
    if task.all_day:
        return task.due_at.astimezone(user_zone(task.assignee) if task.assignee else zone).date()
    return task.due_at.astimezone(zone).date()


def is_overdue(task: Task, zone: ZoneInfo, at: datetime | None = None) -> bool:
    if task.due_at is None or task.status != "open":
        return False
    at = at or now()
    if task.all_day:
        return due_day(task, zone) < at.astimezone(zone).date()
    return task.due_at < at


def add_working_days(day: date, count: int) -> date:
    while count:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def follow_up_due(user: User, at: datetime | None = None) -> datetime:
    """Two working days after `at`, at 09:00 in the user's zone."""
    zone = user_zone(user)
    today = (at or now()).astimezone(zone).date()
    day = add_working_days(today, FOLLOW_UP_WORKING_DAYS)
    return from_local_naive(datetime.combine(day, FOLLOW_UP_TIME), zone)


# ---- who may be assigned ---------------------------------------------------


def assignable_users(user: User) -> list[User]:
    """Admins assign to anybody; others to themselves and their team."""
    query = select(User).where(User.active.is_(True)).order_by(User.name)
    if user.role != ADMIN:
        if user.team_id is None:
            return [user]
        query = query.where(User.team_id == user.team_id)
    return list(db.session.scalars(query))


def can_plan_for_others(user: User) -> bool:
    return user.role in (ADMIN, MANAGER)


# ---- changes ---------------------------------------------------------------


def create_task(
    actor: User,
    title: str,
    *,
    due_at: datetime | None = None,
    all_day: bool = False,
    assignee: User | None = None,
    notes: str | None = None,
    contact: Contact | None = None,
    company: Company | None = None,
    deal: Deal | None = None,
    reminder_minutes: int | None = None,
    source_activity_id: int | None = None,
) -> Task:
    task = Task(
        title=title.strip(),
        notes=notes or None,
        due_at=due_at,
        all_day=all_day and due_at is not None,
        assignee=assignee or actor,
        created_by=actor,
        contact=contact,
        company=company or (contact.company if contact is not None else None),
        deal=deal,
        reminder_minutes=reminder_minutes,
        source_activity_id=source_activity_id,
    )
    db.session.add(task)
    db.session.flush()
    schedule_task(task)
    return task


def update_task(task: Task, **fields) -> Task:
    for name, value in fields.items():
        setattr(task, name, value)
    if task.due_at is None:
        task.all_day = False
    schedule_task(task)
    return task


def complete_task(task: Task) -> bool:
    """Mark done; False when it already was (a double click changes nothing)."""
    if task.status == "done":
        return False
    task.status, task.completed_at = "done", now()
    schedule_task(task)
    return True


def reopen_task(task: Task) -> bool:
    if task.status == "open":
        return False
    task.status, task.completed_at = "open", None
    schedule_task(task)
    return True


def delete_task(task: Task) -> None:
    # Its reminder rows go with it (ON DELETE CASCADE).
    db.session.delete(task)
    db.session.flush()


# ---- lists -----------------------------------------------------------------


@dataclass
class TaskGroups:
    overdue: list[Task] = field(default_factory=list)
    today: list[Task] = field(default_factory=list)
    upcoming: list[Task] = field(default_factory=list)
    no_date: list[Task] = field(default_factory=list)

    def items(self):
        return [(name, getattr(self, name)) for name in GROUPS]

    @property
    def total(self) -> int:
        return sum(len(tasks) for _name, tasks in self.items())


def group_open_tasks(tasks, zone: ZoneInfo, at: datetime | None = None) -> TaskGroups:
    at = at or now()
    today = at.astimezone(zone).date()
    groups = TaskGroups()
    for task in tasks:
        day = due_day(task, zone)
        if day is None:
            groups.no_date.append(task)
        elif is_overdue(task, zone, at):
            groups.overdue.append(task)
        elif day == today:
            groups.today.append(task)
        else:
            groups.upcoming.append(task)
    return groups


def _assignee_filter(query, viewer: User, assignee: str):
    """ "me" (default), "team" (managers and admins: their team), or a user id they may see."""
    if assignee == "team" and can_plan_for_others(viewer):
        if viewer.role == ADMIN and viewer.team_id is None:
            return query
        members = select(User.id).where(User.team_id == viewer.team_id)
        return query.where(Task.assignee_id.in_(members))
    if assignee.isdigit() and can_plan_for_others(viewer):
        return query.where(Task.assignee_id == int(assignee))
    return query.where(Task.assignee_id == viewer.id)


# ---- "My tasks": the groups, counted and paged in the database ---------------


@dataclass
class GroupPage:
    """A group of the open tasks list: its soonest tasks, how many it holds in all, and
    where its next page starts (None: nothing more)."""

    name: str
    tasks: list[Task]
    count: int  # in the group (a next page: from this page on)
    next_cursor: str | None = None

    @property
    def left(self) -> int:
        return self.count - len(self.tasks)


def _zone_named(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def _assignee_zones(viewer: User, assignee: str) -> dict[ZoneInfo, list[int] | None]:
    """The zones of the people whose tasks are listed, with who lives in each (None: all
    of them): a task due on a day is due on that day where its assignee lives."""
    people = None
    if assignee == "team" and can_plan_for_others(viewer):
        people = select(User.id, User.timezone)
        if not (viewer.role == ADMIN and viewer.team_id is None):
            people = people.where(User.team_id == viewer.team_id)
    elif assignee.isdigit() and can_plan_for_others(viewer):
        people = select(User.id, User.timezone).where(User.id == int(assignee))
    if people is None:
        return {user_zone(viewer): None}
    by_zone: dict[ZoneInfo, list[int]] = {}
    for user_id, name in db.session.execute(people):
        by_zone.setdefault(_zone_named(name), []).append(user_id)
    if len(by_zone) > 1:
        return by_zone
    return {zone: None for zone in by_zone} or {user_zone(viewer): None}


def _due_day_before(day: date, zones: dict[ZoneInfo, list[int] | None]) -> ColumnElement[bool]:
    """Tasks due on a day before `day`, in their assignee's zone (for all-day tasks)."""
    parts = []
    for zone, people in zones.items():
        before = Task.due_at < local_midnight(day, zone)
        parts.append(before if people is None else and_(Task.assignee_id.in_(people), before))
    return or_(*parts)


def group_conditions(
    zone: ZoneInfo, at: datetime, zones: dict[ZoneInfo, list[int] | None]
) -> dict[str, ColumnElement[bool]]:
    """Each group as SQL, the same as group_open_tasks() decides in Python: a task due at a
    time is overdue once that time is past and today's until the viewer's midnight; a task
    due on a day is overdue once that day is over where its assignee lives."""
    today = at.astimezone(zone).date()
    tomorrow = local_midnight(today + timedelta(days=1), zone)
    timed, on_a_day = Task.all_day.is_(False), Task.all_day.is_(True)
    before_today = _due_day_before(today, zones)
    before_tomorrow = _due_day_before(today + timedelta(days=1), zones)
    # The earliest and latest moment either kind may fall on, said outright: a range the
    # due-time index can walk, which the ORs alone do not give.
    midnights = [local_midnight(today, z) for z in zones]
    midnights_after = [local_midnight(today + timedelta(days=1), z) for z in zones]
    return {
        "overdue": and_(
            Task.due_at < max(at, *midnights),
            or_(and_(timed, Task.due_at < at), and_(on_a_day, before_today)),
        ),
        "today": and_(
            Task.due_at >= min(at, *midnights),
            Task.due_at < max(tomorrow, *midnights_after),
            or_(
                and_(timed, Task.due_at >= at, Task.due_at < tomorrow),
                and_(on_a_day, not_(before_today), before_tomorrow),
            ),
        ),
        "upcoming": and_(
            Task.due_at >= min(tomorrow, *midnights_after),
            or_(and_(timed, Task.due_at >= tomorrow), and_(on_a_day, not_(before_tomorrow))),
        ),
        "no_date": Task.due_at.is_(None),
    }


def _group_key(name: str) -> keyset.SortKey:
    # Undated tasks follow their creation (id); the others their due time.
    return (
        keyset.SortKey(Task.id, "int")
        if name == "no_date"
        else keyset.SortKey(Task.due_at, "datetime")
    )


def _sort_value(name: str):
    return (lambda task: task.id) if name == "no_date" else (lambda task: task.due_at)


def open_task_groups(
    viewer: User,
    assignee: str,
    zone: ZoneInfo,
    at: datetime | None = None,
    first: int | None = None,
) -> list[GroupPage]:
    """Every group with its count and its `first` soonest tasks: three queries (the zones
    of a team, the counts, the tasks), whatever the number of tasks."""
    at, first = at or now(), first or GROUP_FIRST
    conditions = group_conditions(zone, at, _assignee_zones(viewer, assignee))
    listed = _assignee_filter(visible_tasks(viewer), viewer, assignee).where(Task.status == "open")
    counts = db.session.execute(
        listed.with_only_columns(
            *(func.count(case((condition, 1))) for condition in conditions.values())
        ).select_from(Task)
    ).one()
    heads = []
    for name, condition in conditions.items():
        key = _group_key(name)
        head = (
            listed.where(condition)
            .with_only_columns(Task.id)
            .order_by(*keyset.ordering(key, Task.id, False))
            .limit(first + 1)
            .subquery()
        )
        heads.append(select(head.c.id, literal(name).label("group_name")))
    page = union_all(*heads).subquery()
    rows = db.session.execute(
        _loaded(select(Task, page.c.group_name).join(page, Task.id == page.c.id)).order_by(
            Task.due_at.is_(None), Task.due_at, Task.id
        )
    )
    found: dict[str, list[Task]] = {name: [] for name in GROUPS}
    for task, name in rows:
        found[name].append(task)
    groups = []
    for name, count in zip(GROUPS, counts, strict=True):
        tasks, cursor = keyset.split_page(found[name], first, _sort_value(name))
        groups.append(GroupPage(name, tasks, count, cursor))
    return groups


def more_open_tasks(
    viewer: User,
    assignee: str,
    zone: ZoneInfo,
    name: str,
    cursor: str | None,
    size: int,
    at: datetime | None = None,
) -> GroupPage:
    """The next page of one group, after `cursor` (keyset); its count is of the tasks
    from there on, so that `left` says how many more there are after this page."""
    at = at or now()
    condition = group_conditions(zone, at, _assignee_zones(viewer, assignee))[name]
    listed = (
        _assignee_filter(visible_tasks(viewer), viewer, assignee)
        .where(Task.status == "open")
        .where(condition)
    )
    key = _group_key(name)
    rest = keyset.after(listed, key, Task.id, False, cursor)
    count = db.session.scalar(rest.with_only_columns(func.count()).select_from(Task))
    query = keyset.paginate(listed, key, Task.id, False, cursor, size)
    tasks, next_cursor = keyset.split_page(
        list(db.session.scalars(_loaded(query))), size, _sort_value(name)
    )
    return GroupPage(name, tasks, count, next_cursor)


def done_tasks(viewer: User, assignee: str = "me") -> list[Task]:
    query = _assignee_filter(visible_tasks(viewer), viewer, assignee).where(Task.status == "done")
    query = query.order_by(Task.completed_at.desc(), Task.id.desc()).limit(DONE_LIMIT)
    return list(db.session.scalars(_loaded(query)))


def open_tasks_for(viewer: User, *, contact=None, company=None, deal=None) -> list[Task]:
    """The open tasks linked to one record, as the viewer may see them."""
    query = visible_tasks(viewer).where(Task.status == "open")
    if contact is not None:
        query = query.where(Task.contact_id == contact.id)
    elif company is not None:
        query = query.where(Task.company_id == company.id)
    elif deal is not None:
        query = query.where(Task.deal_id == deal.id)
    else:
        raise ValueError("a record is needed")
    query = query.order_by(Task.due_at.is_(None), Task.due_at, Task.id).limit(RECORD_PANEL_LIMIT)
    return list(db.session.scalars(_loaded(query)))


@dataclass
class MyDay:
    overdue: list[Task]
    today: list[Task]
    occurrences: list  # crm.services.recurrence.Occurrence, today's, by start


def my_day(user: User, zone: ZoneInfo, at: datetime | None = None) -> MyDay:
    """The start page: my overdue tasks, today's, and today's events I organize or attend."""
    at = at or now()
    soon = (
        visible_tasks(user)
        .where(Task.assignee_id == user.id, Task.status == "open")
        .where(Task.due_at.is_not(None), Task.due_at < at + timedelta(days=2))
        .order_by(Task.due_at, Task.id)
    )
    groups = group_open_tasks(db.session.scalars(_loaded(soon)), zone, at)
    today = at.astimezone(zone).date()
    start = from_local_naive(datetime.combine(today, time()), zone)
    end = from_local_naive(datetime.combine(today + timedelta(days=1), time()), zone)
    events = db.session.scalars(
        visible_events(user)
        .where(
            overlapping(start, end),
            involving([user.id]),
        )
        .options(selectinload(Event.overrides), joinedload(Event.organizer))
    ).all()
    return MyDay(groups.overdue, groups.today, expand_all(events, start, end))
