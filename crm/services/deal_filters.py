"""The filters shared by the deal board and the deal list, read from the URL."""

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Select, select

from crm.models import Deal, User
from crm.services import custom_fields
from crm.services.text_search import search_condition

CLOSE_WINDOWS = ("overdue", "this_month", "next_month", "this_quarter")


@dataclass
class DealFilters:
    q: str = ""
    owner: str = ""  # "", "me", or a user id
    team: int | None = None
    close: str = ""  # one of CLOSE_WINDOWS
    pipeline: int | None = None
    stage: int | None = None  # the board's "and N more" opens the list on one column
    # Custom fields' filters: {key: value}, "cf_<key>=value" in the address.
    custom: dict = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "DealFilters":
        close = args.get("close", "")
        return cls(
            q=args.get("q", "").strip()[:100],
            owner=args.get("owner", ""),
            team=args.get("team", type=int),
            close=close if close in CLOSE_WINDOWS else "",
            pipeline=args.get("pipeline", type=int),
            stage=args.get("stage", type=int),
            custom=custom_fields.custom_filter_args("deal", args),
        )

    def as_args(self, **changes) -> dict:
        values = {
            "q": self.q,
            "owner": self.owner,
            "team": self.team,
            "close": self.close,
            "pipeline": self.pipeline,
            "stage": self.stage,
            **{f"cf_{key}": value for key, value in self.custom.items()},
        }
        values.update(changes)
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.q or self.owner or self.team or self.close or self.stage or self.custom)

    def apply(self, query: Select, user: User, today: date | None = None) -> Select:
        today = today or date.today()
        query = query.where(*search_condition(Deal.title_key, self.q))
        if self.owner == "me":
            query = query.where(Deal.owner_id == user.id)
        elif self.owner.isdigit():
            query = query.where(Deal.owner_id == int(self.owner))
        if self.team:
            query = query.where(Deal.owner_id.in_(select(User.id).where(User.team_id == self.team)))
        if self.pipeline:
            query = query.where(Deal.pipeline_id == self.pipeline)
        if self.stage:
            query = query.where(Deal.stage_id == self.stage)
        query = query.where(*custom_fields.filter_conditions("deal", self.custom))
        if self.close == "overdue":
            query = query.where(Deal.stage.has(kind="open"))
        if self.close:
            start, end = close_window(self.close, today)
            if start is not None:
                query = query.where(Deal.expected_close >= start)
            query = query.where(Deal.expected_close < end)
        return query


def close_window(name: str, today: date) -> tuple[date | None, date]:
    """[start, end) of an expected-close filter; overdue has no start."""
    month_start = today.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    if name == "overdue":
        return None, today
    if name == "this_month":
        return month_start, next_month
    if name == "next_month":
        return next_month, (next_month + timedelta(days=32)).replace(day=1)
    quarter_start = month_start.replace(month=3 * ((today.month - 1) // 3) + 1)
    quarter_end = quarter_start
    for _ in range(3):
        quarter_end = (quarter_end + timedelta(days=32)).replace(day=1)
    return quarter_start, quarter_end
