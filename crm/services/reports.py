"""Reports: records of one dataset counted (or their amounts summed) by one or two dimensions.

A report is a question in the URL: a dataset (deals, activities, incidents, contacts), one or two
groupings, a measure, a period and the date it applies to, and optional filters. The answer is
one SQL query with GROUP BY over the records the user may see (the dataset's visible_*() scope),
so that a figure is the count of the list behind it. Every grouping, date, filter and measure is
looked up in the whitelists below: nothing the user types reaches the SQL text, values are bound
parameters.

Months and weeks are those of the user's time zone. The databases disagree on time zone
arithmetic (SQLite has none), so a record's month is found with a CASE over the UTC instants at
which the user's months begin, computed here: the same SQL on both databases, and exact across
daylight saving changes.

Periods (ReportingPeriod) are shared with the dashboards: this month, last month, this quarter,
last quarter, this year, a custom range, and for reports "any date".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from crm.extensions import db
from crm.labels import (
    ACTIVITY_LABELS,
    CHANNEL_LABELS,
    INCIDENT_KIND_LABELS,
    INCIDENT_STATUS_LABELS,
    PRIORITY_LABELS,
    STAGE_LABELS,
)
from crm.models import Activity, Company, Contact, Deal, Incident, Pipeline, Stage, Team, User
from crm.permissions import (
    has_permission,
    visible_activities,
    visible_contacts,
    visible_deals,
    visible_incidents,
)
from crm.services import forecast as fc

CENT = Decimal("0.01")
MAX_ROWS = 200  # beyond, the smallest rows are summed into one "Others" row
MAX_COLUMNS = 12  # the second grouping's values, as columns of the table and series of the chart
MAX_BUCKETS = 260  # months or weeks in one report: five years of weeks
MAX_CUSTOM_DAYS = 366 * 20


class ReportError(ValueError):
    """A parameter that cannot be used: `field` names the input, the message is for the user."""

    def __init__(self, field_name: str, message):
        super().__init__(message)
        self.field = field_name
        self.message = message


# ---- periods ------------------------------------------------------------------------------------

PERIOD_CHOICES = {
    "this_month": _l("This month"),
    "last_month": _l("Last month"),
    "this_quarter": _l("This quarter"),
    "last_quarter": _l("Last quarter"),
    "this_year": _l("This year"),
    "custom": _l("Custom dates"),
}
ANY_DATE = "all"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ReportingPeriod:
    """[start, end) in days of the user's time zone; both None for "any date".

    It has what crm.services.forecast reads of a Period (start, end, utc_bounds), so the
    forecast's objective, win rate and conversion take it as they are.
    """

    key: str
    start: date | None
    end: date | None

    @classmethod
    def parse(cls, args, today: date, *, allow_any: bool = False, default: str = "this_month"):
        key = (args.get("period") or default).strip()
        if key == ANY_DATE and allow_any:
            return cls(ANY_DATE, None, None)
        if key == "custom":
            return cls._custom(args.get("from", ""), args.get("to", ""), today)
        if key not in PERIOD_CHOICES:
            raise ReportError("period", _l("Choose a period from the list."))
        month = fc.Period.containing("month", today)
        quarter = fc.Period.containing("quarter", today)
        starts_ends = {
            "this_month": (month.start, month.end),
            "last_month": (month.previous.start, month.start),
            "this_quarter": (quarter.start, quarter.end),
            "last_quarter": (quarter.previous.start, quarter.start),
            "this_year": (date(today.year, 1, 1), date(today.year + 1, 1, 1)),
        }
        start, end = starts_ends[key]
        return cls(key, start, end)

    @classmethod
    def _custom(cls, first: str, last: str, today: date) -> ReportingPeriod:
        start, to = _parse_day(first, "from"), _parse_day(last, "to")
        if start is None and to is None:
            # Just switched to custom dates: start from this month so far, to be edited.
            return cls("custom", today.replace(day=1), today + timedelta(days=1))
        if start is None or to is None:
            raise ReportError(
                "from" if start is None else "to", _l("Enter both dates of the range.")
            )
        if to < start:
            raise ReportError("to", _l("The end date comes before the start date."))
        if (to - start).days > MAX_CUSTOM_DAYS:
            raise ReportError("to", _l("Pick a range of twenty years at most."))
        return cls("custom", start, to + timedelta(days=1))

    @property
    def is_any(self) -> bool:
        return self.start is None

    @property
    def last_day(self) -> date | None:
        return self.end - timedelta(days=1) if self.end else None

    def utc_bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        if self.start is None:
            raise ValueError("'any date' has no bounds")
        return local_midnight(self.start, tz), local_midnight(self.end, tz)

    def contains(self, day: date | None) -> bool:
        return day is not None and (self.is_any or self.start <= day < self.end)

    @property
    def forecast_period(self) -> fc.Period | None:
        """The calendar month or quarter this period is, if it is one: quotas exist only for those."""
        if self.start is None:
            return None
        for kind in ("month", "quarter"):
            candidate = fc.Period.containing(kind, self.start)
            if candidate.start == self.start and candidate.end == self.end:
                return candidate
        return None

    def as_args(self) -> dict:
        args = {"period": self.key}
        if self.key == "custom":
            args.update({"from": self.start.isoformat(), "to": self.last_day.isoformat()})
        return args


def _parse_day(text: str, field_name: str) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        if not _ISO_DATE.match(text):
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise ReportError(field_name, _l("Enter a date such as 2026-03-31.")) from None
    if not fc.MIN_YEAR <= day.year <= fc.MAX_YEAR:
        raise ReportError(field_name, _l("Enter a date such as 2026-03-31."))
    return day


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# ---- months and weeks --------------------------------------------------------------------------


def month_starts(first: date, end: date) -> list[date]:
    """The first days of the months from the month of `first` to the one holding end - 1 day,
    and the first day after them."""
    months = [first.replace(day=1)]
    while months[-1] < end:
        months.append(fc.add_months(months[-1], 1))
    return months


def week_starts(first: date, end: date) -> list[date]:
    """Mondays from the week of `first` on, and the Monday after the week holding end - 1 day."""
    weeks = [first - timedelta(days=first.weekday())]
    while weeks[-1] < end:
        weeks.append(weeks[-1] + timedelta(days=7))
    return weeks


def bucket_expression(column, bounds: list, is_date: bool, tz: ZoneInfo):
    """The index of the bucket [bounds[i], bounds[i+1]) the column's value falls in, as SQL;
    NULL for no date. Bounds are local days: compared as UTC instants for a timestamp column."""
    values = bounds if is_date else [local_midnight(day, tz) for day in bounds]
    whens = [(column < values[i + 1], i) for i in range(len(values) - 1)]
    return case(*whens, else_=None)


# ---- what a report is made of --------------------------------------------------------------------


@dataclass(frozen=True)
class Dimension:
    """A grouping: the SQL expression records are grouped by, how its values read, and the list
    filter that shows the records of one value (None: the list has no such filter)."""

    key: str
    label: object
    kind: str  # user, team, stage, pipeline, company, choice, text, month, week, custom
    column: Callable | None = None  # (Joins) -> SQL expression; None for month and week
    choices: dict | None = None  # value -> label, in display order (kind "choice")
    list_arg: str | None = None
    none_arg: str | None = None  # the list filter's value for "no value", when it has one


@dataclass(frozen=True)
class Filter:
    key: str
    label: object
    kind: str  # user, team, stage, pipeline, choice, text
    column: Callable
    choices: dict | None = None
    list_arg: str | None = None


@dataclass(frozen=True)
class DateField:
    key: str
    label: object
    column: object
    is_date: bool = False  # a Date column (days), not an aware timestamp


class Joins:
    """The tables a dataset's query joins on demand (the owner's team, the deal's stage...)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.needed: dict[str, object] = {}

    def owner(self):
        if "owner" not in self.needed:
            self.needed["owner"] = aliased(User, name="report_owner")
        return self.needed["owner"]

    def stage(self):
        if "stage" not in self.needed:
            self.needed["stage"] = aliased(Stage, name="report_stage")
        return self.needed["stage"]

    def company(self):
        if "company" not in self.needed:
            self.needed["company"] = aliased(Company, name="report_company")
        return self.needed["company"]

    def apply(self, query):
        model = self.dataset.model
        if "owner" in self.needed:
            owner = self.needed["owner"]
            query = query.outerjoin(owner, self.dataset.owner_column == owner.id)
        if "stage" in self.needed:
            stage = self.needed["stage"]
            query = query.join(stage, model.stage_id == stage.id)
        if "company" in self.needed:
            company = self.needed["company"]
            query = query.outerjoin(company, model.company_id == company.id)
        return query


