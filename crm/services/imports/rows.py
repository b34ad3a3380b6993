"""One CSV row into the CRM: read and check it whole, then create, update or skip.

A row is parsed and validated completely before anything is written (values, owner,
stage, custom fields), so a rejected row leaves nothing behind. Duplicates are looked
up in a BatchLookup read once per batch of rows, which the rows written in the batch
join, so a second occurrence of an email in the file is a duplicate too.
"""

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from crm.extensions import db
from crm.labels import STAGE_LABELS
from crm.models import Activity, Company, Contact, ImportRow, Tag, User
from crm.models.contacts import STAGES
from crm.models.search_keys import email_key, fold, phone_key
from crm.models.types import utcnow
from crm.permissions import visible_activities, visible_companies, visible_contacts
from crm.services import custom_fields, lead_routing
from crm.services.imports.fields import CUSTOM_ENTITY, CUSTOM_PREFIX, labels

_PHONE = re.compile(r"^[0-9+().\s/-]{4,40}$")
_INTEGER = re.compile(r"^\d+$")
_TAG_SEPARATORS = re.compile(r"[,;|]")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_DAY_FIRST = re.compile(
    r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:\s+(\d{1,2})[:h](\d{2})(?::(\d{2}))?)?$"
)
MIN_PHONE_KEY = 6  # shorter numbers match too many people to call them the same person
MAX_EMPLOYEES = 10_000_000
OWNER_ROLES = ("admin", "manager", "sales", "support")

_CONSENT = {
    "granted": {
        "yes",
        "y",
        "oui",
        "o",
        "true",
        "vrai",
        "1",
        "x",
        "granted",
        "accepte",
        "opt in",
        "optin",
    },
    "refused": {"no", "n", "non", "false", "faux", "0", "refused", "refuse", "opt out", "optout"},
    "unknown": {"unknown", "inconnu", "?", "nsp"},
}
# French words people write for the stages, beyond the translated labels.
_STAGE_WORDS = {
    "client": "customer",
    "ancien client": "former",
    "piste": "lead",
    "prospect": "prospect",
}


class RowRejected(Exception):
    """The row cannot be imported; the message (translated) says why."""


@dataclass
class Outcome:
    outcome: str  # created, updated, skipped, rejected
    reason: str | None = None
    record: object | None = None  # the contact, company or note; its id is read after the flush
    before: dict | None = None
    created: dict = field(
        default_factory=dict
    )  # side records: {"company": Company, "activity": Activity}
    route: bool = False  # a new lead to route once it has its id

    def as_row(self, import_id: int, number: int) -> dict:
        record = self.record
        before = dict(self.before) if self.before else None
        side = {name: obj.id for name, obj in self.created.items() if obj is not None}
        if side:
            before = {**(before or {}), "created": side}
        return {
            "import_id": import_id,
            "row_number": number,
            "outcome": self.outcome,
            "reason": (self.reason or None) and self.reason[:500],
            "record_type": _record_type(record) if record is not None else None,
            "record_id": record.id if record is not None else None,
            "before": before,
        }


def _record_type(record) -> str:
    return {Contact: "contact", Company: "company", Activity: "activity"}[type(record)]


# ---- what the whole run knows --------------------------------------------------------


@dataclass
class RunContext:
    """What every row of one import needs, read once per run (users, stage names)."""

    import_id: int
    entity: str
    columns: list[str]  # the field of each column, "" for none
    policy: str
    source: str
    route_leads: bool
    actor: User
    zone: ZoneInfo
    locale: str
    users_by_email: dict[str, int] = field(default_factory=dict)
    users_by_name: dict[str, int | None] = field(default_factory=dict)
    stage_names: dict[str, str] = field(default_factory=dict)
    field_labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, data_import, actor: User, zone: ZoneInfo, locale: str) -> "RunContext":
        options = data_import.mapping or {}
        context = cls(
            import_id=data_import.id,
            entity=data_import.entity,
            columns=list(options.get("columns") or []),
            policy=data_import.duplicate_policy,
            source=options.get("source") or "import",
            route_leads=bool(options.get("route_leads")) and data_import.entity == "contacts",
            actor=actor,
            zone=zone,
            locale=locale,
        )
        users = db.session.execute(
            select(User.id, User.email, User.name).where(
                User.active.is_(True), User.role.in_(OWNER_ROLES)
            )
        ).all()
        for user_id, user_email, name in users:
            context.users_by_email[email_key(user_email)] = user_id
            key = fold(name)
            # Two people with one name: the name says nobody in particular.
            context.users_by_name[key] = None if key in context.users_by_name else user_id
        for stage in STAGES:
            context.stage_names[fold(stage)] = stage
            for language in ("en", "fr"):
                with force_locale(language):
                    context.stage_names[fold(str(STAGE_LABELS[stage]))] = stage
        for word, stage in _STAGE_WORDS.items():
            context.stage_names.setdefault(word, stage)
        context.field_labels = labels(data_import.entity)
        return context

    def values(self, cells: list[str]) -> tuple[dict[str, str], str | None]:
        """{field: cell} of the mapped columns, and a reason when the row is misshapen."""
        extra = [cell for cell in cells[len(self.columns) :] if cell]
        if extra:
            return {}, _(
                "This row has more cells than the header has columns: is a separator "
                "inside a value that has no quotes?"
            )
        row = {}
        for index, key in enumerate(self.columns):
            if key:
                row[key] = cells[index] if index < len(cells) else ""
        return row, None

    def label(self, key: str) -> str:
        return self.field_labels.get(key, key)


