"""Invitations from Google Calendar, Outlook and Thunderbird, read into the agenda.

The files in tests/fixtures/ics are written the way each client writes them: Google
with UTC times for single events and TZID plus VTIMEZONE for series (UNTIL in UTC),
Outlook with a Windows zone name and its own VTIMEZONE, METHOD:REQUEST then
METHOD:CANCEL, Thunderbird with all-day dates.
"""

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from crm.extensions import db
from crm.models import Event
from crm.services import ics_import
from crm.services.recurrence import expand
from tests.factories import make_contact, make_event, make_user

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ics"
PARIS = ZoneInfo("Europe/Paris")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def request_ctx(data_app, ctx):
    """Messages are translated: the services run inside a request, as from the routes."""
    with data_app.test_request_context():
        yield


@pytest.fixture
def sophie(request_ctx):
    user = make_user(email="sophie.laurent@crm.example", name="Sophie Laurent")
    db.session.commit()
    return user


def _import(name: str, user, action: str | None = None):
    invitation = ics_import.read_invitation((FIXTURES / name).read_bytes(), user)
    plan = ics_import.plan_import(invitation, user)
    if action is not None:
        assert [change.action for change in plan] == [action], name
    events = ics_import.apply_import(plan, user)
    db.session.commit()
    return plan, events


def _count_events() -> int:
    return db.session.scalar(select(func.count(Event.id)))


def test_google_invitation_in_utc_with_people_matched(sophie):
    hugo = make_user(email="Hugo.Bernard@crm.example", name="Hugo Bernard")
    claire = make_contact("Claire", "Fabre", email="claire.fabre@lumiere.example")
    db.session.commit()
    _plan, [event] = _import("google_request.ics", sophie, "create")

    assert event.title == "Déploiement terminaux – point d'étape"
    assert (event.starts_at, event.ends_at) == (utc(2027, 3, 9, 13), utc(2027, 3, 9, 14))
    assert (
        event.organizer_id == sophie.id
        and event.ical_uid == "7kukuqrfedlm2f9t0vhsgs6mbk@google.com"
    )
    assert event.location == "Lumière SA, 12 rue de la République, 69002 Lyon, France"
    # The customer who sent it is a contact: attendee (accepted) and the linked record.
    people = {(a.user_id, a.contact_id): a.response for a in event.attendees}
    assert people == {(None, claire.id): "accepted", (hugo.id, None): "needs_action"}
    assert event.contact_id == claire.id
    # Who is not in the CRM is named; Google's decoration is gone, the Meet link kept.
    assert "Also invited: Paul Inconnu <paul@elsewhere.example>" in event.description
    assert "https://meet.google.com/abc-defg-hij" in event.description
    assert "-::~" not in event.description


def test_reimporting_updates_instead_of_duplicating(sophie):
    _plan, [event] = _import("google_request.ics", sophie, "create")
    _plan, [again] = _import("google_request.ics", sophie, "update")
    assert again.id == event.id and _count_events() == 1

    _plan, [moved] = _import("google_update.ics", sophie, "update")
    assert moved.id == event.id and _count_events() == 1
    assert (moved.starts_at, moved.ends_at) == (utc(2027, 3, 9, 14), utc(2027, 3, 9, 15, 30))
    assert moved.sequence == 1

    # The first version, once more, is older than what the agenda has: left alone.
    plan, touched = _import("google_request.ics", sophie, "older")
    assert touched == [] and db.session.get(Event, event.id).starts_at == utc(2027, 3, 9, 14)


def test_google_weekly_series_with_utc_until_and_exdate(sophie):
    _plan, [event] = _import("google_weekly.ics", sophie, "create")
    assert event.timezone == "Europe/Paris"
    assert event.rrule.startswith("FREQ=WEEKLY") and "BYDAY=TU" in event.rrule
    occurrences = expand(event, utc(2027, 1, 1), utc(2027, 12, 31))
    local = [o.start.astimezone(PARIS) for o in occurrences]
    # Tuesdays 9:00 Paris from 2 March, 16 March excluded, the last on 20 April
    # (UNTIL is 27 April 06:59:59 UTC, one minute before that day's 9:00 CEST).
    assert [d.day for d in local] == [2, 9, 23, 30, 6, 13, 20]
    assert all((d.hour, d.minute) == (9, 0) for d in local)  # across the 28 March change
    assert occurrences[0].start == utc(2027, 3, 2, 8) and occurrences[-1].start == utc(
        2027, 4, 20, 7
    )
    assert event.rrule_until == utc(2027, 4, 20, 7, 30)


