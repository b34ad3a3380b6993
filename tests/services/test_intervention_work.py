"""The technician's work on a visit: the day's list, the taps on the way, the report that
closes the visit (once), and the checks on the signature drawn on the screen."""

import base64
import struct
import zlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Activity, IncidentMessage, TechnicianBooking
from crm.services import intervention_work as work
from tests.factories import make_company, make_contact, make_incident, make_intervention, make_user

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def ctx(ctx, data_app):
    """Messages for the user are translated: they need a request (in English here)."""
    with data_app.test_request_context():
        yield


# ---- PNG images as a canvas exports them ----------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(width: int = 40, height: int = 20, ink: bool = True, colour: int = 6) -> bytes:
    """An 8-bit RGBA PNG (transparent), with a black stroke across its middle when `ink`."""
    channels = 4 if colour == 6 else 3
    rows = []
    for y in range(height):
        row = bytearray(channels * width)
        if ink and y == height // 2:
            for x in range(width):
                row[x * channels + channels - 1] = 255  # opaque black
        rows.append(b"\x00" + bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        work.PNG_MAGIC
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _chunk(b"IEND", b"")
    )


def _claiming(width: int, height: int) -> str:
    """A small PNG whose header claims a size no signature pad has."""
    png = png_bytes()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    png = work.PNG_MAGIC + _chunk(b"IHDR", header) + png[len(work.PNG_MAGIC) + 25 :]
    return work.SIGNATURE_PREFIX + base64.b64encode(png).decode()


def signature_data_url(**kwargs) -> str:
    return work.SIGNATURE_PREFIX + base64.b64encode(png_bytes(**kwargs)).decode()


# ---- the day ---------------------------------------------------------------------------


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def test_the_day_lists_my_booked_and_done_visits_in_time_order(ctx):
    me, colleague = make_user(role="technician"), make_user(role="technician")
    day = date(2026, 3, 10)
    make_intervention(technicians=[me], start=_at(day, 14), title="Afternoon")
    make_intervention(technicians=[me], start=_at(day, 8, 30), title="Morning")
    done = make_intervention(technicians=[me], start=_at(day, 11), title="Done", status="done")
    done.bookings[0].active = False
    cancelled = make_intervention(technicians=[me], start=_at(day, 12), status="cancelled")
    cancelled.bookings[0].active = False
    make_intervention(technicians=[colleague], start=_at(day, 9), title="Colleague's")
    make_intervention(technicians=[me], start=_at(day + timedelta(days=1), 0, 30), title="Tomorrow")
    make_intervention(technicians=[me], start=_at(day, 0, 0) - timedelta(minutes=90), minutes=60)
    db.session.commit()

    titles = [visit.title for visit in work.day_of(me, day, PARIS)]

    assert titles == ["Morning", "Done", "Afternoon"]


def test_the_day_follows_the_local_midnight_across_a_daylight_saving_change(ctx):
    me = make_user(role="technician")
    day = date(2026, 3, 29)  # 23 hours in Paris
    late = make_intervention(technicians=[me], start=_at(day, 23), minutes=30, title="Late")
    db.session.commit()

    start, end = work.day_bounds(day, PARIS)

    assert end - start == timedelta(hours=23)
    assert [v.id for v in work.day_of(me, day, PARIS)] == [late.id]
    assert work.day_of(me, day + timedelta(days=1), PARIS) == []


def test_next_step_address_and_phone_of_a_visit(ctx):
    company = make_company(
        phone="+33 1 40 00 00 00", street="1 rue de Rivoli", postcode="75001", city="Paris"
    )
    contact = make_contact(company=company, phone=None)
    incident = make_incident(contact)
    visit = make_intervention(
        incident, technicians=[make_user(role="technician")], start=_at(date(2026, 3, 10), 9)
    )

    assert work.next_step(visit) == "en_route"
    assert work.visit_address(visit) == "1 rue de Rivoli, 75001 Paris"
    assert work.customer_phone(visit) == "+33 1 40 00 00 00"
    visit.address = "  12 avenue Foch, Lyon "
    assert work.visit_address(visit) == "12 avenue Foch, Lyon"


# ---- the taps on the way ---------------------------------------------------------------


def _visit(status_of_incident="open"):
    technician = make_user(role="technician", name="Théo Martin")
    contact = make_contact(company=make_company())
    incident = make_incident(contact, status=status_of_incident, priority="high")
    visit = make_intervention(incident, technicians=[technician], start=_at(date(2026, 3, 10), 9))
    db.session.commit()
    return technician, visit


def _activities(visit):
    return db.session.scalars(
        select(Activity).where(Activity.incident_id == visit.incident_id).order_by(Activity.id)
    ).all()