# ---- checking values -----------------------------------------------------------------


def _limit(model, name: str, value: str, label: str) -> str:
    length = model.__table__.c[name].type.length
    if length and len(value) > length:
        raise RowRejected(
            _("%(field)s is too long (at most %(count)d characters).", field=label, count=length)
        )
    return value


def _email(value: str, label: str) -> str:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise RowRejected(_("Invalid email: %(value)s", value=value)) from None
    return _limit(Contact, "email", value, label)


def _phone(value: str) -> str:
    if not _PHONE.match(value):
        raise RowRejected(_("Invalid phone number: %(value)s", value=value))
    return value


def _web_address(model, name: str, value: str, label: str) -> str:
    if "://" not in value and "." in value.split("/")[0]:
        value = "https://" + value  # "linkedin.com/in/x", as people paste it
    if not re.match(r"(?i)^https?://[^\s/]+\.[^\s]*$", value):
        raise RowRejected(_("%(field)s: not a web address: %(value)s", field=label, value=value))
    return _limit(model, name, value, label)


def _owner(context: RunContext, value: str) -> int:
    owner_id = context.users_by_email.get(email_key(value)) or context.users_by_name.get(
        fold(value)
    )
    if not owner_id:
        raise RowRejected(_("No user with this email or name: %(value)s", value=value))
    return owner_id


def _stage(context: RunContext, value: str) -> str:
    stage = context.stage_names.get(fold(value))
    if not stage:
        raise RowRejected(_("Unknown stage: %(value)s", value=value))
    return stage


def _consent(value: str) -> str:
    folded = fold(value).replace("-", " ")
    for status, words in _CONSENT.items():
        if folded in words:
            return status
    raise RowRejected(_("Marketing consent: answer yes or no (not %(value)s).", value=value))


def _employees(value: str) -> int:
    digits = re.sub(r"[\s\u202f.']", "", value)
    if not _INTEGER.match(digits) or int(digits) > MAX_EMPLOYEES:
        raise RowRejected(_("Employees: enter a whole number (not %(value)s).", value=value))
    return int(digits)


def _moment(context: RunContext, value: str) -> datetime:
    """A date, or a date and time, as the importing user writes it, in their time zone."""
    match = _ISO.match(value)
    if match:
        year, month, day, hour, minute, second = match.groups()
    else:
        match = _DAY_FIRST.match(value)
        if not match:
            raise RowRejected(
                _("Unknown date: %(value)s (write 31/12/2026 or 2026-12-31).", value=value)
            )
        day, month, year, hour, minute, second = match.groups()
    try:
        moment = datetime.combine(
            date(int(year), int(month), int(day)),
            time(int(hour or 0), int(minute or 0), int(second or 0)),
        )
    except ValueError:
        raise RowRejected(_("This date does not exist: %(value)s", value=value)) from None
    return moment.replace(tzinfo=context.zone)


