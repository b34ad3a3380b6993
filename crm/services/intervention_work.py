"""The technician's side of an intervention: the day's visits, the status taps on the
way (en route, on site) and the report that closes the visit.

Each status change and the report are claimed with a compare-and-set UPDATE on the
intervention's status, so that a double tap, two phones or a technician and the
office saving at once record a step once: the second one finds the status moved on.
Everything a report writes (the intervention, its bookings, the incident note and
status, the customer's timeline) is added to the caller's transaction: the route
commits once, or nothing is saved.
"""

import base64
import binascii
import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from math import ceil
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from crm.extensions import db
from crm.models import Incident, IncidentMessage, Intervention, TechnicianBooking, User
from crm.permissions import ADMIN, MANAGER, SUPPORT, TECHNICIAN
from crm.services import bookings, sla
from crm.services.reminders import now
from crm.services.timeline import record_activity

# The taps on the way, and where each may come from: a technician who forgot to tap
# "En route" can still say they are on site.
STEPS = {"en_route": ("planned",), "on_site": ("planned", "en_route")}
# A report may be written from any open state (a paper report typed in afterwards).
REPORTABLE = ("planned", "en_route", "on_site")
OPEN_STATUSES = ("unscheduled", "planned", "en_route", "on_site")
# Incident statuses in which a visit's report resolves the incident.
INCIDENT_OPEN = ("new", "open", "waiting")

SIGNATURE_PREFIX = "data:image/png;base64,"
SIGNATURE_MAX_BYTES = 200 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A signature pad is at most a phone's width times its pixel ratio: bigger is not one.
SIGNATURE_MAX_PIXELS = 4000 * 2000
MAX_PARTS = 30
MAX_QUANTITY = 9999


class WorkRefused(Exception):
    """The step does not apply to the intervention as it stands (message for the user)."""


class SignatureInvalid(ValueError):
    """The drawn signature is not a usable PNG (message for the user)."""


# ---- who and what ------------------------------------------------------------


def can_work(user: User, intervention: Intervention) -> bool:
    """Office roles work any intervention; a technician those they are booked on."""
    if user.role in (ADMIN, MANAGER, SUPPORT):
        return True
    if user.role == TECHNICIAN:
        return any(booking.technician_id == user.id for booking in intervention.bookings)
    return False


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants of a local day (23 or 25 hours on a daylight-saving change)."""
    start = datetime.combine(day, time.min, tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def day_of(technician: User, day: date, zone: ZoneInfo) -> list[Intervention]:
    """A technician's visits of one local day in time order: booked ones and those done.

    Cancelled visits and bookings taken away by the planner are not on the list.
    Everything the phone view shows is loaded here, in a fixed number of queries.
    """
    start, end = day_bounds(day, zone)
    query = (
        select(TechnicianBooking)
        .join(TechnicianBooking.intervention)
        .where(
            TechnicianBooking.technician_id == technician.id,
            TechnicianBooking.starts_at < end,
            TechnicianBooking.ends_at > start,
            or_(TechnicianBooking.active.is_(True), Intervention.status == "done"),
        )
        .options(
            contains_eager(TechnicianBooking.intervention).options(
                selectinload(Intervention.contact),
                selectinload(Intervention.company),
                selectinload(Intervention.incident),
                selectinload(Intervention.bookings).joinedload(TechnicianBooking.technician),
            )
        )
        .order_by(TechnicianBooking.starts_at, Intervention.id)
    )
    return [booking.intervention for booking in db.session.scalars(query).unique()]


def loaded(intervention_id: int) -> Intervention | None:
    """One intervention with what its card and report page show."""
    query = (
        select(Intervention)
        .where(Intervention.id == intervention_id)
        .options(
            joinedload(Intervention.contact),
            joinedload(Intervention.company),
            joinedload(Intervention.incident),
            selectinload(Intervention.bookings).joinedload(TechnicianBooking.technician),
        )
    )
    return db.session.scalars(query).first()


def next_step(intervention: Intervention) -> str | None:
    """The one big button of the card: "en_route", "on_site", "report", or None."""
    return {"planned": "en_route", "en_route": "on_site", "on_site": "report"}.get(
        intervention.status
    )


def customer_phone(intervention: Intervention) -> str | None:
    for record in (intervention.contact, intervention.company):
        if record is not None and record.phone:
            return record.phone
    return None


def visit_address(intervention: Intervention) -> str | None:
    """Where to go: the planned address, else the customer's postal address."""
    if intervention.address and intervention.address.strip():
        return intervention.address.strip()
    for record in (intervention.contact, intervention.company):
        if record is None:
            continue
        parts = [record.street, " ".join(p for p in (record.postcode, record.city) if p)]
        parts.append(record.country)
        text = ", ".join(p for p in parts if p)
        if text:
            return text
    return None


