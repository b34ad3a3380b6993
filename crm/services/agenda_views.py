"""The agenda's grids: day, week, month and team, built from occurrences and tasks.

Everything is computed in the viewer's time zone: a week is seven local days
from Monday, a time grid has 96 rows of 15 minutes from local midnight. Items
carry the row and lane they sit in, so that the page is right before any
JavaScript runs (the stylesheet has one class per row, span and lane).
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import attributes, contains_eager, joinedload, load_only, selectinload

from crm.extensions import db
from crm.models import Event, Intervention, Task, Team, TechnicianBooking, User
from crm.models.agenda import AGENDA_KINDS, EVENT_KINDS
from crm.permissions import (
    ADMIN,
    can_edit_event,
    event_details_visible,
    has_permission,
    visible_events,
    visible_interventions,
    visible_tasks,
)
from crm.services import bookings
from crm.services.recurrence import (
    Occurrence,
    expand_all,
    involving,
    local_midnight,
    overlapping,
)

VIEWS = ("week", "day", "month", "team")
SLOT_MINUTES = 15
SLOTS_PER_DAY = 24 * 60 // SLOT_MINUTES  # 96 rows in a time grid
MAX_LANES = 8  # side by side in one day column; more overlap in the last lane
MONTH_CHIPS = 3  # per month cell before "+n more"
TEAM_CHIPS = 4


@dataclass
class AgendaQuery:
    """What the agenda shows, as read from and written to the URL."""

    view: str = "week"
    day: date = field(default_factory=date.today)
    user_ids: tuple[int, ...] = ()  # the people shown; empty: me (or my team in team view)
    team_id: int | None = None
    kinds: tuple[str, ...] = AGENDA_KINDS

    @classmethod
    def from_args(cls, args, today: date) -> "AgendaQuery":
        view = args.get("view", "week")
        try:
            day = date.fromisoformat(args.get("date", ""))
        except ValueError:
            day = today
        users = tuple(int(part) for part in _comma_list(args.getlist("user")) if part.isdigit())[
            :50
        ]
        kinds_given = _comma_list(args.getlist("kind"))
        kinds = tuple(kind for kind in AGENDA_KINDS if kind in kinds_given)
        return cls(
            view=view if view in VIEWS else "week",
            day=day,
            user_ids=users,
            team_id=args.get("team", type=int),
            kinds=kinds if kinds_given else AGENDA_KINDS,
        )

    def args(self, **changes) -> dict:
        """Query arguments for url_for, defaults left out so that URLs stay short."""
        query = replace(self, **changes)
        values = {"view": query.view, "date": query.day.isoformat()}
        if query.user_ids:
            values["user"] = ",".join(str(i) for i in query.user_ids)
        if query.team_id:
            values["team"] = query.team_id
        if set(query.kinds) != set(AGENDA_KINDS):
            values["kind"] = ",".join(query.kinds) or "none"
        return values

    def toggled_kind(self, kind: str) -> tuple[str, ...]:
        if kind in self.kinds:
            return tuple(k for k in self.kinds if k != kind)
        return tuple(k for k in AGENDA_KINDS if k in self.kinds or k == kind)

    def step(self, direction: int) -> date:
        """The date the previous (-1) or next (+1) arrow goes to."""
        if self.view == "day":
            return self.day + timedelta(days=direction)
        if self.view == "month":
            month = self.day.month - 1 + direction
            return date(self.day.year + month // 12, month % 12 + 1, 1)
        return self.day + timedelta(weeks=direction)


def _comma_list(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def view_days(view: str, day: date) -> list[date]:
    """The local days a view covers: one, seven from Monday, or six weeks around a month."""
    if view == "day":
        return [day]
    if view == "month":
        first = week_start(day.replace(day=1))
        return [first + timedelta(days=i) for i in range(42)]
    first = week_start(day)
    return [first + timedelta(days=i) for i in range(7)]


# ---- items ------------------------------------------------------------------------------


# Slots: a team's week builds hundreds of items and cells per request, and objects without a
# __dict__ are fewer for the garbage collector to walk (the tail of the team view).
@dataclass(slots=True)
class AgendaItem:
    """An event occurrence or a task, where the agenda shows it."""

    kind: str  # meeting, call, visit, task, or intervention (technicians' bookings)
    start: datetime  # aware UTC
    end: datetime
    all_day: bool
    people: frozenset[int]  # users whose agenda it is on (organizer, attendees, assignee)
    occurrence: Occurrence | None = None
    task: Task | None = None
    intervention: Intervention | None = None
    first_day: date | None = None  # all-day items: local days they cover
    last_day: date | None = None
    # Said once per event for the viewer (mark_for_viewer), not once per chip in a template.
    visible: bool = True  # title, place and people may be shown (else "Busy")
    editable: bool = False  # the viewer may move it

    @property
    def key(self) -> str:
        if self.intervention is not None:
            return f"intervention-{self.intervention.id}"
        return self.occurrence.key if self.occurrence else f"task-{self.task.id}"

    @property
    def event(self) -> Event | None:
        return self.occurrence.event if self.occurrence else None

    @property
    def is_series(self) -> bool:
        return bool(self.occurrence and (self.occurrence.recurrence_id or self.event.parent_id))

    def days(self, zone: ZoneInfo) -> tuple[date, date]:
        """The first and last local day the item touches (worked out once: see fix_days)."""
        if self.first_day is not None:
            return self.first_day, self.last_day
        first = self.start.astimezone(zone).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(zone).date()
        return first, max(first, last)

    def fix_days(self, zone: ZoneInfo) -> None:
        """Keep the local days of a timed item in `zone`, the one zone of a view: its grids
        ask for them again and again."""
        if self.first_day is None:
            self.first_day, self.last_day = self.days(zone)


def _event_people(event: Event) -> frozenset[int]:
    people = {a.user_id for a in event.attendees if a.user_id and a.response != "declined"}
    if event.organizer_id:
        people.add(event.organizer_id)
    return frozenset(people)


def _occurrence_item(occurrence: Occurrence) -> AgendaItem:
    event = occurrence.event
    item = AgendaItem(
        kind=event.kind,
        start=occurrence.start,
        end=occurrence.end,
        all_day=event.all_day or occurrence.end - occurrence.start >= timedelta(hours=24),
        people=_event_people(event),
        occurrence=occurrence,
    )
    if event.all_day:
        # Whole days where it was planned, whoever looks at it: a holiday is a date.
        zone = ZoneInfo(event.timezone)
        item.first_day = occurrence.start.astimezone(zone).date()
        item.last_day = max(
            item.first_day, (occurrence.end - timedelta(seconds=1)).astimezone(zone).date()
        )
    return item


def _task_item(task: Task, zone: ZoneInfo) -> AgendaItem:
    item = AgendaItem(
        kind="task",
        start=task.due_at,
        end=task.due_at + timedelta(minutes=SLOT_MINUTES * 2),
        all_day=task.all_day,
        people=frozenset({task.assignee_id}) if task.assignee_id else frozenset(),
        task=task,
    )
    if task.all_day:
        own_zone = (
            ZoneInfo(task.assignee.timezone) if task.assignee and task.assignee.timezone else zone
        )
        item.first_day = item.last_day = task.due_at.astimezone(own_zone).date()
    return item


# What the grids show of an event, and what deciding its place and rights needs: not its
# description, report or links, which its own page loads.
_GRID_EVENT_COLUMNS = (
    Event.id,
    Event.title,
    Event.kind,
    Event.status,
    Event.location,
    Event.starts_at,
    Event.ends_at,
    Event.all_day,
    Event.timezone,
    Event.private,
    Event.rrule,
    Event.rrule_until,
    Event.exdates,
    Event.parent_id,
    Event.recurrence_id,
    Event.organizer_id,
)


# What deciding the viewer's rights needs of an organizer (can_edit_event): not the whole
# user row, twice per event (organizer and series' organizer) in the query.
_RIGHTS_USER_COLUMNS = (User.id, User.team_id)


def load_items(
    viewer: User,
    start: datetime,
    end: datetime,
    people: list[int],
    kinds: tuple[str, ...],
    zone: ZoneInfo,
) -> list[AgendaItem]:
    """Occurrences and tasks of `people` in [start, end): one query each, whatever the data."""
    items: list[AgendaItem] = []
    event_kinds = [kind for kind in kinds if kind in EVENT_KINDS]
    if event_kinds and people:
        query = (
            visible_events(viewer)
            .where(
                overlapping(start, end),
                Event.status != "cancelled",
                Event.kind.in_(event_kinds),
                involving(people),
            )
            .options(
                load_only(*_GRID_EVENT_COLUMNS),
                selectinload(Event.attendees),
                joinedload(Event.organizer).load_only(*_RIGHTS_USER_COLUMNS),
                joinedload(Event.parent)
                .load_only(*_GRID_EVENT_COLUMNS)
                .selectinload(Event.attendees),
                joinedload(Event.parent)
                .joinedload(Event.organizer)
                .load_only(*_RIGHTS_USER_COLUMNS),
            )
        )
        events = db.session.scalars(query).unique().all()
        _load_overrides(events)
        items.extend(_occurrence_item(o) for o in expand_all(events, start, end))
    if "task" in kinds and people:
        query = (
            visible_tasks(viewer)
            .where(
                Task.due_at >= start,
                Task.due_at < end,
                Task.assignee_id.in_(people),
                Task.status != "cancelled",
            )
            # The assignees are among the people shown, already loaded: no join for them.
            .options(
                load_only(
                    Task.id, Task.title, Task.due_at, Task.all_day, Task.status, Task.assignee_id
                )
            )
            .order_by(Task.due_at, Task.id)
        )
        items.extend(_task_item(task, zone) for task in db.session.scalars(query))
    if people:
        items.extend(_intervention_items(viewer, start, end, people))
    items.sort(key=lambda item: (not item.all_day, item.start, item.end, item.key))
    return items


def _load_overrides(events: list[Event]) -> None:
    """The changed occurrences of the series among `events`, which expand() leaves out: one
    query for the series alone (a week holds a few series among hundreds of events, and an
    empty collection loaded for each of those costs more than the query)."""
    series = {event.id: event for event in events if event.rrule}
    if not series:
        return
    found: dict[int, list[Event]] = {event_id: [] for event_id in series}
    overrides = db.session.scalars(
        select(Event)
        .where(Event.parent_id.in_(series))
        .options(load_only(Event.id, Event.parent_id, Event.recurrence_id))
    )
    for override in overrides:
        found[override.parent_id].append(override)
    for event_id, event in series.items():
        attributes.set_committed_value(event, "overrides", found[event_id])


def _intervention_items(
    viewer: User, start: datetime, end: datetime, people: list[int]
) -> list[AgendaItem]:
    """The shown people's bookings (active, or of a visit done) as one item per
    intervention, in one query.

    Always shown, whatever the kind filter; only those the viewer may see
    (visible_interventions: planners all, a technician theirs).
    """
    query = (
        select(TechnicianBooking)
        .join(TechnicianBooking.intervention)
        .where(
            *bookings.in_calendars_between(people, start, end),
            TechnicianBooking.intervention_id.in_(
                visible_interventions(viewer).with_only_columns(Intervention.id)
            ),
        )
        .options(contains_eager(TechnicianBooking.intervention))
    )
    by_intervention: dict[int, AgendaItem] = {}
    for booking in db.session.scalars(query):
        item = by_intervention.get(booking.intervention_id)
        if item is None:
            by_intervention[booking.intervention_id] = AgendaItem(
                kind="intervention",
                start=booking.starts_at,
                end=booking.ends_at,
                all_day=False,
                people=frozenset({booking.technician_id}),
                intervention=booking.intervention,
            )
        else:
            item.people = item.people | {booking.technician_id}
    return list(by_intervention.values())


# ---- the time grid (day and week) ------------------------------------------------------


@dataclass(slots=True)
class Placed:
    """An item in a day column of the time grid: rows of 15 minutes, a lane of n."""

    item: AgendaItem
    row: int  # 1-based grid row of its start
    span: int
    lane: int = 0
    lanes: int = 1
    starts_before: bool = False  # began on an earlier day
    ends_after: bool = False

    @property
    def lane_class(self) -> str:
        return f"lane-{self.lane + 1}-of-{self.lanes}"


@dataclass(slots=True)
class DayColumn:
    day: date
    is_today: bool
    timed: list[Placed] = field(default_factory=list)
    all_day: list[AgendaItem] = field(default_factory=list)


def _slot(moment: datetime, zone: ZoneInfo, day: date, round_up: bool) -> int:
    """The 15-minute slot of a moment in a local day, 0 to 96, clipped to the day."""
    local = moment.astimezone(zone)
    if local.date() < day:
        return 0
    if local.date() > day:
        return SLOTS_PER_DAY
    minutes = local.hour * 60 + local.minute + (1 if local.second or local.microsecond else 0)
    slot, rest = divmod(minutes, SLOT_MINUTES)
    return slot + (1 if round_up and rest else 0)


def assign_lanes(placed: list[Placed]) -> list[Placed]:
    """Overlapping items side by side: each cluster of overlaps shares its lane count."""
    placed.sort(key=lambda p: (p.row, -p.span))
    cluster: list[Placed] = []
    lane_ends: list[int] = []
    cluster_end = 0

    def close() -> None:
        for member in cluster:
            member.lanes = min(len(lane_ends), MAX_LANES)
            member.lane = min(member.lane, MAX_LANES - 1)

    for p in placed:
        if cluster and p.row >= cluster_end:
            close()
            cluster, lane_ends = [], []
        free = next((i for i, end in enumerate(lane_ends) if end <= p.row), None)
        if free is None:
            lane_ends.append(p.row + p.span)
            p.lane = len(lane_ends) - 1
        else:
            lane_ends[free] = p.row + p.span
            p.lane = free
        cluster.append(p)
        cluster_end = max(cluster_end, p.row + p.span)
    if cluster:
        close()
    return placed


def time_grid(
    items: list[AgendaItem], days: list[date], zone: ZoneInfo, today: date
) -> list[DayColumn]:
    columns = {day: DayColumn(day, day == today) for day in days}
    for item in items:
        first, last = item.days(zone)
        for day in days:
            if not first <= day <= last:
                continue
            column = columns[day]
            if item.all_day:
                column.all_day.append(item)
                continue
            top = _slot(item.start, zone, day, round_up=False)
            bottom = max(_slot(item.end, zone, day, round_up=True), top + 1)
            top = min(top, SLOTS_PER_DAY - 1)
            column.timed.append(
                Placed(
                    item,
                    row=top + 1,
                    span=min(bottom, SLOTS_PER_DAY) - top,
                    starts_before=day > first,
                    ends_after=day < last,
                )
            )
    for column in columns.values():
        assign_lanes(column.timed)
    return [columns[day] for day in days]


# ---- month and team ----------------------------------------------------------------------


@dataclass(slots=True)
class DayCell:
    day: date
    is_today: bool
    in_month: bool = True
    items: list[AgendaItem] = field(default_factory=list)
    limit: int = MONTH_CHIPS

    @property
    def shown(self) -> list[AgendaItem]:
        if len(self.items) <= self.limit:
            return self.items
        return self.items[: self.limit - 1]

    @property
    def more(self) -> int:
        return len(self.items) - len(self.shown)


def _cells(items, days, zone, today, limit=MONTH_CHIPS) -> list[DayCell]:
    cells = {day: DayCell(day, day == today, limit=limit) for day in days}
    for item in items:
        first, last = item.days(zone)
        day = max(first, days[0])
        while day <= min(last, days[-1]):
            cells[day].items.append(item)
            day += timedelta(days=1)
    return [cells[day] for day in days]


def month_grid(items, days, zone, today, month: int) -> list[list[DayCell]]:
    cells = _cells(items, days, zone, today)
    for cell in cells:
        cell.in_month = cell.day.month == month
    return [cells[i : i + 7] for i in range(0, len(cells), 7)]


@dataclass(slots=True)
class TeamRow:
    user: User
    cells: list[DayCell]
    can_plan: bool  # the viewer may put events on this person's agenda


def team_grid(items, days, zone, today, users: list[User], viewer: User) -> list[TeamRow]:
    """People as rows, days as columns: one pass over the items, each put in the cells of
    the people it concerns on the days it covers."""
    rows = {
        user.id: TeamRow(
            user,
            [DayCell(day, day == today, limit=TEAM_CHIPS) for day in days],
            may_plan_for(viewer, user),
        )
        for user in users
    }
    for item in items:
        first, last = item.days(zone)
        shown = [rows[person].cells for person in item.people if person in rows]
        for index in range(
            (max(first, days[0]) - days[0]).days, (min(last, days[-1]) - days[0]).days + 1
        ):
            for cells in shown:
                cells[index].items.append(item)
    return [rows[user.id] for user in users]


# ---- who is shown, who may be planned for ------------------------------------------------------


def may_plan_for(viewer: User, person: User) -> bool:
    """Everybody organizes their own events; managers their team's, admins anyone's."""
    if person.id == viewer.id:
        return True
    if not has_permission(viewer, "agenda.plan_team"):
        return False
    return viewer.role == ADMIN or (viewer.team_id is not None and person.team_id == viewer.team_id)


def active_users() -> list[User]:
    return list(db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name)))


def all_teams() -> list[Team]:
    return list(db.session.scalars(select(Team).order_by(Team.name)))


def shown_people(viewer: User, query: AgendaQuery, users: list[User]) -> list[User]:
    """The people of the view: chosen ones, a chosen team, or me (my team in team view)."""
    by_id = {user.id: user for user in users}
    if query.user_ids:
        chosen = [by_id[i] for i in query.user_ids if i in by_id]
        if chosen:
            return chosen if query.view == "team" else chosen[:1]
    if query.view == "team":
        team_id = query.team_id or viewer.team_id
        if team_id:
            members = [user for user in users if user.team_id == team_id]
            if members:
                return members
    return [by_id.get(viewer.id, viewer)]


@dataclass
class AgendaView:
    query: AgendaQuery
    zone: ZoneInfo
    today: date
    days: list[date]
    people: list[User]
    users: list[User]
    teams: list[Team]
    columns: list[DayColumn] = field(default_factory=list)
    weeks: list[list[DayCell]] = field(default_factory=list)
    rows: list[TeamRow] = field(default_factory=list)

    @property
    def person(self) -> User:
        return self.people[0]

    @property
    def has_all_day(self) -> bool:
        return any(column.all_day for column in self.columns)

    def release(self) -> None:
        """Let go of the grids once the page is written. A template's context is a reference
        cycle (its macros refer to it), so what it was given lives on until a full garbage
        collection: for a team's week, thousands of items, cells and rows of a few requests
        at once, walked and freed in one long pause (the slow tail of the team view)."""
        self.columns, self.weeks, self.rows = [], [], []
        self.people, self.users, self.teams = [], [], []


def build_view(viewer: User, query: AgendaQuery, zone: ZoneInfo, now: datetime) -> AgendaView:
    today = now.astimezone(zone).date()
    users = active_users()
    teams = all_teams() if query.view == "team" else []
    days = view_days(query.view, query.day)
    people = shown_people(viewer, query, users)
    start = local_midnight(days[0], zone)
    end = local_midnight(days[-1] + timedelta(days=1), zone)
    # All-day events are dates where they were planned: a day's margin on both sides
    # catches those of other time zones, and the grids place them by their dates.
    items = load_items(
        viewer,
        start - timedelta(days=1),
        end + timedelta(days=1),
        [p.id for p in people],
        query.kinds,
        zone,
    )
    for item in items:
        item.fix_days(zone)
    items = [item for item in items if _within(item, days, zone)]
    mark_for_viewer(items, viewer)
    view = AgendaView(query, zone, today, days, people, users, teams)
    if query.view in ("week", "day"):
        view.columns = time_grid(items, days, zone, today)
    elif query.view == "month":
        view.weeks = month_grid(items, days, zone, today, query.day.month)
    else:
        view.rows = team_grid(items, days, zone, today, people, viewer)
    return view


def mark_for_viewer(items: list[AgendaItem], viewer: User) -> None:
    """What the viewer may see and do of each event, asked once per event: the occurrences
    of a series share it."""
    decided: dict[int, tuple[bool, bool]] = {}
    for item in items:
        event = item.event
        if event is None:
            continue
        if event.id not in decided:
            decided[event.id] = (
                event_details_visible(viewer, event),
                can_edit_event(viewer, event),
            )
        item.visible, item.editable = decided[event.id]


def _within(item: AgendaItem, days: list[date], zone: ZoneInfo) -> bool:
    first, last = item.days(zone)
    return first <= days[-1] and last >= days[0]