def _custom(
    context: RunContext, row: dict[str, str], current: dict | None, *, creating: bool
) -> dict:
    """The record's custom field values with the row's over `current`; rejected on any error.

    Creating, every field is checked (a required one left empty rejects the row); updating,
    only the non-empty values the row brings are."""
    custom_entity = CUSTOM_ENTITY.get(context.entity)
    if custom_entity is None:
        return current or {}
    raw = {
        key[len(CUSTOM_PREFIX) :]: value
        for key, value in row.items()
        if key.startswith(CUSTOM_PREFIX) and (creating or value)
    }
    if not creating and not raw:
        return current or {}
    values, errors = custom_fields.validate(
        custom_entity, raw, current, only=None if creating else raw.keys(), locale=context.locale
    )
    if errors:
        reasons = []
        for definition in custom_fields.definitions(custom_entity):
            if definition.key not in errors:
                continue
            if definition.required and not raw.get(definition.key):
                reasons.append(_("Required field %(label)s is empty.", label=definition.label))
            else:
                reasons.append(f"{definition.label}: {errors[definition.key]}")
        raise RowRejected(" ".join(reasons))
    return values


# ---- parsing rows --------------------------------------------------------------------

_CONTACT_TEXT = ("title", "source", "street", "postcode", "city", "country")
_COMPANY_TEXT = ("industry", "street", "postcode", "city", "country")


def parse_contact(context: RunContext, row: dict[str, str]) -> dict:
    """The row's values, checked, without touching the database beyond the lookups read."""
    first, last = row.get("first_name", ""), row.get("last_name", "")
    if not first and not last and row.get("name"):
        first, _sep, last = row["name"].partition(" ")
        first, last = first.strip(), last.strip()
    fields: dict = {}
    if first:
        fields["first_name"] = _limit(Contact, "first_name", first, context.label("first_name"))
    if last:
        fields["last_name"] = _limit(Contact, "last_name", last, context.label("last_name"))
    if row.get("email"):
        fields["email"] = _email(row["email"], context.label("email"))
    if row.get("phone"):
        fields["phone"] = _phone(row["phone"])
    if not (first or last or fields.get("email") or fields.get("phone")):
        raise RowRejected(_("No name, email or phone number."))
    for name in _CONTACT_TEXT:
        if row.get(name):
            fields[name] = _limit(Contact, name, row[name], context.label(name))
    for name in ("linkedin_url", "twitter_url"):
        if row.get(name):
            fields[name] = _web_address(Contact, name, row[name], context.label(name))
    if row.get("stage"):
        fields["stage"] = _stage(context, row["stage"])
    if row.get("owner"):
        fields["owner_id"] = _owner(context, row["owner"])
    if row.get("consent"):
        fields["consent_status"] = _consent(row["consent"])
    company = row.get("company", "")
    return {
        "fields": fields,
        "company": _limit(Company, "name", company, context.label("company")) if company else "",
        "tags": sorted(
            {t.strip()[:60] for t in _TAG_SEPARATORS.split(row.get("tags", "")) if t.strip()}
        ),
        "notes": row.get("notes", ""),
        "row": row,
    }


def parse_company(context: RunContext, row: dict[str, str]) -> dict:
    name = row.get("name", "")
    if not name:
        raise RowRejected(_("The company name is empty."))
    fields: dict = {"name": _limit(Company, "name", name, context.label("name"))}
    for text in _COMPANY_TEXT:
        if row.get(text):
            fields[text] = _limit(Company, text, row[text], context.label(text))
    if row.get("email"):
        fields["email"] = _email(row["email"], context.label("email"))
    if row.get("phone"):
        fields["phone"] = _phone(row["phone"])
    for name_ in ("website", "linkedin_url"):
        if row.get(name_):
            fields[name_] = _web_address(Company, name_, row[name_], context.label(name_))
    if row.get("employees"):
        fields["employees"] = _employees(row["employees"])
    if row.get("stage"):
        fields["stage"] = _stage(context, row["stage"])
    if row.get("owner"):
        fields["owner_id"] = _owner(context, row["owner"])
    return {"fields": fields, "notes": row.get("notes", ""), "row": row}


def parse_note(context: RunContext, row: dict[str, str]) -> dict:
    body = row.get("body", "")
    if not body:
        raise RowRejected(_("The note is empty."))
    if len(body) > 20000:
        raise RowRejected(_("The note is too long (at most %(count)d characters).", count=20000))
    email = row.get("contact_email", "")
    company = row.get("company", "")
    if not email and not company:
        raise RowRejected(_("No contact email and no company name: the note belongs to nobody."))
    return {
        "email": email,
        "company": company,
        "subject": _limit(Activity, "subject", row.get("subject", ""), context.label("subject")),
        "body": body,
        "occurred_at": _moment(context, row["occurred_at"]) if row.get("occurred_at") else None,
        "author_id": _owner(context, row["author"]) if row.get("author") else None,
    }