def test_outlook_windows_zone_then_cancellation(sophie):
    _plan, [event] = _import("outlook_request.ics", sophie, "create")
    assert event.timezone == "Europe/Paris"  # "Romance Standard Time"
    assert event.starts_at == utc(2027, 3, 30, 12, 30)  # 14:30 CEST
    assert "Organizer: Marc Lefebvre <marc.lefebvre@atlas.example>" in event.description

    _plan, [cancelled] = _import("outlook_cancel.ics", sophie, "cancel")
    assert cancelled.id == event.id and cancelled.status == "cancelled"
    assert cancelled.sequence == 1 and _count_events() == 1
    # The same cancellation again changes nothing.
    _import("outlook_cancel.ics", sophie, "older")


def test_cancelling_an_unknown_event_does_nothing(sophie):
    plan, touched = _import("outlook_cancel.ics", sophie, "unknown")
    assert touched == [] and _count_events() == 0


def test_thunderbird_all_day_event_spans_local_days(sophie):
    _plan, [event] = _import("thunderbird_allday.ics", sophie, "create")
    assert event.all_day
    assert event.starts_at.astimezone(PARIS) == datetime(2027, 4, 12, tzinfo=PARIS)
    assert event.ends_at.astimezone(PARIS) == datetime(2027, 4, 14, tzinfo=PARIS)


def test_floating_times_are_the_users_wall_clock(request_ctx):
    montreal = make_user(timezone="America/Montreal")
    db.session.commit()
    _plan, [event] = _import("floating_local.ics", montreal, "create")
    assert event.timezone == "America/Montreal"
    assert event.starts_at.astimezone(ZoneInfo("America/Montreal")).hour == 10


def test_an_event_organized_by_a_colleague_is_not_imported_twice(sophie):
    marc = make_user(email="marc@crm.example")
    make_event(
        organizer=marc,
        attendees=[sophie],
        start=utc(2027, 3, 9, 13),
        ical_uid="7kukuqrfedlm2f9t0vhsgs6mbk@google.com",
    )
    db.session.commit()
    plan, touched = _import("google_request.ics", sophie, "attending")
    assert touched == [] and _count_events() == 1


def test_preview_lists_conflicts_of_the_people_invited(sophie):
    hugo = make_user(email="hugo.bernard@crm.example", name="Hugo Bernard")
    busy = make_event(organizer=hugo, start=utc(2027, 3, 9, 13, 30), title="Client call")
    make_event(organizer=hugo, start=utc(2027, 3, 9, 15), title="Later")
    db.session.commit()
    invitation = ics_import.read_invitation((FIXTURES / "google_request.ics").read_bytes(), sophie)
    [change] = ics_import.plan_import(invitation, sophie)
    assert [o.event.id for o in change.conflicts] == [busy.id]
    assert _count_events() == 2  # planning writes nothing


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_a_calendar.ics", "not a calendar invitation"),
        ("reply.ics", "answer to an invitation"),
    ],
)
def test_files_that_are_not_invitations_are_refused(sophie, name, message):
    with pytest.raises(ics_import.InvitationError, match=message):
        ics_import.read_invitation((FIXTURES / name).read_bytes(), sophie)


def test_uploads_are_checked_for_size_and_type(request_ctx):
    with pytest.raises(ics_import.InvitationError, match="1 MB"):
        ics_import.check_upload("big.ics", "text/calendar", b"x" * (ics_import.MAX_BYTES + 1))
    with pytest.raises(ics_import.InvitationError, match=r"\.ics"):
        ics_import.check_upload("photo.png", "image/png", b"\x89PNG")
    ics_import.check_upload("invite.ics", "application/octet-stream", b"BEGIN:VCALENDAR")
    ics_import.check_upload("invite", "text/calendar; charset=utf-8", b"BEGIN:VCALENDAR")