@dataclass(frozen=True)
class Dataset:
    key: str
    label: object
    model: type
    scope: Callable
    owner_column: object
    owner_label: object
    dates: dict[str, DateField]
    dimensions: dict[str, Dimension]
    filters: dict[str, Filter]
    money: bool = False  # amounts can be summed (deals)
    custom_entity: str | None = None
    list_endpoint: str | None = None
    list_base: dict = field(default_factory=dict)  # arguments every list link carries
    # The expected-close windows the deal list knows, by period key.
    list_periods: dict = field(default_factory=dict)


def _choice(key, label, column, choices, list_arg=None) -> Dimension:
    return Dimension(key, label, "choice", column, choices=choices, list_arg=list_arg)


def _owner_dimension(label, list_arg=None, none_arg=None) -> Dimension:
    return Dimension(
        "owner",
        label,
        "user",
        lambda j: j.dataset.owner_column,
        list_arg=list_arg,
        none_arg=none_arg,
    )


def _team_of_owner(list_arg=None) -> Dimension:
    return Dimension("team", _l("Team"), "team", lambda j: j.owner().team_id, list_arg=list_arg)


def _month_week() -> dict[str, Dimension]:
    return {
        "month": Dimension("month", _l("Month"), "month"),
        "week": Dimension("week", _l("Week"), "week"),
    }