PARSERS = {"contacts": parse_contact, "companies": parse_company, "notes": parse_note}


# ---- what a batch looks up at once ---------------------------------------------------


@dataclass
class BatchLookup:
    """Existing records the batch's rows may match, read in a few queries, and the ones
    the batch writes as it goes (so the file's own duplicates are found too)."""

    contacts_by_email: dict[str, Contact] = field(default_factory=dict)
    contacts_by_phone: dict[str, Contact] = field(default_factory=dict)
    companies_by_name: dict[str, Company] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)
    notes: set[tuple] = field(default_factory=set)
    # ids of records this import created in earlier batches -> their row number
    created_rows: dict[int, int] = field(default_factory=dict)
    # records created in this batch -> their row number
    new_rows: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, context: RunContext, parsed: list[dict]) -> "BatchLookup":
        lookup = cls()
        actor = context.actor
        emails, phones, companies, tags = set(), set(), set(), set()
        for item in parsed:
            if context.entity == "contacts":
                emails.add(email_key(item["fields"].get("email")))
                if not item["fields"].get("email"):  # a phone number matches only without an email
                    phones.add(phone_key(item["fields"].get("phone")))
                companies.add(fold(item["company"]))
                tags.update(item["tags"])
            elif context.entity == "companies":
                companies.add(fold(item["fields"]["name"]))
            else:
                emails.add(email_key(item["email"]))
                companies.add(fold(item["company"]))
        emails.discard("")
        phones = {p for p in phones if len(p) >= MIN_PHONE_KEY}
        companies.discard("")
        if emails or phones:
            found = db.session.scalars(
                visible_contacts(actor)
                .where(or_(Contact.email_key.in_(emails), Contact.phone_key.in_(phones)))
                .options(selectinload(Contact.company), selectinload(Contact.tags))
                .order_by(Contact.id)
            )
            for contact in found:
                if contact.email_key:
                    lookup.contacts_by_email.setdefault(contact.email_key, contact)
                if len(contact.phone_key) >= MIN_PHONE_KEY:
                    lookup.contacts_by_phone.setdefault(contact.phone_key, contact)
        if companies:
            found = db.session.scalars(
                visible_companies(actor).where(Company.name_key.in_(companies)).order_by(Company.id)
            )
            for company in found:
                lookup.companies_by_name.setdefault(company.name_key, company)
        if tags:
            lookup.tags = {
                t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(tags)))
            }
        if context.entity == "notes" and context.policy != "create":
            lookup._load_notes(context, parsed)
        lookup._load_created_rows(context)
        return lookup

    def _load_notes(self, context: RunContext, parsed: list[dict]) -> None:
        contact_ids = {c.id for c in self.contacts_by_email.values()}
        company_ids = {c.id for c in self.companies_by_name.values()}
        bodies = {item["body"] for item in parsed}
        if not bodies or not (contact_ids or company_ids):
            return
        rows = db.session.execute(
            visible_activities(context.actor)
            .with_only_columns(
                Activity.contact_id, Activity.company_id, Activity.body, Activity.occurred_at
            )
            .where(
                Activity.kind == "note",
                Activity.body.in_(bodies),
                or_(Activity.contact_id.in_(contact_ids), Activity.company_id.in_(company_ids)),
            )
        )
        for contact_id, company_id, body, occurred_at in rows:
            self.notes.add(("contact", contact_id, body, None))
            self.notes.add(("company", company_id, body, None))
            self.notes.add(("contact", contact_id, body, occurred_at))
            self.notes.add(("company", company_id, body, occurred_at))

    def _load_created_rows(self, context: RunContext) -> None:
        """Which of the matched records an earlier row of this file created."""
        record_type, ids = {
            "contacts": (
                "contact",
                {
                    c.id
                    for c in (*self.contacts_by_email.values(), *self.contacts_by_phone.values())
                },
            ),
            "companies": ("company", {c.id for c in self.companies_by_name.values()}),
        }.get(context.entity, ("", set()))
        if not ids:
            return
        self.created_rows = dict(
            db.session.execute(
                select(ImportRow.record_id, ImportRow.row_number).where(
                    ImportRow.import_id == context.import_id,
                    ImportRow.outcome == "created",
                    ImportRow.record_type == record_type,
                    ImportRow.record_id.in_(ids),
                )
            ).all()
        )

    def first_row_of(self, record) -> int | None:
        return self.new_rows.get(id(record)) or self.created_rows.get(record.id)

    def remember_contact(self, contact: Contact) -> None:
        if contact.email:
            self.contacts_by_email.setdefault(email_key(contact.email), contact)
        key = phone_key(contact.phone)
        if len(key) >= MIN_PHONE_KEY:
            self.contacts_by_phone.setdefault(key, contact)