def minutes_on_site(intervention: Intervention, at: datetime | None = None) -> int:
    """The time to propose in the report: since arrival on site, else the planned length."""
    at = at or now()
    if intervention.status == "on_site" and intervention.status_changed_at is not None:
        return max(1, ceil((at - intervention.status_changed_at).total_seconds() / 60))
    return intervention.duration_minutes or 60


# ---- the taps on the way -------------------------------------------------------


def _claim(intervention: Intervention, allowed_from: tuple[str, ...], values: dict) -> bool:
    """Move the intervention on if its status is still one of `allowed_from` (compare-and-set)."""
    result = db.session.execute(
        update(Intervention)
        .where(Intervention.id == intervention.id, Intervention.status.in_(allowed_from))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(intervention)
    return result.rowcount == 1


def _timeline_targets(intervention: Intervention) -> dict:
    return {"contact": intervention.contact, "company": intervention.company}


def change_status(
    intervention: Intervention, status: str, actor: User, at: datetime | None = None
) -> bool:
    """Record a tap on "En route" or "On site". False when it was already recorded
    (a double tap); WorkRefused when the visit is not at a step where it applies."""
    if status not in STEPS:
        raise WorkRefused(_("This step does not exist."))
    at = at or now()
    if not _claim(intervention, STEPS[status], {"status": status, "status_changed_at": at}):
        if intervention.status == status:
            return False
        raise WorkRefused(_("This visit cannot go to that step any more: it changed meanwhile."))
    if intervention.contact is not None or intervention.company is not None:
        # A system entry keeps the customer's timeline readable: the report is the visit.
        record_activity(
            actor,
            "system",
            occurred_at=at,
            data={
                "event": "intervention_status",
                "status": status,
                "intervention": intervention.id,
                "title": intervention.title,
                "technician": actor.name,
            },
            incident_id=intervention.incident_id,
            **_timeline_targets(intervention),
        )
    return True


# ---- the report -------------------------------------------------------------------


@dataclass
class Report:
    work_done: str
    time_spent_minutes: int
    parts: list[tuple[str, int]] = field(default_factory=list)
    signed_by: str | None = None
    signature_png: str | None = None  # base64 of a checked PNG (see check_signature)
    absent_reason: str | None = None  # set when the customer could not sign


_QUANTITY_FIRST = re.compile(r"^(\d+)\s*(?:[x×*]\s*|\s)(.+)$", re.IGNORECASE)
_QUANTITY_LAST = re.compile(r"^(.+?)\s*(?:[x×*]|[,;:])\s*(\d+)$", re.IGNORECASE)


def parse_parts(text: str | None) -> list[tuple[str, int]]:
    """One part a line, with an optional quantity: "2 x filter", "Filter × 2", "Filter; 2".

    Raises ValueError with a message for the user on a line it cannot take.
    """
    parts = []
    for raw in (text or "").splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        quantity, name = 1, line
        if match := _QUANTITY_FIRST.match(line):
            quantity, name = int(match.group(1)), match.group(2).strip()
        elif match := _QUANTITY_LAST.match(line):
            name, quantity = match.group(1).strip(), int(match.group(2))
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ValueError(_("Quantity out of range on the line “%(line)s”.", line=line))
        if len(name) > 200:
            raise ValueError(_("A part name is at most 200 characters."))
        parts.append((name, quantity))
    if len(parts) > MAX_PARTS:
        raise ValueError(_("At most %(count)d parts.", count=MAX_PARTS))
    return parts


def format_parts(parts: list[tuple[str, int]]) -> str:
    return "\n".join(f"{quantity} × {name}" for name, quantity in parts)


def _png_chunks(data: bytes):
    offset = len(PNG_MAGIC)
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        crc = data[offset + 8 + length : offset + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise SignatureInvalid(_("The signature image is damaged. Please sign again."))
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise SignatureInvalid(_("The signature image is damaged. Please sign again."))
        yield kind, body
        offset += 12 + length
        if kind == b"IEND":
            return
    raise SignatureInvalid(_("The signature image is damaged. Please sign again."))


def _has_ink(width: int, height: int, idat: bytes) -> bool:
    """True when an 8-bit RGBA image (what a canvas exports) has a pixel drawn.

    PNG filters predict each byte from bytes of the same channel, so an image whose
    filtered bytes (the filter-type byte of each row aside) are all zero is blank.
    """
    stride = 1 + 4 * width
    expected = stride * height
    decompressor = zlib.decompressobj()
    try:
        raw = decompressor.decompress(idat, expected + 1)  # bounded: no zip bomb
    except zlib.error as error:
        raise SignatureInvalid(_("The signature image is damaged. Please sign again.")) from error
    if len(raw) != expected:
        raise SignatureInvalid(_("The signature image is damaged. Please sign again."))
    return any(any(raw[row + 1 : row + stride]) for row in range(0, expected, stride))


def check_signature(data_url: str | None) -> str:
    """The base64 PNG of a drawn signature, checked; SignatureInvalid otherwise.

    A PNG data URL, at most 200 KB once decoded, with a real PNG inside (signature
    bytes, chunk checksums, sane dimensions) and something drawn on it.
    """
    if not data_url:
        raise SignatureInvalid(_("Ask the customer to sign, or tick “Customer absent”."))
    if not data_url.startswith(SIGNATURE_PREFIX):
        raise SignatureInvalid(_("The signature must be a PNG image."))
    encoded = data_url[len(SIGNATURE_PREFIX) :]
    if len(encoded) > (SIGNATURE_MAX_BYTES * 4) // 3 + 4:
        raise SignatureInvalid(_("The signature image is too large."))
    try:
        png = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SignatureInvalid(_("The signature must be a PNG image.")) from error
    if len(png) > SIGNATURE_MAX_BYTES:
        raise SignatureInvalid(_("The signature image is too large."))
    if not png.startswith(PNG_MAGIC):
        raise SignatureInvalid(_("The signature must be a PNG image."))
    chunks = list(_png_chunks(png))
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise SignatureInvalid(_("The signature image is damaged. Please sign again."))
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    if width == 0 or height == 0 or width * height > SIGNATURE_MAX_PIXELS:
        raise SignatureInvalid(_("The signature image has an unexpected size."))
    if (depth, colour, interlace) == (8, 6, 0):
        idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
        if not _has_ink(width, height, idat):
            raise SignatureInvalid(_("The signature is empty: ask the customer to sign."))
    return base64.b64encode(png).decode("ascii")


def format_minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return _("%(hours)d h %(minutes)02d min", hours=hours, minutes=rest)
    if hours:
        return _("%(hours)d h", hours=hours)
    return _("%(minutes)d min", minutes=rest)


def report_summary(intervention: Intervention, report: Report) -> str:
    """The report as text, for the incident's note and the customer's timeline."""
    lines = [report.work_done.strip(), ""]
    lines.append(_("Time spent: %(time)s", time=format_minutes(report.time_spent_minutes)))
    if report.parts:
        parts = ", ".join(f"{quantity} × {name}" for name, quantity in report.parts)
        lines.append(_("Parts used: %(parts)s", parts=parts))
    if report.signature_png:
        lines.append(_("Signed by %(name)s", name=report.signed_by))
    else:
        lines.append(_("Not signed: customer absent (%(reason)s)", reason=report.absent_reason))
    return "\n".join(lines)


def _resolve_incident(incident: Incident, intervention: Intervention, at: datetime) -> bool:
    """Resolve the incident if it was open and waited on no other visit."""
    if incident.status not in INCIDENT_OPEN:
        return False
    others_open = db.session.scalar(
        select(Intervention.id).where(
            Intervention.incident_id == incident.id,
            Intervention.id != intervention.id,
            Intervention.status.in_(OPEN_STATUSES),
        )
    )
    if others_open is not None:
        return False
    old_status = incident.status
    incident.status = "resolved"
    sla.status_changed(incident, old_status, at=at)
    if incident.resolved_at is None:
        incident.resolved_at = at
    return True


def submit_report(
    intervention: Intervention, report: Report, actor: User, at: datetime | None = None
) -> None:
    """Close the visit with its report: the intervention done, the technicians' slots
    freed, a note on the incident (resolved if it waited on this visit only) and a
    visit on the customer's timeline. WorkRefused when the visit is no longer open."""
    if (report.signature_png is None) == (report.absent_reason is None):
        raise ValueError("a report has either a signature or the reason it has none")
    at = at or now()
    values = {
        "status": "done",
        "status_changed_at": at,
        "completed_at": at,
        "work_done": report.work_done.strip(),
        "time_spent_minutes": report.time_spent_minutes,
        "parts_used": format_parts(report.parts) or None,
        "signature_png": report.signature_png,
        "signed_by": report.signed_by if report.signature_png else None,
    }
    if not _claim(intervention, REPORTABLE, values):
        if intervention.status == "done":
            raise WorkRefused(_("This visit already has its report."))
        raise WorkRefused(_("This visit was cancelled: it cannot take a report."))
    bookings.release(intervention)  # a done visit no longer blocks the technicians' time
    summary = report_summary(intervention, report)
    incident = intervention.incident
    if incident is not None:
        db.session.add(
            IncidentMessage(
                incident=incident,
                kind="note",
                author=actor,
                created_at=at,
                body=_("Intervention report: %(title)s", title=intervention.title)
                + "\n\n"
                + summary,
            )
        )
        _resolve_incident(incident, intervention, at)
    if intervention.contact is None and intervention.company is None:
        return
    record_activity(
        actor,
        "visit",
        subject=_("Intervention report: %(title)s", title=intervention.title),
        body=summary,
        duration_minutes=report.time_spent_minutes,
        occurred_at=at,
        data={"intervention": intervention.id},
        incident_id=intervention.incident_id,
        **_timeline_targets(intervention),
    )