DEAL_STATUS = {"open": _l("Open"), "won": _l("Won"), "lost": _l("Lost")}

DEALS = Dataset(
    key="deals",
    label=_l("Deals"),
    model=Deal,
    scope=visible_deals,
    owner_column=Deal.owner_id,
    owner_label=_l("Owner"),
    dates={
        "created": DateField("created", _l("Created"), Deal.created_at),
        "closed": DateField("closed", _l("Closed"), Deal.closed_at),
        "expected_close": DateField(
            "expected_close", _l("Expected close"), Deal.expected_close, is_date=True
        ),
    },
    dimensions={
        "owner": _owner_dimension(_l("Owner"), list_arg="owner"),
        "team": _team_of_owner(list_arg="team"),
        "pipeline": Dimension(
            "pipeline", _l("Pipeline"), "pipeline", lambda j: Deal.pipeline_id, list_arg="pipeline"
        ),
        "stage": Dimension(
            "stage", _l("Stage"), "stage", lambda j: Deal.stage_id, list_arg="stage"
        ),
        "status": _choice("status", _l("Status"), lambda j: j.stage().kind, DEAL_STATUS),
        "source": Dimension("source", _l("Source"), "text", lambda j: Deal.source),
        "company": Dimension("company", _l("Company"), "company", lambda j: Deal.company_id),
        "country": Dimension("country", _l("Country"), "text", lambda j: j.company().country),
        **_month_week(),
    },
    filters={
        "owner": Filter("owner", _l("Owner"), "user", lambda j: Deal.owner_id, list_arg="owner"),
        "team": Filter("team", _l("Team"), "team", lambda j: j.owner().team_id, list_arg="team"),
        "pipeline": Filter(
            "pipeline", _l("Pipeline"), "pipeline", lambda j: Deal.pipeline_id, list_arg="pipeline"
        ),
        "stage": Filter("stage", _l("Stage"), "stage", lambda j: Deal.stage_id, list_arg="stage"),
        "status": Filter(
            "status", _l("Status"), "choice", lambda j: j.stage().kind, choices=DEAL_STATUS
        ),
    },
    money=True,
    custom_entity="deal",
    list_endpoint="deals.list_view",
    list_periods={"this_month": "this_month", "this_quarter": "this_quarter"},
)

ACTIVITY_KINDS = {k: v for k, v in ACTIVITY_LABELS.items() if k != "system"}

ACTIVITIES = Dataset(
    key="activities",
    label=_l("Activities"),
    model=Activity,
    scope=visible_activities,
    owner_column=Activity.author_id,
    owner_label=_l("Author"),
    dates={"occurred": DateField("occurred", _l("Occurred"), Activity.occurred_at)},
    dimensions={
        "owner": _owner_dimension(_l("Author")),
        "team": _team_of_owner(),
        "kind": _choice("kind", _l("Kind"), lambda j: Activity.kind, ACTIVITY_KINDS),
        "company": Dimension("company", _l("Company"), "company", lambda j: Activity.company_id),
        **_month_week(),
    },
    filters={
        "owner": Filter("owner", _l("Author"), "user", lambda j: Activity.author_id),
        "team": Filter("team", _l("Team"), "team", lambda j: j.owner().team_id),
        "kind": Filter(
            "kind", _l("Kind"), "choice", lambda j: Activity.kind, choices=ACTIVITY_KINDS
        ),
    },
)

