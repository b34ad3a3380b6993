"""Building the dispatch board: days, slots, where each card sits, the tray and the filters."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from crm.extensions import db
from crm.services.dispatch_board import BoardQuery, build_board
from tests.factories import make_contact, make_incident, make_intervention, make_user

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2030, 3, 1, 12, tzinfo=UTC)
MONDAY = date(2030, 3, 4)


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS).astimezone(UTC)


def cards_of(board, technician):
    [row] = [r for r in board.rows if r.technician.id == technician.id]
    return [
        (cells.day, slot.local_iso, card)
        for cells in row.days
        for slot in cells.slots
        for card in slot.cards
    ]


def test_query_reads_and_writes_the_url():
    query = BoardQuery.from_args(
        MultiDict({"view": "day", "date": "2030-03-05", "skill": "gas"}), MONDAY
    )
    assert (query.view, query.day, query.skill) == ("day", date(2030, 3, 5), "gas")
    assert query.args() == {"date": "2030-03-05", "view": "day", "skill": "gas"}
    assert query.args(view="week") == {"date": "2030-03-05", "skill": "gas"}
    bad = BoardQuery.from_args(MultiDict({"view": "year", "date": "soon"}), MONDAY)
    assert (bad.view, bad.day) == ("week", MONDAY)
    assert BoardQuery(day=MONDAY).step(1) == MONDAY + timedelta(weeks=1)
    assert BoardQuery(view="day", day=MONDAY).step(-1) == MONDAY - timedelta(days=1)


def test_a_week_has_working_days_in_hour_slots_and_cards_in_quarters(ctx):
    alice = make_user(role="technician", name="Alice")
    visit = make_intervention(technicians=[alice], start=paris(2030, 3, 5, 9, 30), minutes=90)
    db.session.commit()
    board = build_board(BoardQuery(day=MONDAY + timedelta(days=2)), PARIS, NOW)
    assert board.days == [MONDAY + timedelta(days=i) for i in range(5)]
    assert board.slots_per_day == 10 and board.quarters_per_slot == 4
    [(day, start, card)] = cards_of(board, alice)
    assert (day, start) == (date(2030, 3, 5), "2030-03-05T09:00")
    assert (card.intervention, card.offset, card.quarters) == (visit, 2, 6)
    assert not card.starts_before and not card.ends_after


def test_a_day_has_half_hour_slots(ctx):
    alice = make_user(role="technician")
    make_intervention(technicians=[alice], start=paris(2030, 3, 4, 14, 15), minutes=60)
    db.session.commit()
    board = build_board(BoardQuery(view="day", day=MONDAY), PARIS, NOW)
    assert board.days == [MONDAY] and board.slots_per_day == 20
    [(_day, start, card)] = cards_of(board, alice)
    assert (start, card.offset, card.quarters) == ("2030-03-04T14:00", 1, 4)


def test_weekend_days_appear_only_when_booked(ctx):
    alice = make_user(role="technician")
    make_intervention(technicians=[alice], start=paris(2030, 3, 9, 10))  # Saturday
    db.session.commit()
    board = build_board(BoardQuery(day=MONDAY), PARIS, NOW)
    assert board.days[-1] == date(2030, 3, 9) and len(board.days) == 6


def test_bookings_outside_the_hours_are_clipped_and_marked(ctx):
    alice = make_user(role="technician")
    make_intervention(technicians=[alice], start=paris(2030, 3, 4, 7), minutes=120)
    make_intervention(technicians=[alice], start=paris(2030, 3, 4, 17), minutes=180)
    db.session.commit()
    board = build_board(BoardQuery(day=MONDAY), PARIS, NOW)
    early, late = [c for _d, _s, c in cards_of(board, alice)]
    assert (early.offset, early.quarters, early.starts_before) == (0, 4, True)
    assert (late.quarters, late.ends_after) == (4, True)


def test_a_visit_over_midnight_shows_on_both_days(ctx):
    alice = make_user(role="technician")
    make_intervention(technicians=[alice], start=paris(2030, 3, 4, 16), minutes=24 * 60)
    db.session.commit()
    board = build_board(BoardQuery(day=MONDAY), PARIS, NOW)
    placed = cards_of(board, alice)
    assert [day for day, _s, _c in placed] == [date(2030, 3, 4), date(2030, 3, 5)]
    assert placed[0][2].ends_after and placed[1][2].starts_before
    assert placed[1][1] == "2030-03-05T08:00"


def test_tray_and_filters(ctx):
    gas = make_user(role="technician", name="Gaspard", skills=["gas"])
    make_user(role="technician", name="Elec", skills=["electricity"])
    make_user(role="technician", name="Gone", active=False)
    make_user(role="support", name="Not a technician")
    incident = make_incident(make_contact("Marie", "Dupont"))
    needs_gas = make_intervention(incident, skills=["gas"])
    anything = make_intervention(incident)
    make_intervention(incident, status="cancelled")
    db.session.commit()

    board = build_board(BoardQuery(day=MONDAY), PARIS, NOW)
    assert [r.technician.name for r in board.rows] == ["Elec", "Gaspard"]
    assert board.tray.interventions == [needs_gas, anything] and board.tray.count == 2
    assert board.skills == ["electricity", "gas"]

    only_gas = build_board(BoardQuery(day=MONDAY, skill="gas"), PARIS, NOW)
    assert [r.technician for r in only_gas.rows] == [gas]
    assert only_gas.tray.interventions == [needs_gas] and only_gas.tray.count == 1
    assert len(only_gas.technicians) == 2  # the card menus still offer everyone


def test_the_tray_comes_a_page_at_a_time_oldest_first(ctx):
    from crm.services.dispatch_board import load_tray

    incident = make_incident(make_contact("Marie", "Dupont"))
    waiting = [make_intervention(incident, skills=["gas"] if i % 2 else None) for i in range(7)]
    db.session.commit()

    first = load_tray(size=3)
    assert (first.interventions, first.count, first.left) == (waiting[:3], 7, 4)
    second = load_tray(cursor=first.next_cursor, size=3)
    assert (second.interventions, second.left) == (waiting[3:6], 1)
    last = load_tray(cursor=second.next_cursor, size=3)
    assert (last.interventions, last.left, last.next_cursor) == (waiting[6:], 0, None)
    gas = load_tray("gas", size=2)
    assert (gas.interventions, gas.count) == ([waiting[1], waiting[3]], 3)
    assert load_tray("gas", gas.next_cursor, size=2).interventions == [waiting[5]]


def test_a_card_says_which_skills_nobody_on_it_has(ctx):
    alice = make_user(role="technician", skills=["gas"])
    bob = make_user(role="technician", skills=["electricity"])
    make_intervention(
        technicians=[alice, bob], start=paris(2030, 3, 4, 9), skills=["gas", "roofing"]
    )
    db.session.commit()
    board = build_board(BoardQuery(day=MONDAY), PARIS, NOW)
    for technician in (alice, bob):
        [(_d, _s, card)] = cards_of(board, technician)
        assert card.missing_skills == ["roofing"]
