"""Merging duplicates: every reference moves, the chosen values are kept, tags are united,
every foreign key of the schema is accounted for, and a failure half-way changes nothing."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, ForeignKey, Integer, Table, func, select

from crm.extensions import db
from crm.models import (
    Activity,
    AuditLog,
    Campaign,
    CampaignRecipient,
    Company,
    Contact,
    CustomFieldDefinition,
    DataImport,
    Deal,
    EmailMessage,
    EmailThread,
    Event,
    EventAttendee,
    ImportRow,
    Incident,
    Intervention,
    Notification,
    Tag,
    Task,
)
from crm.services import merge
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_event,
    make_incident,
    make_intervention,
    make_task,
    make_user,
)


@pytest.fixture(autouse=True)
def _request(data_app, ctx):
    """What the merge screen shows is in the reader's language: a request decides which."""
    with data_app.test_request_context():
        yield


@pytest.fixture
def manager(ctx):
    return make_user(role="manager", name="Mona Manager")


def _tags(contact, *names):
    for name in names:
        tag = db.session.scalars(select(Tag).where(Tag.name == name)).first() or Tag(name=name)
        contact.tags.append(tag)
    db.session.flush()


def _mail(contact, n):
    thread = EmailThread(subject=f"Thread {n}", contact_id=contact.id)
    db.session.add(thread)
    db.session.flush()
    message = EmailMessage(
        direction="in",
        message_id=f"<m{n}@example.com>",
        message_id_key=f"m{n}@example.com",
        subject=f"Hello {n}",
        thread_id=thread.id,
        contact_id=contact.id,
        company_id=contact.company_id,
    )
    db.session.add(message)
    db.session.flush()
    return thread, message


def _everything_on(contact, kept, owner):
    """One of each kind of row that can point to a contact, on `contact`; a few shared
    with `kept` (an event both attend, a campaign both received, a tag both have)."""
    rows = {
        "activity": make_activity(contact, body="Called about the quote"),
        "deal": make_deal(owner=owner, contact=contact, title="Big order"),
        "incident": make_incident(contact, subject="Broken pump"),
        "intervention": make_intervention(contact=contact, title="Fix the pump"),
        "task": make_task(owner, contact_id=contact.id, title="Call back"),
        "event": make_event(owner, contact=contact, title="Demo"),
    }
    rows["attended"] = make_event(owner, attendees=[contact], title="Workshop")
    rows["both_attend"] = make_event(owner, attendees=[contact, kept], title="Both invited")
    rows["thread"], rows["message"] = _mail(contact, 1)
    campaign = Campaign(name="Spring")
    other_campaign = Campaign(name="Autumn")
    db.session.add_all([campaign, other_campaign])
    db.session.flush()
    db.session.add_all(
        [
            CampaignRecipient(
                campaign_id=campaign.id, contact_id=kept.id, email="k@x.fr", unsubscribe_token="t1"
            ),
            CampaignRecipient(
                campaign_id=campaign.id,
                contact_id=contact.id,
                email="o@x.fr",
                unsubscribe_token="t2",
            ),
            CampaignRecipient(
                campaign_id=other_campaign.id,
                contact_id=contact.id,
                email="o@x.fr",
                unsubscribe_token="t3",
            ),
        ]
    )
    data_import = DataImport(entity="contacts", filename="x.csv", content=b"")
    db.session.add(data_import)
    db.session.flush()
    db.session.add(
        ImportRow(
            import_id=data_import.id,
            row_number=1,
            outcome="created",
            record_type="contact",
            record_id=contact.id,
        )
    )
    db.session.add(Notification(user_id=owner.id, title="New lead", url=f"/contacts/{contact.id}"))
    _tags(contact, "vip", "newsletter")
    _tags(kept, "vip", "partner")
    db.session.flush()
    return rows


def _count(model, **where):
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.session.scalar(query)


