"""Technician bookings: one place at a time, whatever the backend.

PostgreSQL refuses an overlap with its exclusion constraint; SQLite checks inside
BEGIN IMMEDIATE. The race tests start many bookings of one technician at once,
each on its own connection, and count the winners.
"""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.pool import NullPool

from crm import create_app
from crm.config import TestConfig
from crm.extensions import db
from crm.models import Intervention, TechnicianBooking, User
from crm.services import bookings, interventions
from tests.conftest import BACKENDS
from tests.factories import make_contact, make_incident, make_intervention, make_user

NINE = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def alice(ctx):
    return make_user(role="technician", name="Alice Martin", skills=["boiler"])


@pytest.fixture
def bob(ctx):
    return make_user(role="technician", name="Bob Durand", skills=["electricity"])


def active_bookings(technician: User) -> list[TechnicianBooking]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(TechnicianBooking).where(
                TechnicianBooking.technician_id == technician.id,
                TechnicianBooking.active.is_(True),
            )
        )
    )


def test_booking_copies_the_times_and_plans_the_intervention(alice):
    visit = make_intervention(title="Boiler repair", minutes=90)
    assert visit.status == "unscheduled"
    interventions.schedule(visit, [alice], NINE)
    db.session.commit()
    assert (visit.status, visit.starts_at, visit.ends_at) == (
        "planned",
        NINE,
        NINE + timedelta(minutes=90),
    )
    [booking] = active_bookings(alice)
    assert (booking.intervention_id, booking.starts_at, booking.ends_at) == (
        visit.id,
        NINE,
        NINE + timedelta(minutes=90),
    )


def test_an_overlapping_booking_is_refused_with_a_clear_message(app, alice):
    first = make_intervention(title="Boiler repair", technicians=[alice], start=NINE)
    db.session.commit()
    second = make_intervention(title="Annual check")
    with pytest.raises(bookings.DoubleBooking) as refused:
        interventions.schedule(second, [alice], NINE + timedelta(minutes=30))
    assert refused.value.technician_id == alice.id
    assert refused.value.conflict_intervention_id == first.id
    with app.test_request_context():
        message = str(refused.value)
    assert message.startswith("Alice Martin is already booked from ")
    assert "“Boiler repair”" in message
    # The session stays usable (SAVEPOINT on PostgreSQL): roll back and go on.
    db.session.rollback()
    assert db.session.get(Intervention, second.id) is None or second.status == "unscheduled"
    assert [b.intervention_id for b in active_bookings(alice)] == [first.id]


def test_adjacent_bookings_are_allowed(alice):
    make_intervention(technicians=[alice], start=NINE, minutes=60)
    db.session.commit()
    after = make_intervention(minutes=60)
    interventions.schedule(after, [alice], NINE + timedelta(minutes=60))
    before = make_intervention(minutes=30)
    interventions.schedule(before, [alice], NINE - timedelta(minutes=30))
    db.session.commit()
    assert len(active_bookings(alice)) == 3


def test_another_technician_at_the_same_time_is_fine(alice, bob):
    make_intervention(technicians=[alice], start=NINE)
    other = make_intervention()
    interventions.schedule(other, [bob], NINE)
    db.session.commit()
    assert len(active_bookings(bob)) == 1


def test_releasing_frees_the_slot_and_keeps_the_history(alice):
    first = make_intervention(technicians=[alice], start=NINE)
    db.session.commit()
    interventions.cancel(first)
    db.session.commit()
    assert first.status == "cancelled"
    assert active_bookings(alice) == []
    assert db.session.scalar(select(func.count()).select_from(TechnicianBooking)) == 1
    second = make_intervention()
    interventions.schedule(second, [alice], NINE)
    db.session.commit()
    assert [b.intervention_id for b in active_bookings(alice)] == [second.id]


def test_unscheduling_puts_it_back_on_the_tray(alice):
    visit = make_intervention(technicians=[alice], start=NINE)
    db.session.commit()
    interventions.unschedule(visit)
    db.session.commit()
    assert (visit.status, visit.starts_at, visit.ends_at) == ("unscheduled", None, None)
    assert active_bookings(alice) == []
    other = make_intervention()
    interventions.schedule(other, [alice], NINE)
    db.session.commit()


def test_rescheduling_moves_the_booking_and_never_conflicts_with_itself(alice, bob):
    visit = make_intervention(technicians=[alice], start=NINE, minutes=120)
    db.session.commit()
    # Half an hour later: overlaps its own old time, which is not a conflict.
    interventions.schedule(visit, [alice], NINE + timedelta(minutes=30))
    db.session.commit()
    [booking] = active_bookings(alice)
    assert booking.starts_at == NINE + timedelta(minutes=30)
    assert booking.ends_at == NINE + timedelta(minutes=150)
    # To Bob instead: Alice is released, not left booked.
    interventions.schedule(visit, [bob], NINE)
    db.session.commit()
    assert active_bookings(alice) == []
    assert [b.starts_at for b in active_bookings(bob)] == [NINE]