INCIDENTS = Dataset(
    key="incidents",
    label=_l("Incidents"),
    model=Incident,
    scope=visible_incidents,
    owner_column=Incident.assignee_id,
    owner_label=_l("Assignee"),
    dates={
        "created": DateField("created", _l("Created"), Incident.created_at),
        "resolved": DateField("resolved", _l("Resolved"), Incident.resolved_at),
        "closed": DateField("closed", _l("Closed"), Incident.closed_at),
    },
    dimensions={
        "owner": _owner_dimension(_l("Assignee")),
        "team": Dimension("team", _l("Team"), "team", lambda j: Incident.team_id, list_arg="team"),
        "status": _choice(
            "status", _l("Status"), lambda j: Incident.status, INCIDENT_STATUS_LABELS, "status"
        ),
        "priority": _choice(
            "priority", _l("Priority"), lambda j: Incident.priority, PRIORITY_LABELS, "priority"
        ),
        "kind": _choice("kind", _l("Kind"), lambda j: Incident.kind, INCIDENT_KIND_LABELS, "kind"),
        "channel": _choice("channel", _l("Channel"), lambda j: Incident.channel, CHANNEL_LABELS),
        "company": Dimension("company", _l("Company"), "company", lambda j: Incident.company_id),
        **_month_week(),
    },
    filters={
        "owner": Filter("owner", _l("Assignee"), "user", lambda j: Incident.assignee_id),
        "team": Filter("team", _l("Team"), "team", lambda j: Incident.team_id, list_arg="team"),
        "status": Filter(
            "status",
            _l("Status"),
            "choice",
            lambda j: Incident.status,
            choices=INCIDENT_STATUS_LABELS,
            list_arg="status",
        ),
        "priority": Filter(
            "priority",
            _l("Priority"),
            "choice",
            lambda j: Incident.priority,
            choices=PRIORITY_LABELS,
            list_arg="priority",
        ),
        "kind": Filter(
            "kind",
            _l("Kind"),
            "choice",
            lambda j: Incident.kind,
            choices=INCIDENT_KIND_LABELS,
            list_arg="kind",
        ),
    },
    custom_entity="incident",
    list_endpoint="incidents.index",
    list_base={"view": "all"},
)

CONTACTS = Dataset(
    key="contacts",
    label=_l("Contacts"),
    model=Contact,
    scope=visible_contacts,
    owner_column=Contact.owner_id,
    owner_label=_l("Owner"),
    dates={"created": DateField("created", _l("Created"), Contact.created_at)},
    dimensions={
        "owner": _owner_dimension(_l("Owner"), list_arg="owner", none_arg="none"),
        "team": _team_of_owner(),
        "stage": _choice(
            "stage", _l("Lifecycle stage"), lambda j: Contact.stage, STAGE_LABELS, "stage"
        ),
        "source": Dimension("source", _l("Source"), "text", lambda j: Contact.source),
        "company": Dimension(
            "company", _l("Company"), "company", lambda j: Contact.company_id, list_arg="company"
        ),
        "country": Dimension("country", _l("Country"), "text", lambda j: Contact.country),
        **_month_week(),
    },
    filters={
        "owner": Filter("owner", _l("Owner"), "user", lambda j: Contact.owner_id, list_arg="owner"),
        "stage": Filter(
            "stage",
            _l("Lifecycle stage"),
            "choice",
            lambda j: Contact.stage,
            choices=STAGE_LABELS,
            list_arg="stage",
        ),
        "source": Filter("source", _l("Source"), "text", lambda j: Contact.source),
    },
    custom_entity="contact",
    list_endpoint="contacts.index",
)

# The campaigns work adds its dataset here (sent, opened, replied, leads and deals won per
# campaign): a Dataset over Campaign with its scope, dates and groupings. The report page
# lists whatever this dict holds, in this order.
DATASETS: dict[str, Dataset] = {
    "deals": DEALS,
    "activities": ACTIVITIES,
    "incidents": INCIDENTS,
    "contacts": CONTACTS,
}

MEASURES = {
    "count": _l("Number of records"),
    "amount_sum": _l("Sum of amounts"),
    "amount_avg": _l("Average amount"),
}
MONEY_MEASURES = ("amount_sum", "amount_avg")