# ---- writing -------------------------------------------------------------------------


def _duplicate_reason(lookup: BatchLookup, record, what: str) -> str:
    first_row = lookup.first_row_of(record)
    if first_row:
        return _("Same %(what)s as row %(row)d of this file.", what=what, row=first_row)
    return _("Already in the CRM (same %(what)s).", what=what)


def _set_fields(record, fields: dict, before: dict, after: dict) -> None:
    """Non-empty values over the record's, keeping what they replace for undo."""
    for name, value in fields.items():
        old = getattr(record, name)
        if old != value:
            before.setdefault(name, _plain(old))
            after[name] = _plain(value)
            setattr(record, name, value)


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _company_for(context: RunContext, lookup: BatchLookup, name: str, outcome: Outcome) -> Company:
    company = lookup.companies_by_name.get(fold(name))
    if company is None:
        company = Company(name=name, owner_id=context.actor.id)
        db.session.add(company)
        lookup.companies_by_name[fold(name)] = company
        outcome.created["company"] = company
    return company


def _tags_for(lookup: BatchLookup, names: list[str]) -> list[Tag]:
    tags = []
    for name in names:
        tag = lookup.tags.get(name)
        if tag is None:
            tag = lookup.tags[name] = Tag(name=name)
            db.session.add(tag)
        tags.append(tag)
    return tags


def _note(context: RunContext, body: str, **where) -> Activity:
    activity = Activity(kind="note", body=body, author_id=context.actor.id, **where)
    db.session.add(activity)
    return activity


def write_contact(context: RunContext, lookup: BatchLookup, number: int, item: dict) -> Outcome:
    fields = item["fields"]
    match, what = None, ""
    if fields.get("email"):
        match, what = lookup.contacts_by_email.get(email_key(fields["email"])), _("email")
    elif len(phone_key(fields.get("phone"))) >= MIN_PHONE_KEY:
        match, what = lookup.contacts_by_phone.get(phone_key(fields["phone"])), _("phone number")
    if match is not None and context.policy == "skip":
        return Outcome("skipped", _duplicate_reason(lookup, match, what), record=match)
    if match is not None and context.policy == "update":
        return _update_contact(context, lookup, match, item)
    custom = _custom(context, item["row"], None, creating=True)
    outcome = Outcome("created")
    contact = Contact(
        first_name=fields.get("first_name", ""),
        last_name=fields.get("last_name", ""),
        source=fields.get("source") or context.source,
        custom_fields=custom,
        **{k: v for k, v in fields.items() if k not in ("first_name", "last_name", "source")},
    )
    if contact.consent_status and contact.consent_status != "unknown":
        contact.consent_at = utcnow()
    if "owner_id" not in fields:
        # Routed once it has its id (see route()); whoever imports owns it otherwise.
        outcome.route = context.route_leads
        contact.owner_id = None if outcome.route else context.actor.id
    if item["company"]:
        contact.company = _company_for(context, lookup, item["company"], outcome)
    if item["tags"]:
        contact.tags = _tags_for(lookup, item["tags"])
    # No "created" entry on the timeline for each row: the audit log has the creation, and
    # 50,000 of them would double the rows an import writes.
    db.session.add(contact)
    if item["notes"]:
        _note(context, item["notes"], contact=contact, company=contact.company)
    lookup.remember_contact(contact)
    lookup.new_rows[id(contact)] = number
    outcome.record = contact
    return outcome