def test_everything_that_pointed_to_the_other_contact_moves_to_the_kept_one(manager):
    kept = make_contact("Marie", "Curie", email="marie@radium.fr")
    other = make_contact("Marie", "Curie", email="m.curie@radium.fr")
    rows = _everything_on(other, kept, manager)
    db.session.commit()
    other_id = other.id

    counts = merge.merge(manager, "contact", kept, other, {})
    db.session.commit()

    assert db.session.get(Contact, other_id) is None
    assert counts["activity"] == 1 and counts["deal"] == 1 and counts["event_attendee"] == 2
    assert db.session.get(Activity, rows["activity"].id).contact_id == kept.id
    for key, model in (
        ("deal", Deal),
        ("incident", Incident),
        ("intervention", Intervention),
        ("task", Task),
        ("event", Event),
        ("thread", EmailThread),
        ("message", EmailMessage),
    ):
        assert db.session.get(model, rows[key].id).contact_id == kept.id, key
    # Attendance: the workshop moves; the event both attended keeps one attendee row.
    assert _count(EventAttendee, event_id=rows["attended"].id, contact_id=kept.id) == 1
    assert _count(EventAttendee, event_id=rows["both_attend"].id) == 1
    # Campaigns: the one only the other received moves; for the one both received, the
    # other's mailing stays (a mail was sent) without its link.
    assert _count(CampaignRecipient, contact_id=kept.id) == 2
    assert _count(CampaignRecipient, unsubscribe_token="t2", contact_id=None) == 1
    # Not foreign keys, followed all the same.
    assert db.session.scalar(select(ImportRow.record_id)) == kept.id
    assert db.session.scalar(select(Notification.url)) == f"/contacts/{kept.id}"
    # Tags united.
    assert [t.name for t in db.session.get(Contact, kept.id).tags] == [
        "newsletter",
        "partner",
        "vip",
    ]
    # The timeline says what happened, and the audit log too.
    entry = db.session.scalars(
        select(Activity).where(Activity.contact_id == kept.id, Activity.kind == "system")
    ).one()
    assert entry.data["event"] == "merged" and entry.data["id"] == other_id
    merged = db.session.scalars(
        select(AuditLog).where(AuditLog.entity_id == kept.id, AuditLog.summary.like("Merged%"))
    ).one()
    assert merged.actor_id == manager.id
    assert _count(AuditLog, action="delete", entity_type="contact", entity_id=other_id) == 1


def test_values_are_chosen_field_by_field_with_sensible_defaults(manager):
    db.session.add(
        CustomFieldDefinition(entity="contact", key="budget", label="Budget", field_type="number")
    )
    old = datetime.now(UTC) - timedelta(days=30)
    kept = make_contact(
        "Marie",
        "Curie",
        email="marie@radium.fr",
        phone=None,
        title="Chemist",
        city="Paris",
        custom_fields={"budget": 1000},
    )
    other = make_contact(
        "Maria",
        "Sklodowska",
        email="maria@radium.pl",
        phone="+33 6 12 34 56 78",
        title="Physicist",
        city=None,
        owner=manager,
        company=make_company("Radium SA"),
        custom_fields={"budget": 2000},
    )
    kept.updated_at = old  # the other record was changed last
    db.session.commit()

    choices = {c.name: c for c in merge.plan("contact", kept, other).fields}
    assert choices["phone"].default == "other"  # the non-empty one
    assert choices["city"].default == "kept"
    assert choices["title"].default == "other"  # both filled: the more recent
    assert choices["company_id"].other_text == "Radium SA"
    assert choices["custom.budget"].kept_value == 1000

    merge.merge(
        manager,
        "contact",
        kept,
        other,
        {"first_name": "kept", "last_name": "kept", "email": "kept", "custom.budget": "kept"},
    )
    db.session.commit()
    kept = db.session.get(Contact, kept.id)
    assert (kept.first_name, kept.last_name, kept.email) == ("Marie", "Curie", "marie@radium.fr")
    assert kept.title == "Physicist" and kept.city == "Paris"
    assert kept.phone == "+33 6 12 34 56 78" and kept.phone_key == "612345678"
    assert kept.company.name == "Radium SA" and kept.owner_id == manager.id
    assert kept.custom_fields == {"budget": 1000}
    # The search text follows the chosen company.
    assert "radium sa" in kept.search_text


def test_an_opt_out_and_a_refusal_survive_the_merge(manager):
    kept = make_contact("A", "B", consent_status="granted")
    other = make_contact(
        "A", "B", consent_status="refused", unsubscribed_at=datetime.now(UTC) - timedelta(days=2)
    )
    db.session.commit()
    merge.merge(manager, "contact", kept, other, {})
    db.session.commit()
    kept = db.session.get(Contact, kept.id)
    assert kept.consent_status == "refused" and kept.unsubscribed_at is not None


