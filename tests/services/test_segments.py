"""Segment SQL against hand-built contacts: each kind of condition, ANDed, within the
user's scope; conditions are data checked against a whitelist (never SQL)."""

from datetime import timedelta

import pytest
from werkzeug.datastructures import MultiDict

from crm.extensions import db
from crm.models import CustomFieldDefinition, Tag
from crm.models.types import utcnow
from crm.services import segments
from crm.services.segments import SegmentError
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_intervention,
    make_pipeline,
    make_user,
)


def _names(user, *conditions) -> list[str]:
    checked = [segments.check(c) for c in conditions]
    found = {c.first_name for c in segments.preview(user, checked, limit=100)}
    assert segments.count(user, checked) == len(found)
    return sorted(found)


@pytest.fixture
def admin(ctx):
    return make_user(role="admin")


def test_stage_score_source_owner_and_place(admin):
    rep = make_user(role="sales")
    make_contact("Ann", stage="lead", score=10, source="web_form", owner=rep, country="France")
    make_contact("Bob", stage="prospect", score=50, source="import", city="Lyon")
    make_contact("Cid", stage="customer", score=80, source="web_form", country="france")
    make_contact("Dan", stage="former", score=-5, erased_at=utcnow())  # erased: nobody

    assert _names(admin) == ["Ann", "Bob", "Cid"]
    assert _names(admin, {"field": "stage", "op": "in", "value": ["lead", "prospect"]}) == [
        "Ann",
        "Bob",
    ]
    assert _names(admin, {"field": "score", "op": "gte", "value": 50}) == ["Bob", "Cid"]
    assert _names(admin, {"field": "score", "op": "lte", "value": 10}) == ["Ann"]
    assert _names(admin, {"field": "source", "op": "eq", "value": "WEB_FORM"}) == ["Ann", "Cid"]
    assert _names(admin, {"field": "source", "op": "ne", "value": "web_form"}) == ["Bob"]
    assert _names(admin, {"field": "owner", "op": "eq", "value": rep.id}) == ["Ann"]
    assert _names(admin, {"field": "owner", "op": "none"}) == ["Bob", "Cid"]
    assert _names(admin, {"field": "country", "op": "eq", "value": "France"}) == ["Ann", "Cid"]
    assert _names(admin, {"field": "country", "op": "ne", "value": "France"}) == ["Bob"]
    assert _names(admin, {"field": "city", "op": "eq", "value": "lyon"}) == ["Bob"]
    # Conditions are ANDed.
    assert _names(
        admin,
        {"field": "source", "op": "eq", "value": "web_form"},
        {"field": "score", "op": "gte", "value": 50},
    ) == ["Cid"]


def test_tags_consent_and_unsubscribed(admin):
    vip, press = Tag(name="vip"), Tag(name="press")
    db.session.add_all([vip, press])
    ann = make_contact("Ann", consent_status="granted")
    bob = make_contact("Bob", consent_status="refused", unsubscribed_at=utcnow())
    make_contact("Cid")
    ann.tags.append(vip)
    bob.tags.extend([vip, press])
    db.session.flush()

    assert _names(admin, {"field": "tags", "op": "any", "value": [press.id]}) == ["Bob"]
    assert _names(admin, {"field": "tags", "op": "any", "value": [vip.id, press.id]}) == [
        "Ann",
        "Bob",
    ]
    assert _names(admin, {"field": "tags", "op": "none", "value": [vip.id]}) == ["Cid"]
    assert _names(admin, {"field": "consent", "op": "eq", "value": "granted"}) == ["Ann"]
    assert _names(admin, {"field": "consent", "op": "eq", "value": "unknown"}) == ["Cid"]
    assert _names(admin, {"field": "unsubscribed", "op": "yes"}) == ["Bob"]
    assert _names(admin, {"field": "unsubscribed", "op": "no"}) == ["Ann", "Cid"]


def test_company_attributes(admin):
    big = make_company("Big", country="Belgique", industry="Retail", employees=500)
    small = make_company("Small", country="France", industry="retail", employees=8)
    make_contact("Ann", company=big)
    make_contact("Bob", company=small)
    make_contact("Cid")

    assert _names(admin, {"field": "company.employees", "op": "gte", "value": 50}) == ["Ann"]
    assert _names(admin, {"field": "company.employees", "op": "lte", "value": 50}) == ["Bob"]
    assert _names(admin, {"field": "company.industry", "op": "eq", "value": "RETAIL"}) == [
        "Ann",
        "Bob",
    ]
    assert _names(admin, {"field": "company.country", "op": "ne", "value": "France"}) == [
        "Ann",
        "Cid",
    ]


def test_activity_within_and_none_within(admin):
    ann, bob, cid = make_contact("Ann"), make_contact("Bob"), make_contact("Cid")
    make_activity(ann, "call", occurred_at=utcnow() - timedelta(days=3))
    make_activity(bob, "meeting", occurred_at=utcnow() - timedelta(days=40))
    make_activity(bob, "email", occurred_at=utcnow() - timedelta(days=1))
    make_activity(cid, "system", occurred_at=utcnow())  # a change is no exchange

    def within(kind, days, op="within"):
        return {"field": "activity", "op": op, "value": kind, "days": days}

    assert _names(admin, within("call", 7)) == ["Ann"]
    assert _names(admin, within("meeting", 30)) == []
    assert _names(admin, within("meeting", 60)) == ["Bob"]
    assert _names(admin, within("any", 7)) == ["Ann", "Bob"]
    assert _names(admin, within("any", 7, "none_within")) == ["Cid"]
    assert _names(admin, within("email", 30, "none_within")) == ["Ann", "Cid"]