def test_a_refused_reschedule_keeps_the_old_booking(alice, bob):
    visit = make_intervention(technicians=[alice], start=NINE)
    make_intervention(title="Busy", technicians=[alice], start=NINE + timedelta(hours=3))
    db.session.commit()
    with pytest.raises(bookings.DoubleBooking):
        interventions.schedule(visit, [alice], NINE + timedelta(hours=3, minutes=30))
    db.session.rollback()
    visit = db.session.get(Intervention, visit.id)
    assert visit.starts_at == NINE
    assert sorted(b.starts_at for b in active_bookings(alice)) == [NINE, NINE + timedelta(hours=3)]


def test_several_technicians_are_booked_together_or_not_at_all(alice, bob):
    make_intervention(title="Bob elsewhere", technicians=[bob], start=NINE + timedelta(hours=1))
    db.session.commit()
    pair = make_intervention(minutes=120)
    with pytest.raises(bookings.DoubleBooking) as refused:
        interventions.schedule(pair, [alice, bob], NINE)
    assert refused.value.technician_id == bob.id
    db.session.rollback()
    assert active_bookings(alice) == []

    pair = make_intervention(minutes=60)
    interventions.schedule(pair, [alice, bob], NINE)
    db.session.commit()
    assert [b.intervention_id for b in active_bookings(alice)] == [pair.id]
    assert pair.id in [b.intervention_id for b in active_bookings(bob)]


def test_done_or_cancelled_interventions_cannot_be_scheduled(alice):
    visit = make_intervention(status="cancelled")
    with pytest.raises(bookings.NotBookable):
        interventions.schedule(visit, [alice], NINE)


def test_create_from_an_incident_takes_its_customer(alice):
    customer = make_contact("Marie", "Dupont", street="3 rue Haute", postcode="69001", city="Lyon")
    incident = make_incident(customer, subject="Heating down")
    draft = interventions.draft_for(incident=incident)
    assert draft["title"] == "Heating down"
    assert draft["address"] == "3 rue Haute, 69001 Lyon"
    visit = interventions.create(
        alice,
        title=draft["title"],
        duration_minutes=60,
        incident=incident,
        address=draft["address"],
    )
    assert (visit.contact, visit.status, visit.created_by) == (customer, "unscheduled", alice)
    booked = interventions.create(
        alice,
        title="With a time",
        duration_minutes=60,
        incident=incident,
        starts_at=NINE,
        technicians_=[alice],
    )
    assert booked.status == "planned"
    assert [b.technician_id for b in booked.bookings] == [alice.id]


# ---- races ------------------------------------------------------------------------------


def _race(intervention_ids: list[int], technician_id: int) -> list[object]:
    """Book the technician on every intervention at once, each on its own connection.

    Every attempt waits at a barrier after loading its rows, so that they all reach
    the check-and-insert together. Returns "booked" or the DoubleBooking of each.
    """
    racers = create_app(
        TestConfig, WTF_CSRF_ENABLED=False, SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool}
    )
    barrier = threading.Barrier(len(intervention_ids))
    results: list[object] = [None] * len(intervention_ids)

    def attempt(index: int) -> None:
        with racers.app_context():
            try:
                visit = db.session.get(Intervention, intervention_ids[index])
                technician = db.session.get(User, technician_id)
                barrier.wait(timeout=60)
                # Every attempt overlaps every other: starts within the hour of the first.
                interventions.schedule(visit, [technician], NINE + timedelta(minutes=index))
                db.session.commit()
                results[index] = "booked"
            except bookings.DoubleBooking as refused:
                db.session.rollback()
                results[index] = refused
            except Exception as error:  # reported by the assertion below
                db.session.rollback()
                results[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(intervention_ids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    with racers.app_context():
        db.engine.dispose()
    return results


def _check_one_winner(results, visits, alice):
    unexpected = [r for r in results if r != "booked" and not isinstance(r, bookings.DoubleBooking)]
    assert unexpected == []
    winners = [
        visit.id for visit, result in zip(visits, results, strict=True) if result == "booked"
    ]
    assert len(winners) == 1
    refused = [r for r in results if isinstance(r, bookings.DoubleBooking)]
    assert len(refused) == len(visits) - 1
    # Each refusal names the booking that won.
    assert {r.conflict_intervention_id for r in refused} == set(winners)
    assert [b.intervention_id for b in active_bookings(alice)] == winners


@pytest.mark.skipif(
    not BACKENDS.postgres, reason="the exclusion constraint is PostgreSQL's; SQLite: next test"
)
def test_fifty_concurrent_bookings_of_one_slot_one_succeeds_on_postgresql(alice):
    visits = [make_intervention(title=f"Visit {i}") for i in range(50)]
    db.session.commit()
    results = _race([visit.id for visit in visits], alice.id)
    _check_one_winner(results, visits, alice)


@pytest.mark.skipif(BACKENDS.postgres, reason="the BEGIN IMMEDIATE path is SQLite's")
def test_concurrent_bookings_on_sqlite_one_succeeds(alice):
    visits = [make_intervention(title=f"Visit {i}") for i in range(10)]
    db.session.commit()
    results = _race([visit.id for visit in visits], alice.id)
    _check_one_winner(results, visits, alice)