def custom_dimensions(dataset: Dataset) -> dict[str, Dimension]:
    """The admin's choice fields of this dataset's records, as groupings ("cf_<key>").

    Until the custom fields service answers (it may still be a stub), there are none."""
    if not dataset.custom_entity:
        return {}
    from crm.services import custom_fields

    try:
        definitions = custom_fields.definitions(dataset.custom_entity)
    except NotImplementedError:
        return {}
    found = {}
    for definition in definitions:
        if definition.field_type != "choice":
            continue
        key = definition.key

        def column(j, key=key):
            return j.dataset.model.custom_fields[key].as_string()

        choices = {value: value for value in definition.choices or []}
        found[f"cf_{key}"] = Dimension(f"cf_{key}", definition.label, "custom", column, choices)
    return found


def measures_for(dataset: Dataset, user: User) -> dict:
    """Amounts only for deals, and only for whom may see what deals are worth."""
    if dataset.money and has_permission(user, "deals.see_amounts"):
        return MEASURES
    return {"count": MEASURES["count"]}


# ---- the question -------------------------------------------------------------------------------------


@dataclass
class ReportQuery:
    dataset: Dataset
    dimensions: list[Dimension]  # one or two
    measure: str
    date_field: DateField
    period: ReportingPeriod
    filters: dict[str, object]  # filter key -> parsed value
    currency: str

    @property
    def is_money(self) -> bool:
        return self.measure in MONEY_MEASURES

    def as_args(self, **changes) -> dict:
        args = {
            "dataset": self.dataset.key,
            "group": self.dimensions[0].key,
            "group2": self.dimensions[1].key if len(self.dimensions) > 1 else "",
            "measure": self.measure,
            "date": self.date_field.key,
            **self.period.as_args(),
        }
        if self.is_money:
            args["currency"] = self.currency
        args.update({key: value for key, value in self.filters.items()})
        args.update(changes)
        return {k: v for k, v in args.items() if v not in ("", None)}


_CURRENCY = re.compile(r"^[A-Z]{3}$")


def parse_query(args, user: User, today: date, default_currency: str = "EUR") -> ReportQuery:
    """The report the URL asks for; raises ReportError naming the first wrong input."""
    dataset = DATASETS.get(args.get("dataset") or "deals")
    if dataset is None:
        raise ReportError("dataset", _l("Choose a dataset from the list."))
    dimensions = {**dataset.dimensions, **custom_dimensions(dataset)}
    default_group = next(iter(dataset.dimensions))
    first = dimensions.get(args.get("group") or default_group)
    if first is None:
        raise ReportError("group", _l("Choose a grouping from the list."))
    chosen = [first]
    second_key = args.get("group2") or ""
    if second_key:
        second = dimensions.get(second_key)
        if second is None:
            raise ReportError("group2", _l("Choose a grouping from the list."))
        if second.key == first.key:
            raise ReportError("group2", _l("Choose a second grouping other than the first."))
        chosen.append(second)
    measure = args.get("measure") or "count"
    if measure not in measures_for(dataset, user):
        raise ReportError("measure", _l("This measure is not available for this dataset."))
    date_field = dataset.dates.get(args.get("date") or next(iter(dataset.dates)))
    if date_field is None:
        raise ReportError("date", _l("Choose a date from the list."))
    period = ReportingPeriod.parse(args, today, allow_any=True, default=ANY_DATE)
    filters = {}
    for key, spec in dataset.filters.items():
        raw = (args.get(key) or "").strip()
        if raw:
            filters[key] = _filter_value(spec, raw)
    currency = (args.get("currency") or default_currency).strip().upper()
    if not _CURRENCY.match(currency):
        raise ReportError("currency", _l("Enter a currency code such as EUR."))
    return ReportQuery(dataset, chosen, measure, date_field, period, filters, currency)


def _filter_value(spec: Filter, raw: str):
    if spec.kind in ("user", "team", "stage", "pipeline"):
        if not raw.isdigit() or len(raw) > 12:
            raise ReportError(spec.key, _l("Choose a value from the list."))
        return int(raw)
    if spec.kind == "choice":
        if raw not in spec.choices:
            raise ReportError(spec.key, _l("Choose a value from the list."))
        return raw
    return raw[:60]


# ---- the answer ------------------------------------------------------------------------------------------


@dataclass
class Cell:
    count: int = 0
    amount: Decimal = Decimal("0")

    def add(self, other: Cell) -> None:
        self.count += other.count
        self.amount += other.amount

    def value(self, measure: str):
        if measure == "amount_sum":
            return self.amount
        if measure == "amount_avg":
            if not self.count:
                return None
            return (self.amount / self.count).quantize(CENT, ROUND_HALF_UP)
        return self.count