def _update_contact(
    context: RunContext, lookup: BatchLookup, contact: Contact, item: dict
) -> Outcome:
    custom = _custom(context, item["row"], contact.custom_fields, creating=False)
    outcome = Outcome("updated", record=contact)
    before: dict = {}
    after: dict = {}
    _set_fields(contact, item["fields"], before, after)
    if "consent_status" in after and contact.consent_status != "unknown":
        contact.consent_at = utcnow()
    if item["company"] and fold(item["company"]) != (
        contact.company.name_key if contact.company else ""
    ):
        company = _company_for(context, lookup, item["company"], outcome)
        before["company_id"] = contact.company_id
        contact.company = company
        after["company_id"] = None  # known after the flush; see finish_outcome()
    if custom != (contact.custom_fields or {}):
        before["custom_fields"] = dict(contact.custom_fields or {})
        after["custom_fields"] = custom
        contact.custom_fields = custom
    old_tags = [t.name for t in contact.tags] if item["tags"] else []
    if item["tags"] and not set(item["tags"]) <= set(old_tags):
        before["tags"] = old_tags
        contact.tags = sorted(
            {*contact.tags, *_tags_for(lookup, item["tags"])}, key=lambda t: t.name
        )
        after["tags"] = sorted({*old_tags, *item["tags"]})
    if item["notes"]:
        outcome.created["activity"] = _note(
            context, item["notes"], contact=contact, company=contact.company
        )
    if not after and not outcome.created:
        return Outcome("skipped", _("Already up to date."), record=contact)
    outcome.before = {"fields": before, "after": after}
    lookup.remember_contact(contact)
    return outcome


def write_company(context: RunContext, lookup: BatchLookup, number: int, item: dict) -> Outcome:
    fields = item["fields"]
    match = lookup.companies_by_name.get(fold(fields["name"]))
    if match is not None and context.policy == "skip":
        return Outcome("skipped", _duplicate_reason(lookup, match, _("name")), record=match)
    if match is not None and context.policy == "update":
        custom = _custom(context, item["row"], match.custom_fields, creating=False)
        outcome = Outcome("updated", record=match)
        before: dict = {}
        after: dict = {}
        _set_fields(match, {k: v for k, v in fields.items() if k != "name"}, before, after)
        if custom != (match.custom_fields or {}):
            before["custom_fields"] = dict(match.custom_fields or {})
            after["custom_fields"] = custom
            match.custom_fields = custom
        if item["notes"]:
            outcome.created["activity"] = _note(context, item["notes"], company=match)
        if not after and not outcome.created:
            return Outcome("skipped", _("Already up to date."), record=match)
        outcome.before = {"fields": before, "after": after}
        return outcome
    custom = _custom(context, item["row"], None, creating=True)
    company = Company(custom_fields=custom, **fields)
    if "owner_id" not in fields:
        company.owner_id = context.actor.id
    db.session.add(company)
    if item["notes"]:
        _note(context, item["notes"], company=company)
    lookup.companies_by_name.setdefault(fold(fields["name"]), company)
    lookup.new_rows[id(company)] = number
    return Outcome("created", record=company)


def write_note(context: RunContext, lookup: BatchLookup, number: int, item: dict) -> Outcome:
    contact = lookup.contacts_by_email.get(email_key(item["email"])) if item["email"] else None
    company = lookup.companies_by_name.get(fold(item["company"])) if item["company"] else None
    if contact is None and company is None:
        if item["email"]:
            raise RowRejected(_("No contact with this email: %(value)s", value=item["email"]))
        raise RowRejected(_("No company with this name: %(value)s", value=item["company"]))
    kind, record = ("contact", contact) if contact is not None else ("company", company)
    key = (kind, record.id, item["body"], item["occurred_at"])
    if context.policy != "create" and record.id is not None and key in lookup.notes:
        return Outcome("skipped", _("This note is already on the record."), record=None)
    lookup.notes.add(key)
    activity = Activity(
        kind="note",
        subject=item["subject"] or None,
        body=item["body"],
        author_id=item["author_id"] or context.actor.id,
        contact=contact,
        company=contact.company if contact is not None else company,
        occurred_at=item["occurred_at"] or utcnow(),
    )
    db.session.add(activity)
    if contact is not None:
        contact.last_activity_at = max(
            contact.last_activity_at or activity.occurred_at, activity.occurred_at
        )
    return Outcome("created", record=activity)


WRITERS = {"contacts": write_contact, "companies": write_company, "notes": write_note}


def route(context: RunContext, outcome: Outcome) -> None:
    """A new lead to its rep by the routing rules; to whoever imports when no rule or team
    takes it."""
    contact = outcome.record
    lead_routing.route_lead(contact, context.actor)
    if contact.owner_id is None and contact.owner is None:
        contact.owner_id = context.actor.id


def finish_outcome(outcome: Outcome) -> None:
    """After the flush: ids the undo needs that did not exist when the row was written."""
    after = (outcome.before or {}).get("after")
    if after and "company_id" in after:
        after["company_id"] = outcome.record.company_id
