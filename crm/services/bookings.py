"""Technicians' time: one place at a time, enforced by the database.

An intervention books each of its technicians with a TechnicianBooking row that
copies its times. Two active bookings of one technician never overlap:

- PostgreSQL refuses them itself with the exclusion constraint
  ex_technician_booking_overlap (migration 0006). The booking is written inside a
  SAVEPOINT, so that a refusal leaves the caller's transaction usable, and the
  refusal is turned into DoubleBooking naming the booking in the way.
- SQLite has no exclusion constraints: the check and the write happen inside
  BEGIN IMMEDIATE, which takes the database's single write lock first, so that no
  other connection can book between our check and our insert.

Ranges are half-open [start, end): a visit ending at 10:00 and one starting at
10:00 do not overlap (tsrange's default bounds say the same).
"""

from datetime import datetime

from flask_babel import format_datetime, format_time
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, joinedload

from crm.extensions import db
from crm.models import Intervention, TechnicianBooking, User
from crm.models.support import BOOKED_STATUSES
from crm.models.types import utcnow

OVERLAP_CONSTRAINT = "ex_technician_booking_overlap"
# Two transactions inserting overlapping bookings at once may each wait for the
# other inside the constraint check; PostgreSQL then aborts one with a deadlock.
# Trying again makes it wait for the winner and get the plain refusal.
DEADLOCK_RETRIES = 5


class DoubleBooking(Exception):
    """The technician is already booked, on `conflict`, at an overlapping time.

    What the message needs is copied when raised: the caller rolls back, which
    expires the rows, and a refusal may cross threads or sessions.
    """

    def __init__(self, technician: User, conflict: TechnicianBooking | None):
        super().__init__(technician.name)
        self.technician_id = technician.id
        self.technician_name = technician.name
        self.conflict_intervention_id = conflict.intervention_id if conflict else None
        self.conflict_title = conflict.intervention.title if conflict else None
        self.conflict_span = (conflict.starts_at, conflict.ends_at) if conflict else None

    @property
    def message(self) -> str:
        if self.conflict_span is None:
            return _("%(name)s is already booked at that time.", name=self.technician_name)
        starts_at, ends_at = self.conflict_span
        return _(
            "%(name)s is already booked from %(start)s to %(end)s on “%(title)s”.",
            name=self.technician_name,
            start=format_datetime(starts_at, "short"),
            end=format_time(ends_at, "short"),
            title=self.conflict_title,
        )

    def __str__(self) -> str:
        return self.message


class NotBookable(ValueError):
    """The intervention is done or cancelled, or the times or technicians make no sense."""