OTHERS = "__others__"


@dataclass
class Header:
    """A row or a column: the dimension's value (None: no value), how it reads, where it sorts."""

    key: object
    label: object = None  # text, a lazy string, or a date for months and weeks
    kind: str = "text"
    order: tuple = ()


@dataclass
class Report:
    query: ReportQuery
    rows: list[Header]
    columns: list[Header]  # [] for a one-dimension report
    cells: dict[tuple, Cell]
    row_totals: dict[object, Cell]
    column_totals: dict[object, Cell]
    total: Cell
    other_currencies: dict[str, int] = field(default_factory=dict)
    hidden_rows: int = 0  # rows summed into "Others"

    def cell(self, row_key, column_key=None) -> Cell:
        return self.cells.get((row_key, column_key), Cell())

    def value(self, cell: Cell):
        return cell.value(self.query.measure)

    def list_args(self, row_key, column_key=None) -> dict | None:
        """The list filters showing exactly the records of this cell, or None when the list
        cannot (no such list, a grouping or filter it has no filter for, a period it cannot
        apply). A total passes None for the dimension it sums over."""
        query, dataset = self.query, self.query.dataset
        if not dataset.list_endpoint or OTHERS in (row_key, column_key):
            return None
        args = dict(dataset.list_base)
        if not query.period.is_any:
            window = dataset.list_periods.get(query.period.key)
            if window is None or query.date_field.key != "expected_close":
                return None
            args["close"] = window
        if query.is_money:
            return None  # the lists do not filter by currency
        for key, value in query.filters.items():
            spec = dataset.filters[key]
            if spec.list_arg is None:
                return None
            args[spec.list_arg] = value
        keys = [row_key] + ([column_key] if len(query.dimensions) > 1 else [])
        for dimension, key in zip(query.dimensions, keys, strict=True):
            if key is ALL:
                continue
            if dimension.list_arg is None:
                return None
            if key is None:
                if dimension.none_arg is None:
                    return None
                key = dimension.none_arg
            if args.get(dimension.list_arg, key) != key:
                return None  # a filter and a grouping on the same list argument disagree
            args[dimension.list_arg] = key
        return args

    @property
    def list_endpoint(self) -> str | None:
        return self.query.dataset.list_endpoint


# "Every value of this dimension": a total's place in list_args().
ALL = object()


def run(user: User, query: ReportQuery) -> Report:
    """The report's figures: one GROUP BY query, then the names of what it grouped by."""
    dataset = query.dataset
    tz = fc.user_timezone(user)
    joins = Joins(dataset)
    conditions = [dataset.model.id.in_(dataset.scope(user).with_only_columns(dataset.model.id))]
    conditions += _period_conditions(query, tz)
    for key, value in query.filters.items():
        conditions.append(dataset.filters[key].column(joins) == value)
    if query.is_money:
        conditions.append(Deal.currency == query.currency)

    buckets = {}
    group_columns = []
    for dimension in query.dimensions:
        if dimension.kind in ("month", "week"):
            bounds = _bucket_bounds(user, query, dimension.kind, conditions, joins, tz)
            buckets[dimension.key] = bounds
            expression = bucket_expression(
                query.date_field.column, bounds, query.date_field.is_date, tz
            )
        else:
            expression = dimension.column(joins)
        group_columns.append(expression.label(f"g{len(group_columns)}"))

    measures = [func.count().label("n")]
    if query.is_money:
        measures.append(func.coalesce(func.sum(Deal.amount), 0).label("amount"))
    statement = joins.apply(select(*group_columns, *measures).select_from(dataset.model))
    statement = statement.where(*conditions).group_by(*group_columns)

    cells: dict[tuple, Cell] = {}
    for row in db.session.execute(statement):
        keys = tuple(row[: len(group_columns)])
        if len(keys) == 1:
            keys = (keys[0], None)
        amount = Decimal(row.amount).quantize(CENT) if query.is_money else Decimal("0")
        cells[keys] = Cell(row.n, amount)

    row_keys = {k[0] for k in cells}
    column_keys = {k[1] for k in cells} if len(query.dimensions) > 1 else set()
    rows = _headers(query.dimensions[0], row_keys, buckets)
    columns = _headers(query.dimensions[1], column_keys, buckets) if column_keys else []
    report = _assemble(query, rows, columns, cells)
    if query.is_money:
        report.other_currencies = _other_currencies(user, query, tz)
    return report