def test_en_route_then_on_site_are_recorded_once_each_on_the_timeline(ctx):
    technician, visit = _visit()
    first = datetime(2026, 3, 10, 7, 40, tzinfo=UTC)

    assert work.change_status(visit, "en_route", technician, at=first) is True
    assert work.change_status(visit, "en_route", technician, at=first) is False  # a double tap
    assert work.change_status(visit, "on_site", technician, at=first + timedelta(minutes=25))
    db.session.commit()

    assert visit.status == "on_site"
    assert visit.status_changed_at == first + timedelta(minutes=25)
    entries = _activities(visit)
    assert [(a.kind, a.data["status"]) for a in entries] == [
        ("system", "en_route"),
        ("system", "on_site"),
    ]
    assert all(
        a.contact_id == visit.contact_id and a.company_id == visit.company_id for a in entries
    )
    assert entries[0].author_id == technician.id and entries[0].data["technician"] == "Théo Martin"


def test_on_site_without_en_route_is_allowed_but_not_back_nor_after_the_end(ctx):
    technician, visit = _visit()

    assert work.change_status(visit, "on_site", technician)
    with pytest.raises(work.WorkRefused):
        work.change_status(visit, "en_route", technician)
    with pytest.raises(work.WorkRefused):
        work.change_status(visit, "done", technician)  # done goes through the report
    visit.status = "cancelled"
    db.session.commit()
    with pytest.raises(work.WorkRefused):
        work.change_status(visit, "on_site", technician)


def test_minutes_on_site_run_from_the_arrival(ctx):
    technician, visit = _visit()
    arrival = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    assert work.minutes_on_site(visit) == 60  # the planned length before arrival
    work.change_status(visit, "on_site", technician, at=arrival)

    assert work.minutes_on_site(visit, at=arrival + timedelta(minutes=41, seconds=10)) == 42


# ---- the report ------------------------------------------------------------------------


def _report(**fields) -> work.Report:
    values = {
        "work_done": "Replaced the fuser unit.",
        "time_spent_minutes": 75,
        "parts": [("Fuser unit", 1), ("Toner", 2)],
        "signed_by": "Marie Dupont",
        "signature_png": work.check_signature(signature_data_url()),
    }
    values.update(fields)
    return work.Report(**values)


def test_the_report_closes_the_visit_frees_the_slot_and_resolves_the_incident(ctx):
    technician, visit = _visit()
    at = datetime(2026, 3, 10, 10, 15, tzinfo=UTC)

    work.submit_report(visit, _report(), technician, at=at)
    db.session.commit()

    assert (visit.status, visit.completed_at, visit.status_changed_at) == ("done", at, at)
    assert visit.work_done == "Replaced the fuser unit."
    assert visit.time_spent_minutes == 75
    assert visit.parts_used == "1 × Fuser unit\n2 × Toner"
    assert visit.signed_by == "Marie Dupont" and base64.b64decode(visit.signature_png).startswith(
        work.PNG_MAGIC
    )
    assert [b.active for b in db.session.scalars(select(TechnicianBooking))] == [False]
    messages = db.session.scalars(select(IncidentMessage)).all()
    assert (
        len(messages) == 1 and messages[0].kind == "note" and messages[0].author_id == technician.id
    )
    assert messages[0].body.startswith(f"Intervention report: {visit.title}")
    assert (
        "Replaced the fuser unit." in messages[0].body
        and "Signed by Marie Dupont" in messages[0].body
    )
    assert visit.incident.status == "resolved" and visit.incident.resolved_at == at
    visits = [a for a in _activities(visit) if a.kind == "visit"]
    assert len(visits) == 1
    assert visits[0].contact_id == visit.contact_id and visits[0].duration_minutes == 75
    assert "1 h 15 min" in visits[0].body and "2 × Toner" in visits[0].body


def test_a_second_report_is_refused_and_writes_nothing(ctx):
    technician, visit = _visit()
    work.submit_report(visit, _report(), technician)
    db.session.commit()

    with pytest.raises(work.WorkRefused):
        work.submit_report(visit, _report(work_done="Again"), technician)
    db.session.rollback()

    assert db.session.scalar(select(func.count()).select_from(IncidentMessage)) == 1
    assert db.session.scalar(select(func.count()).where(Activity.kind == "visit")) == 1
    assert visit.work_done == "Replaced the fuser unit."


def test_a_cancelled_visit_takes_no_report(ctx):
    technician, visit = _visit()
    visit.status = "cancelled"
    db.session.commit()

    with pytest.raises(work.WorkRefused):
        work.submit_report(visit, _report(), technician)