def test_deal_conditions_read_only_the_deals_the_user_sees(admin):
    rep, other = make_user(role="sales"), make_user(role="sales")
    pipeline, second = make_pipeline(), make_pipeline()
    won = next(s for s in pipeline.stages if s.kind == "won")
    ann, bob, cid = make_contact("Ann"), make_contact("Bob"), make_contact("Cid")
    make_contact("Dan")
    make_deal(pipeline, owner=rep, contact=ann)
    make_deal(pipeline, stage=won, owner=other, contact=bob)
    make_deal(second, owner=other, contact=cid)

    assert _names(admin, {"field": "deals", "op": "open"}) == ["Ann", "Cid"]
    assert _names(admin, {"field": "deals", "op": "won"}) == ["Bob"]
    assert _names(admin, {"field": "deals", "op": "none"}) == ["Dan"]
    assert _names(admin, {"field": "deals", "op": "pipeline", "value": second.id}) == ["Cid"]
    assert _names(admin, {"field": "deals", "op": "stage", "value": won.id}) == ["Bob"]
    # A rep sees all contacts but only their own deals: others' deals never show through.
    assert _names(rep, {"field": "deals", "op": "open"}) == ["Ann"]
    assert _names(rep, {"field": "deals", "op": "won"}) == []


def test_custom_field_conditions(admin, data_app):
    with data_app.test_request_context():  # yes/no are read in the user's language too
        _custom_field_conditions(admin)


def _custom_field_conditions(admin):
    db.session.add_all(
        [
            CustomFieldDefinition(
                entity="contact",
                key="sector",
                label="Sector",
                field_type="choice",
                choices=["Health", "Retail"],
            ),
            CustomFieldDefinition(
                entity="contact", key="newsletter", label="Newsletter", field_type="boolean"
            ),
        ]
    )
    db.session.flush()
    make_contact("Ann", custom_fields={"sector": "Health", "newsletter": True})
    make_contact("Bob", custom_fields={"sector": "Retail", "newsletter": False})
    make_contact("Cid", custom_fields={})

    assert _names(admin, {"field": "custom.sector", "op": "eq", "value": "Health"}) == ["Ann"]
    assert _names(admin, {"field": "custom.newsletter", "op": "eq", "value": "yes"}) == ["Ann"]
    assert _names(admin, {"field": "custom.newsletter", "op": "eq", "value": "no"}) == ["Bob"]
    with pytest.raises(SegmentError):
        segments.check({"field": "custom.sector", "op": "eq", "value": "Mining"})


def test_a_technician_counts_only_the_contacts_they_may_see(ctx):
    tech = make_user(role="technician")
    visited = make_contact("Ann")
    make_contact("Bob")
    make_intervention(contact=visited, technicians=[tech], start=utcnow() + timedelta(days=1))
    assert _names(tech) == ["Ann"]


@pytest.mark.parametrize(
    "data",
    [
        {"field": "stage; DROP TABLE contact", "op": "in", "value": ["lead"]},
        {"field": "stage", "op": "like", "value": ["lead"]},
        {"field": "stage", "op": "in", "value": ["lead' OR 1=1 --"]},
        {"field": "score", "op": "gte", "value": "1; DELETE FROM contact"},
        {"field": "activity", "op": "within", "value": "any", "days": 0},
        {"field": "custom.nope", "op": "eq", "value": "x"},
        {"field": "owner", "op": "eq", "value": 999999},
    ],
)
def test_anything_off_the_whitelist_is_refused(ctx, data):
    with pytest.raises(SegmentError):
        segments.check(data)


def test_text_values_are_bound_not_interpolated(admin):
    make_contact("Ann", city="O'Brien; DROP TABLE contact")
    make_contact("Bob", city="Paris")
    assert _names(admin, {"field": "city", "op": "eq", "value": "o'brien; drop table contact"}) == [
        "Ann"
    ]


def test_the_builder_form_adds_removes_and_keeps_errors(ctx):
    form = MultiDict(
        [
            ("c0_field", "stage"),
            ("c0_was", "stage"),
            ("c0_op", "in"),
            ("c0_value", "lead"),
            ("c0_value", "customer"),
            ("c1_field", "score"),
            ("c1_was", "score"),
            ("c1_op", "gte"),
            ("c1_value", "abc"),
            ("c2_field", "city"),
            ("c2_was", "country"),  # the field was just changed: its defaults, to be filled
            ("c2_op", "eq"),
            ("c2_value", "x"),
            ("add", "deals"),
        ]
    )
    draft = segments.from_form(form)
    assert [c.field for c in draft.conditions] == ["stage", "score", "city", "deals"]
    assert draft.conditions[0].value == ["lead", "customer"]
    assert list(draft.errors) == [1, 2]
    assert draft.conditions[1].value == "abc"  # kept as typed, beside its error
    assert draft.conditions[2].value == ""  # not "x": that was the country's
    assert [c.field for c in draft.complete] == ["stage", "deals"]

    form.add("remove", "1")
    form.pop("add")
    draft = segments.from_form(form)
    assert [c.field for c in draft.conditions] == ["stage", "city"]


def test_one_count_query(admin):
    from sqlalchemy import event

    for n in range(5):
        make_contact(f"P{n}", score=n)
    conditions = [segments.check({"field": "score", "op": "gte", "value": 2})]
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    db.session.flush()
    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert segments.count(admin, conditions) == 3
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert len(statements) == 1 and "count" in statements[0].lower()