def _period_conditions(query: ReportQuery, tz: ZoneInfo) -> list:
    if query.period.is_any:
        return []
    column = query.date_field.column
    if query.date_field.is_date:
        return [column >= query.period.start, column < query.period.end]
    start, end = query.period.utc_bounds(tz)
    return [column >= start, column < end]


def _bucket_bounds(user, query: ReportQuery, kind: str, conditions, joins, tz) -> list[date]:
    """The local days at which the months (or weeks) of the report begin, and the day after."""
    period = query.period
    if period.is_any:
        column = query.date_field.column
        found = joins.apply(
            select(func.min(column), func.max(column)).select_from(query.dataset.model)
        ).where(*conditions)
        low, high = db.session.execute(found).one()
        if low is None:
            low = high = fc.local_today(user)
        elif not query.date_field.is_date:
            low, high = low.astimezone(tz).date(), high.astimezone(tz).date()
        first, end = low, high + timedelta(days=1)
    else:
        first, end = period.start, period.end
    bounds = month_starts(first, end) if kind == "month" else week_starts(first, end)
    if len(bounds) - 1 > MAX_BUCKETS:
        raise ReportError("group", _l("Too many months or weeks to show: pick a shorter period."))
    return bounds


def _headers(dimension: Dimension, keys: set, buckets: dict) -> list[Header]:
    """Rows (or columns) in their natural order: choices as listed, stages by pipeline, months
    in time, names alphabetically; "no value" last."""
    present = [k for k in keys if k is not None]
    headers = []
    if dimension.kind in ("month", "week"):
        bounds = buckets[dimension.key]
        headers = [Header(i, bounds[i], dimension.kind, (i,)) for i in sorted(present)]
    elif dimension.kind in ("choice", "custom"):
        order = list(dimension.choices or {})
        for key in present:
            rank = order.index(key) if key in order else len(order)
            label = (dimension.choices or {}).get(key, key)
            headers.append(Header(key, label, "text", (rank, str(key))))
    elif dimension.kind == "text":
        headers = [Header(k, k, "text", (str(k).lower(),)) for k in present]
    else:
        headers = _named_headers(dimension.kind, present)
    headers.sort(key=lambda h: h.order)
    if None in keys:
        headers.append(Header(None, None, "none", (float("inf"),)))
    return headers


_NAMES = {
    "user": (User, User.name),
    "team": (Team, Team.name),
    "pipeline": (Pipeline, Pipeline.name),
    "company": (Company, Company.name),
}


def _named_headers(kind: str, ids: list) -> list[Header]:
    if not ids:
        return []
    if kind == "stage":
        query = (
            select(Stage.id, Stage.name, Pipeline.name, Pipeline.position, Stage.position)
            .join(Pipeline, Stage.pipeline_id == Pipeline.id)
            .where(Stage.id.in_(ids))
        )
        several = (
            db.session.scalar(
                select(func.count(func.distinct(Stage.pipeline_id))).where(Stage.id.in_(ids))
            )
            > 1
        )
        return [
            Header(sid, f"{pipeline} · {name}" if several else name, "text", (ppos, spos, sid))
            for sid, name, pipeline, ppos, spos in db.session.execute(query)
        ]
    model, name_column = _NAMES[kind]
    names = dict(db.session.execute(select(model.id, name_column).where(model.id.in_(ids))).all())
    return [
        Header(i, names.get(i, f"#{i}"), "text", (str(names.get(i, "")).lower(), i)) for i in ids
    ]


def _assemble(query, rows: list[Header], columns: list[Header], cells) -> Report:
    # Rows beyond MAX_ROWS: the smallest ones (by count) are summed into "Others".
    hidden = 0
    if len(rows) > MAX_ROWS:
        by_size = sorted(
            rows, key=lambda h: -sum(c.count for k, c in cells.items() if k[0] == h.key)
        )
        kept = {h.key for h in by_size[: MAX_ROWS - 1]}
        hidden = len(rows) - len(kept)
        merged: dict[tuple, Cell] = {}
        for (r, c), cell in cells.items():
            key = (r if r in kept else OTHERS, c)
            merged.setdefault(key, Cell()).add(cell)
        cells = merged
        rows = [h for h in rows if h.key in kept] + [Header(OTHERS, None, "others")]
    if len(columns) > MAX_COLUMNS:
        by_size = sorted(
            columns, key=lambda h: -sum(c.count for k, c in cells.items() if k[1] == h.key)
        )
        kept = {h.key for h in by_size[: MAX_COLUMNS - 1]}
        merged = {}
        for (r, c), cell in cells.items():
            merged.setdefault((r, c if c in kept else OTHERS), Cell()).add(cell)
        cells = merged
        columns = [h for h in columns if h.key in kept] + [Header(OTHERS, None, "others")]
    row_totals: dict[object, Cell] = {}
    column_totals: dict[object, Cell] = {}
    total = Cell()
    for (r, c), cell in cells.items():
        row_totals.setdefault(r, Cell()).add(cell)
        column_totals.setdefault(c, Cell()).add(cell)
        total.add(cell)
    return Report(query, rows, columns, cells, row_totals, column_totals, total, hidden_rows=hidden)