def test_merging_companies_moves_their_people_and_everything_else(manager):
    kept = make_company("Radium SA")
    other = make_company("Radium S.A.", city="Paris")
    person = make_contact("Pierre", "Curie", company=other)
    activity = make_activity(person, body="Visit")
    deal = make_deal(owner=manager, company=other)
    incident = make_incident(person)
    task = make_task(manager, company_id=other.id)
    db.session.commit()
    other_id = other.id

    plan = merge.plan("company", kept, other)
    assert "1 contact" in plan.moves and "1 deal" in plan.moves
    merge.merge(manager, "company", kept, other, {"name": "kept"})
    db.session.commit()

    assert db.session.get(Company, other_id) is None
    person = db.session.get(Contact, person.id)
    assert person.company_id == kept.id
    # Its search text names the company it now belongs to.
    assert "radium sa" in person.search_text and "radium s.a." not in person.search_text
    assert db.session.get(Activity, activity.id).company_id == kept.id
    assert db.session.get(Deal, deal.id).company_id == kept.id
    assert db.session.get(Incident, incident.id).company_id == kept.id
    assert db.session.get(Task, task.id).company_id == kept.id
    kept = db.session.get(Company, kept.id)
    assert kept.name == "Radium SA" and kept.city == "Paris"


def test_every_foreign_key_to_a_contact_or_a_company_is_handled(ctx):
    """A new reference to contacts or companies must say what a merge does with it:
    otherwise deleting the merged record would let the database delete or empty it."""
    for kind in ("contact", "company"):
        assert merge.unhandled_references(kind) == set(), (
            f"add these to crm.services.merge.REFERENCES[{kind!r}]"
        )
        # And nothing listed that the schema does not have (a renamed column).
        assert set(merge.REFERENCES[kind]) <= merge.foreign_keys(kind)


def test_a_reference_nobody_handles_makes_merging_refuse(manager):
    kept, other = make_contact("A", "B"), make_contact("A", "B")
    probe = Table(
        "merge_probe",
        db.metadata,
        Column("id", Integer, primary_key=True),
        Column("contact_id", ForeignKey("contact.id", ondelete="CASCADE")),
    )
    try:
        assert merge.unhandled_references("contact") == {("merge_probe", "contact_id")}
        with pytest.raises(merge.MergeRefused, match="merge_probe.contact_id"):
            merge.merge(manager, "contact", kept, other, {})
    finally:
        db.metadata.remove(probe)
    assert db.session.get(Contact, other.id) is not None


def test_a_record_is_not_merged_with_itself(manager):
    contact = make_contact("A", "B")
    with pytest.raises(merge.MergeRefused):
        merge.plan("contact", contact, contact)
    with pytest.raises(merge.MergeRefused):
        merge.merge(manager, "contact", contact, contact, {})


def test_a_failure_half_way_leaves_both_records_intact(manager, monkeypatch):
    kept = make_contact("Marie", "Curie", title="Chemist")
    other = make_contact("Maria", "Curie", title="Physicist")
    rows = _everything_on(other, kept, manager)
    db.session.commit()
    kept_id, other_id = kept.id, other.id

    def fail(*args):
        raise RuntimeError("the database went away")

    # Fails after the fields were set and every foreign key was moved (flushed).
    monkeypatch.setattr(merge, "_move_loose_references", fail)
    with pytest.raises(RuntimeError):
        merge.merge(manager, "contact", kept, other, {"title": "other"})
    db.session.rollback()

    assert db.session.get(Contact, kept_id).title == "Chemist"
    assert db.session.get(Contact, other_id).title == "Physicist"
    assert db.session.get(Deal, rows["deal"].id).contact_id == other_id
    assert db.session.get(Activity, rows["activity"].id).contact_id == other_id
    assert _count(EventAttendee, contact_id=other_id) == 2
    assert sorted(t.name for t in db.session.get(Contact, other_id).tags) == [
        "newsletter",
        "vip",
    ]
    assert _count(Activity, kind="system") == 0


def test_duplicates_are_found_by_email_phone_or_name(manager):
    record = make_contact("Marie", "Curie", email="Marie@Radium.fr", phone="06 12 34 56 78")
    by_email = make_contact("M.", "C.", email="marie@radium.fr")
    by_phone = make_contact("X", "Y", email="x@y.fr", phone="+33 6 12 34 56 78")
    by_name = make_contact("marie", "curie", email="other@radium.fr")
    make_contact("Pierre", "Curie", email="pierre@radium.fr")
    db.session.flush()
    found = merge.duplicates(manager, "contact", record)
    assert {c.id for c in found} == {by_email.id, by_phone.id, by_name.id}
    assert [c.id for c in merge.search(manager, "contact", record, "curie")] == [
        c.id for c in merge.search(manager, "contact", record, "curie")
    ]
    assert record.id not in {c.id for c in merge.search(manager, "contact", record, "curie")}
