"""Exports of a filtered list (contacts, companies, deals, incidents) to CSV or XLSX.

An export holds exactly the rows its list shows to the user, with the same filters: the
rows come from the list's own function (list_contacts, list_companies, list_deals,
list_incidents), walked page after page by its keyset cursor, so the scope and the filters
are the list's and never a copy of them. Each page is written out and released before the
next is read: memory stays flat whether the list holds 50 rows or 100,000.

Cells are readable in a spreadsheet: labels in the user's language, times in their time
zone, numbers and money as numbers. Text cells that a spreadsheet would run as a formula
are neutralized (crm.csv_safety), in CSV and XLSX alike. Deal amounts only go to those
who may see them (deals.see_amounts).
"""

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.csv_safety import safe_cell
from crm.extensions import db
from crm.labels import (
    CHANNEL_LABELS,
    INCIDENT_KIND_LABELS,
    INCIDENT_STATUS_LABELS,
    PRIORITY_LABELS,
    STAGE_LABELS,
)
from crm.models import User
from crm.permissions import has_permission
from crm.services import audit, companies, contacts, custom_fields, deal_list, incidents
from crm.services.deal_filters import DealFilters
from crm.services.reminders import user_zone

FORMATS = ("csv", "xlsx")
# Rows read, written and released at a time.
BATCH = 500
CONSENT_LABELS = {"unknown": _l("Not asked"), "granted": _l("Granted"), "refused": _l("Refused")}
MIMETYPES = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ExportRefused(Exception):
    """This user may not export this list (the list itself is closed to them)."""


@dataclass(frozen=True)
class Column:
    label: str
    value: Callable  # item -> str, int, Decimal, date, datetime, bool or None
    # How a number shows in XLSX; dates and times get their own formats.
    number_format: str | None = None


@dataclass(frozen=True)
class Entity:
    name: str  # "contacts": the URL's name
    custom_entity: str  # "contact": custom fields and the audit log's entity type
    label: str
    permission: str  # the permission of the list itself
    read_filters: Callable  # (args, user) -> the list's filters
    batches: Callable  # (user, filters, size) -> iterator of lists of items
    columns: Callable  # (user) -> [Column]
    record: Callable = lambda item: item  # item -> the record holding custom_fields


@dataclass
class Export:
    """One export being written: what, for whom, and how many rows went out."""

    entity: Entity
    user: User
    filters: object
    fmt: str
    locale: str
    rows: int = 0
    columns: list[Column] = field(default_factory=list)

    @property
    def french(self) -> bool:
        return self.locale.startswith("fr")

    @property
    def delimiter(self) -> str:
        # Excel reads a CSV with the list separator of the system's locale: ";" in French,
        # where "," is the decimal separator; "," elsewhere.
        return ";" if self.french else ","

    @property
    def filename(self) -> str:
        return f"{self.entity.name}-{date.today().isoformat()}.{self.fmt}"

    @property
    def mimetype(self) -> str:
        return MIMETYPES[self.fmt]


# ---- the lists, page after page --------------------------------------------------------


def _contact_batches(user, filters, size):
    filters = replace(filters, cursor=None)
    while True:
        page = contacts.list_contacts(user, filters, size)
        yield page.contacts
        if not page.next_cursor:
            return
        filters = replace(filters, cursor=page.next_cursor)


def _company_batches(user, filters, size):
    filters = replace(filters, cursor=None)
    while True:
        rows, next_cursor = companies.list_companies(user, filters, size)
        yield rows
        if not next_cursor:
            return
        filters = replace(filters, cursor=next_cursor)


@dataclass(frozen=True)
class DealListFilters:
    """The deal list's filters and its sort, which the list reads apart."""

    filters: DealFilters
    sort: str

    def as_args(self) -> dict:
        args = self.filters.as_args()
        if self.sort != deal_list.DEFAULT_SORT:
            args["sort"] = self.sort
        return args


def _deal_filters(args, user) -> DealListFilters:
    return DealListFilters(DealFilters.from_args(args), deal_list.parse_sort(args.get("sort")))


def _deal_batches(user, filters: DealListFilters, size):
    cursor = None
    while True:
        page = deal_list.list_deals(user, filters.filters, filters.sort, cursor, size)
        yield page.deals
        if not page.next_cursor:
            return
        cursor = page.next_cursor


def _incident_batches(user, filters, size):
    filters = replace(filters, cursor=None)
    while True:
        page = incidents.list_incidents(user, filters, size)
        yield page.incidents
        if not page.next_cursor:
            return
        filters = replace(filters, cursor=page.next_cursor)


# ---- columns -------------------------------------------------------------------------


def _name(record) -> str | None:
    return record.name if record is not None else None