def _other_currencies(user, query: ReportQuery, tz) -> dict[str, int]:
    """Deals the sum leaves out because their currency is another: never converted, but said."""
    dataset = query.dataset
    joins = Joins(dataset)
    conditions = [dataset.model.id.in_(dataset.scope(user).with_only_columns(dataset.model.id))]
    conditions += _period_conditions(query, tz)
    for key, value in query.filters.items():
        conditions.append(dataset.filters[key].column(joins) == value)
    statement = (
        joins.apply(select(Deal.currency, func.count()).select_from(Deal).where(*conditions))
        .where(Deal.currency != query.currency)
        .group_by(Deal.currency)
    )
    return dict(db.session.execute(statement).all())


# ---- the table as rows of text, for the CSV file ------------------------------------------------------


def table_rows(report: Report, label: Callable[[Header], str]) -> tuple[list[str], list[list]]:
    """(header, rows) of the table as shown, totals included; numbers as plain figures."""
    query = report.query
    measure = query.measure
    first = str(query.dimensions[0].label)
    if report.columns:
        header = [first + " / " + str(query.dimensions[1].label)]
        header += [label(c) for c in report.columns] + [str(_l("Total"))]
    else:
        header = [first, str(MEASURES[measure])]
    body = []
    for row in report.rows:
        line = [label(row)]
        if report.columns:
            line += [_plain(report.value(report.cell(row.key, c.key))) for c in report.columns]
        line.append(_plain(report.value(report.row_totals.get(row.key, Cell()))))
        body.append(line)
    footer = [str(_l("Total"))]
    if report.columns:
        footer += [
            _plain(report.value(report.column_totals.get(c.key, Cell()))) for c in report.columns
        ]
    footer.append(_plain(report.value(report.total)))
    body.append(footer)
    return header, body


def _plain(value) -> str:
    return "" if value is None else str(value)


# ---- the form's choices ----------------------------------------------------------------------------


def filter_options(user: User, dataset: Dataset) -> dict[str, list[tuple[object, str]]]:
    """The values each filter of `dataset` offers, (value, label), in one query per kind."""
    options: dict[str, list] = {}
    kinds = {spec.kind for spec in dataset.filters.values()}
    users = teams = stages = pipelines = []
    if "user" in kinds:
        users = db.session.execute(
            select(User.id, User.name).where(User.active.is_(True)).order_by(User.name, User.id)
        ).all()
    if "team" in kinds:
        teams = db.session.execute(select(Team.id, Team.name).order_by(Team.name)).all()
    if "stage" in kinds:
        stages = db.session.execute(
            select(Stage.id, Pipeline.name, Stage.name)
            .join(Pipeline, Stage.pipeline_id == Pipeline.id)
            .order_by(Pipeline.position, Pipeline.id, Stage.position)
        ).all()
    if "pipeline" in kinds:
        pipelines = db.session.execute(
            select(Pipeline.id, Pipeline.name).order_by(Pipeline.position, Pipeline.id)
        ).all()
    for key, spec in dataset.filters.items():
        if spec.kind == "user":
            options[key] = [(i, name) for i, name in users]
        elif spec.kind == "team":
            options[key] = [(i, name) for i, name in teams]
        elif spec.kind == "stage":
            options[key] = [(i, f"{p} · {s}") for i, p, s in stages]
        elif spec.kind == "pipeline":
            options[key] = [(i, name) for i, name in pipelines]
        elif spec.kind == "choice":
            options[key] = list(spec.choices.items())
        else:
            options[key] = []
    return options


def dimensions_of(dataset: Dataset) -> dict[str, Dimension]:
    return {**dataset.dimensions, **custom_dimensions(dataset)}