def test_the_incident_stays_open_while_another_visit_is_planned(ctx):
    technician, visit = _visit()
    make_intervention(visit.incident, technicians=[technician], start=_at(date(2026, 3, 12), 9))
    db.session.commit()

    work.submit_report(visit, _report(), technician)

    assert visit.incident.status == "open" and visit.incident.resolved_at is None


def test_a_closed_incident_is_not_reopened_nor_resolved_again(ctx):
    technician, visit = _visit(status_of_incident="closed")

    work.submit_report(visit, _report(), technician)

    assert visit.incident.status == "closed"


def test_a_report_without_signature_says_why(ctx):
    technician, visit = _visit()
    report = _report(
        signed_by=None, signature_png=None, absent_reason="Key left with the caretaker"
    )

    work.submit_report(visit, report, technician)

    assert visit.signature_png is None and visit.signed_by is None
    note = db.session.scalars(select(IncidentMessage)).one()
    assert "customer absent (Key left with the caretaker)" in note.body


def test_a_visit_without_incident_goes_on_the_customers_timeline_only(ctx):
    technician = make_user(role="technician")
    contact = make_contact()
    visit = make_intervention(
        technicians=[technician], start=_at(date(2026, 3, 10), 9), contact=contact
    )
    db.session.commit()

    work.submit_report(visit, _report(), technician)

    entry = db.session.scalars(select(Activity).where(Activity.kind == "visit")).one()
    assert entry.contact_id == contact.id and entry.incident_id is None
    assert db.session.scalar(select(func.count()).select_from(IncidentMessage)) == 0


# ---- parts and signature ----------------------------------------------------------------


def test_parts_one_a_line_with_their_quantity(ctx):
    text = "2 x Toner\nFuser unit × 3\n\n  Screw kit  \nBelt; 4\n10 screws"
    assert work.parse_parts(text) == [
        ("Toner", 2),
        ("Fuser unit", 3),
        ("Screw kit", 1),
        ("Belt", 4),
        ("screws", 10),
    ]
    assert work.parse_parts("") == []
    with pytest.raises(ValueError):
        work.parse_parts("0 x Toner")
    with pytest.raises(ValueError):
        work.parse_parts("\n".join(f"Part {n}" for n in range(31)))


def test_a_drawn_signature_is_accepted(ctx):
    checked = work.check_signature(signature_data_url())
    assert base64.b64decode(checked) == png_bytes()
    # Other PNG layouts are taken as they are (no ink check): still real PNGs.
    assert work.check_signature(signature_data_url(colour=2))


@pytest.mark.parametrize(
    "data_url",
    [
        "",
        None,
        "data:image/jpeg;base64,/9j/4AAQ",
        work.SIGNATURE_PREFIX + "not base64!",
        work.SIGNATURE_PREFIX + base64.b64encode(b"GIF89a" + b"\0" * 40).decode(),
        work.SIGNATURE_PREFIX + base64.b64encode(png_bytes()[:-6] + b"xxxxxx").decode(),  # bad CRC
        work.SIGNATURE_PREFIX + base64.b64encode(png_bytes()[:40]).decode(),  # cut short
        signature_data_url(ink=False),  # a blank pad
        _claiming(5000, 2000),
        _claiming(0, 20),
        _claiming(40, 21),  # more rows than the image data holds
    ],
    ids=[
        "empty",
        "none",
        "jpeg",
        "base64",
        "gif",
        "crc",
        "truncated",
        "blank",
        "huge",
        "zero",
        "short",
    ],
)
def test_a_signature_that_is_not_a_drawn_png_is_refused(ctx, data_url):
    with pytest.raises(work.SignatureInvalid):
        work.check_signature(data_url)


def test_a_signature_over_200_kilobytes_is_refused(ctx):
    big = work.PNG_MAGIC + b"\0" * (work.SIGNATURE_MAX_BYTES + 1 - len(work.PNG_MAGIC))
    with pytest.raises(work.SignatureInvalid, match="too large"):
        work.check_signature(work.SIGNATURE_PREFIX + base64.b64encode(big).decode())


def test_a_compressed_bomb_is_not_inflated(ctx):
    width, height = 2000, 2000  # 16 MB of pixels in a few KB: only what fits is inflated
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    bomb = zlib.compress(b"\0" * ((1 + 4 * width) * height + 10_000_000), 9)
    png = work.PNG_MAGIC + _chunk(b"IHDR", header) + _chunk(b"IDAT", bomb) + _chunk(b"IEND", b"")
    assert len(png) < work.SIGNATURE_MAX_BYTES
    with pytest.raises(work.SignatureInvalid):
        work.check_signature(work.SIGNATURE_PREFIX + base64.b64encode(png).decode())