def _contact_columns(user) -> list[Column]:
    return [
        Column(_("First name"), lambda c: c.first_name),
        Column(_("Last name"), lambda c: c.last_name),
        Column(_("Title"), lambda c: c.title),
        Column(_("Company"), lambda c: _name(c.company)),
        Column(_("Email"), lambda c: c.email),
        Column(_("Phone"), lambda c: c.phone),
        Column(_("Stage"), lambda c: str(STAGE_LABELS.get(c.stage, c.stage))),
        Column(_("Owner"), lambda c: _name(c.owner)),
        Column(_("Source"), lambda c: c.source),
        Column(_("Score"), lambda c: c.score, "0"),
        Column(_("Tags"), lambda c: ", ".join(tag.name for tag in c.tags)),
        Column(_("Street"), lambda c: c.street),
        Column(_("Postcode"), lambda c: c.postcode),
        Column(_("City"), lambda c: c.city),
        Column(_("Country"), lambda c: c.country),
        Column(_("LinkedIn"), lambda c: c.linkedin_url),
        Column(_("Twitter"), lambda c: c.twitter_url),
        Column(_("Consent to marketing"), lambda c: str(CONSENT_LABELS[c.consent_status])),
        Column(_("Unsubscribed on"), lambda c: c.unsubscribed_at),
        Column(_("Last activity"), lambda c: c.last_activity_at),
        Column(_("Created"), lambda c: c.created_at),
    ]


def _company_columns(user) -> list[Column]:
    return [
        Column(_("Name"), lambda r: r.company.name),
        Column(_("Industry"), lambda r: r.company.industry),
        Column(_("Employees"), lambda r: r.company.employees, "#,##0"),
        Column(_("Website"), lambda r: r.company.website),
        Column(_("Email"), lambda r: r.company.email),
        Column(_("Phone"), lambda r: r.company.phone),
        Column(_("Stage"), lambda r: str(STAGE_LABELS.get(r.company.stage, r.company.stage))),
        Column(_("Owner"), lambda r: _name(r.company.owner)),
        Column(_("Contacts"), lambda r: r.contact_count, "0"),
        Column(_("Street"), lambda r: r.company.street),
        Column(_("Postcode"), lambda r: r.company.postcode),
        Column(_("City"), lambda r: r.company.city),
        Column(_("Country"), lambda r: r.company.country),
        Column(_("LinkedIn"), lambda r: r.company.linkedin_url),
        Column(_("Created"), lambda r: r.company.created_at),
    ]


def _deal_columns(user) -> list[Column]:
    columns = [
        Column(_("Deal"), lambda d: d.title),
        Column(_("Pipeline"), lambda d: d.pipeline.name),
        Column(_("Stage"), lambda d: d.stage.name),
    ]
    if has_permission(user, "deals.see_amounts"):
        columns += [
            Column(_("Amount"), lambda d: d.amount, "#,##0.00"),
            Column(_("Currency"), lambda d: d.currency),
            Column(_("Weighted amount"), lambda d: d.weighted_amount, "#,##0.00"),
        ]
    return columns + [
        Column(_("Probability (%)"), lambda d: d.stage.probability, "0"),
        Column(_("Expected close"), lambda d: d.expected_close),
        Column(_("Owner"), lambda d: _name(d.owner)),
        Column(_("Contact"), lambda d: _name(d.contact)),
        Column(_("Company"), lambda d: _name(d.company)),
        Column(_("Source"), lambda d: d.source),
        Column(_("Lost reason"), lambda d: d.lost_reason),
        Column(_("Closed"), lambda d: d.closed_at),
        Column(_("Last change"), lambda d: d.updated_at),
        Column(_("Created"), lambda d: d.created_at),
    ]


def _incident_columns(user) -> list[Column]:
    return [
        Column(_("Reference"), lambda i: i.reference),
        Column(_("Subject"), lambda i: i.subject),
        Column(_("Kind"), lambda i: str(INCIDENT_KIND_LABELS.get(i.kind, i.kind))),
        Column(_("Priority"), lambda i: str(PRIORITY_LABELS.get(i.priority, i.priority))),
        Column(_("Status"), lambda i: str(INCIDENT_STATUS_LABELS.get(i.status, i.status))),
        Column(_("Channel"), lambda i: str(CHANNEL_LABELS.get(i.channel, i.channel))),
        Column(_("Contact"), lambda i: _name(i.contact)),
        Column(_("Company"), lambda i: _name(i.company)),
        Column(_("Assignee"), lambda i: _name(i.assignee)),
        Column(_("Team"), lambda i: _name(i.team)),
        Column(_("Created"), lambda i: i.created_at),
        Column(_("First response due"), lambda i: i.first_response_due_at),
        Column(_("First response"), lambda i: i.first_responded_at),
        Column(_("Resolution due"), lambda i: i.resolution_due_at),
        Column(_("Resolved"), lambda i: i.resolved_at),
        Column(_("Closed"), lambda i: i.closed_at),
    ]


def _custom_value(definition, value):
    """A custom field's value for a cell: numbers and dates typed, the rest as displayed."""
    if value is None or value == "" or value == []:
        return None
    if definition.field_type == "number" and isinstance(value, int | float):
        return value
    if definition.field_type == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return custom_fields.display(definition, value)