def find_conflict(
    technician_id: int, starts_at: datetime, ends_at: datetime, intervention_id: int | None
) -> TechnicianBooking | None:
    """The first active booking of the technician overlapping [starts_at, ends_at)."""
    query = (
        select(TechnicianBooking)
        .where(
            TechnicianBooking.technician_id == technician_id,
            TechnicianBooking.active.is_(True),
            TechnicianBooking.starts_at < ends_at,
            TechnicianBooking.ends_at > starts_at,
        )
        .options(joinedload(TechnicianBooking.intervention))
        .order_by(TechnicianBooking.starts_at)
        .limit(1)
    )
    if intervention_id is not None:
        query = query.where(TechnicianBooking.intervention_id != intervention_id)
    return db.session.scalars(query).first()


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def hold_write_lock(session: Session) -> None:
    """SQLite: make sure this transaction holds the write lock before it checks.

    pysqlite begins a transaction only before an INSERT/UPDATE/DELETE (SELECTs run
    outside any). If none has begun, BEGIN IMMEDIATE takes the lock now (waiting up
    to busy_timeout for another writer); if one has, it already wrote, so it already
    holds the lock, which SQLite keeps until the commit.
    """
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def book(
    intervention: Intervention,
    technicians: list[User],
    starts_at: datetime,
    ends_at: datetime,
) -> list[TechnicianBooking]:
    """Book `technicians` on the intervention for [starts_at, ends_at).

    The intervention takes these times (an unscheduled one becomes planned);
    technicians no longer on it are released; DoubleBooking if one of them is
    taken elsewhere. On a refusal the caller rolls back: nothing is half-saved.
    """
    if intervention.status not in ("unscheduled", *BOOKED_STATUSES):
        raise NotBookable(_l("A done or cancelled intervention cannot be scheduled."))
    if ends_at <= starts_at:
        raise NotBookable(_l("The end must be after the start."))
    chosen = list({technician.id: technician for technician in technicians}.values())
    if not chosen:
        raise NotBookable(_l("Choose at least one technician."))

    session = db.session
    hold_write_lock(session)
    if _is_sqlite(session):
        # Checked first, under the write lock: no other connection can book in between.
        for technician in chosen:
            conflict = find_conflict(technician.id, starts_at, ends_at, intervention.id)
            if conflict is not None:
                raise DoubleBooking(technician, conflict)
    if intervention.status == "unscheduled":
        intervention.status = "planned"
        intervention.status_changed_at = utcnow()
    intervention.starts_at, intervention.ends_at = starts_at, ends_at
    intervention.duration_minutes = int((ends_at - starts_at).total_seconds() // 60)
    intervention.updated_at = utcnow()  # the feeds' versions follow bookings through it
    session.add(intervention)
    session.flush()

    wanted = {technician.id for technician in chosen}
    for booking in list(intervention.bookings):
        if booking.technician_id not in wanted:
            session.delete(booking)
    session.flush()
    saved = [_save(intervention, technician) for technician in chosen]
    session.expire(intervention, ["bookings"])
    return saved


def _save(intervention: Intervention, technician: User) -> TechnicianBooking:
    session = db.session
    for _attempt in range(DEADLOCK_RETRIES):
        if _is_sqlite(session):
            return _write(intervention, technician)  # checked in book()
        savepoint = session.begin_nested()
        try:
            booking = _write(intervention, technician)
            savepoint.commit()
            return booking
        except IntegrityError as error:
            savepoint.rollback()
            if _constraint(error) != OVERLAP_CONSTRAINT:
                raise
            conflict = find_conflict(
                technician.id, intervention.starts_at, intervention.ends_at, intervention.id
            )
            raise DoubleBooking(technician, conflict) from error
        except OperationalError as error:
            savepoint.rollback()
            if getattr(error.orig, "sqlstate", None) != "40P01":  # deadlock detected
                raise
    raise DoubleBooking(technician, None)


def _write(intervention: Intervention, technician: User) -> TechnicianBooking:
    session = db.session
    booking = session.scalars(
        select(TechnicianBooking).where(
            TechnicianBooking.intervention_id == intervention.id,
            TechnicianBooking.technician_id == technician.id,
        )
    ).first()
    if booking is None:
        booking = TechnicianBooking(intervention_id=intervention.id, technician_id=technician.id)
        session.add(booking)
    booking.starts_at, booking.ends_at = intervention.starts_at, intervention.ends_at
    booking.active = intervention.status in BOOKED_STATUSES
    session.flush()
    return booking


def _constraint(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def shown_in_calendars() -> ColumnElement[bool]:
    """The bookings an agenda or a calendar feed shows: active ones, and those of a visit
    done, which stay where they happened (a feed that drops an event cancels it in the
    technician's calendar app). Cancelled and unscheduled visits are gone. The query
    joins Intervention."""
    return or_(TechnicianBooking.active.is_(True), Intervention.status == "done")


def in_calendars_between(people, start, end) -> tuple:
    """Conditions on TechnicianBooking (joined to Intervention): the bookings of these
    technicians that calendars show (shown_in_calendars) and that overlap [start, end)."""
    return (
        TechnicianBooking.technician_id.in_(people),
        shown_in_calendars(),
        TechnicianBooking.starts_at < end,
        TechnicianBooking.ends_at > start,
    )


def release(intervention: Intervention) -> None:
    """Free the technicians' time (done, cancelled, unscheduled): the rows stay as
    history of who was sent, inactive, so they never count against a new booking."""
    for booking in intervention.bookings:
        booking.active = False
    intervention.updated_at = utcnow()
    db.session.flush()