def _custom_columns(entity: Entity) -> list[Column]:
    columns = []
    for definition in custom_fields.definitions(entity.custom_entity):
        number_format = "General" if definition.field_type == "number" else None

        def value(item, definition=definition):
            values = entity.record(item).custom_fields or {}
            return _custom_value(definition, values.get(definition.key))

        columns.append(Column(definition.label, value, number_format))
    return columns


ENTITIES = {
    entity.name: entity
    for entity in (
        Entity(
            "contacts",
            "contact",
            _l("Contacts"),
            "contacts.list",
            lambda args, user: contacts.ContactFilters.from_args(args),
            _contact_batches,
            _contact_columns,
        ),
        Entity(
            "companies",
            "company",
            _l("Companies"),
            "contacts.list",
            lambda args, user: companies.CompanyFilters.from_args(args),
            _company_batches,
            _company_columns,
            record=lambda row: row.company,
        ),
        Entity(
            "deals",
            "deal",
            _l("Deals"),
            "deals.view",
            _deal_filters,
            _deal_batches,
            _deal_columns,
        ),
        Entity(
            "incidents",
            "incident",
            _l("Incidents"),
            "incidents.view",
            incidents.IncidentFilters.from_args,
            _incident_batches,
            _incident_columns,
        ),
    )
}


# ---- starting an export ----------------------------------------------------------------


def start(user: User, entity_name: str, fmt: str, args, locale: str) -> Export:
    """The export of the list `entity_name` with the filters in `args` (a query string).

    KeyError for an unknown list or format; ExportRefused when the list is closed to `user`.
    """
    entity = ENTITIES[entity_name]
    if fmt not in FORMATS:
        raise KeyError(fmt)
    if not has_permission(user, entity.permission):
        raise ExportRefused(entity_name)
    export = Export(entity, user, entity.read_filters(args, user), fmt, str(locale or "en"))
    export.columns = entity.columns(user) + _custom_columns(entity)
    return export


def filter_args(export: Export) -> dict:
    """The filters as the list's URL writes them (no cursor: an export starts at the top)."""
    args = dict(export.filters.as_args())
    args.pop("cursor", None)
    return {key: str(value) for key, value in args.items()}


def items(export: Export, size: int | None = None) -> Iterator[list]:
    """The list's rows, a page at a time; each page leaves the session once it is written.

    Without that, every contact, company and owner read would stay in the session's
    identity map until the end of the request: 100,000 contacts would stay in memory.
    """
    for batch in export.entity.batches(export.user, export.filters, size or BATCH):
        yield batch
        export.rows += len(batch)
        _release(export.user)


def _release(user: User) -> None:
    session = db.session
    for obj in list(session.identity_map.values()):
        if obj is not user:
            session.expunge(obj)


# ---- cells -------------------------------------------------------------------------------


def local_time(export: Export, value: datetime) -> datetime:
    """The moment in the exporting user's time zone, without zone: what spreadsheets show."""
    return value.astimezone(user_zone(export.user)).replace(tzinfo=None)


def _csv_cell(export: Export, value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, int | float | Decimal):
        # A number we wrote ourselves, never text typed by someone: not a formula even when
        # negative. Excel in French reads "1234,5"; no thousands separator in either.
        text = str(value)
        return text.replace(".", ",") if export.french else text
    if isinstance(value, datetime):
        # ISO order (year first) is read as a date by spreadsheets in every language.
        return local_time(export, value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return safe_cell(value)


# ---- writing -----------------------------------------------------------------------------


def csv_chunks(export: Export, size: int | None = None) -> Iterator[bytes]:
    """The CSV file, a page of rows per chunk. UTF-8 with a byte order mark, which is what
    makes Excel read UTF-8 at all (without it, accents come out as Windows-1252 garbage)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=export.delimiter, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow([safe_cell(column.label) for column in export.columns])
    for batch in items(export, size):
        for item in batch:
            writer.writerow([_csv_cell(export, column.value(item)) for column in export.columns])
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def write_xlsx(export: Export, size: int | None = None):
    """The XLSX file, rewound for sending (crm/services/export_xlsx.py)."""
    # openpyxl weighs 5 MB in a process: loaded by the requests that write a workbook.
    from crm.services.export_xlsx import write_workbook

    return write_workbook(export, size)


def record(export: Export, complete: bool = True) -> None:
    """The audit entry of the export: what list, with which filters, how many rows."""
    filters = filter_args(export)
    shown = ", ".join(f"{key}={value}" for key, value in sorted(filters.items()))
    summary = f"{export.entity.name} ({export.fmt}): {export.rows} rows"
    if shown:
        summary += f"; {shown}"
    if not complete:
        summary += "; interrupted"
    audit.record(
        "export",
        entity_type=export.entity.custom_entity,
        summary=summary,
        changes={
            "format": [None, export.fmt],
            "filters": [None, filters],
            "rows": [None, export.rows],
            "complete": [None, complete],
        },
        actor=export.user,
    )
