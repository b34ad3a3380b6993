"""An import from upload to report: keep the file, choose the mapping, run it in batches,
report each row, undo it.

run() is what the worker calls. It streams the file and handles the rows in batches of
IMPORT_BATCH_ROWS: each batch's records, its ImportRow outcomes and the import's counters
are one transaction. The ImportRow numbers are the watermark: a run that starts again
(worker killed, job run twice, "Resume") skips every row already recorded, so no row is
ever imported twice, and an interrupted batch left nothing behind. Each batch first
updates the import's row, which holds the lock that keeps two runs from writing the same
batch; the unique (import, row number) constraint guards the rest.

Every commit expires the session and a batch's objects are dropped with it (the session
only holds weak references to clean objects), so memory does not grow with the file.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, g
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import Select, delete, false, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import joinedload

from crm.extensions import db
from crm.i18n import language_for
from crm.models import Activity, Company, Contact, DataImport, Deal, ImportRow, Incident, User
from crm.models.leads import DUPLICATE_POLICIES, IMPORT_ENTITIES
from crm.models.types import utcnow
from crm.services import audit
from crm.services.imports import fields as import_fields
from crm.services.imports.reading import (
    FileFormat,
    ImportFileError,
    check_bytes,
    data_rows,
    headers_of,
    records,
    summarize,
)
from crm.services.imports.rows import (
    PARSERS,
    WRITERS,
    BatchLookup,
    Outcome,
    RowRejected,
    RunContext,
    finish_outcome,
    route,
)
from crm.services.reminders import user_zone

MANAGING_ROLES = ("admin", "manager")
RUNNING = ("queued", "running")
FINISHED = ("done", "failed")
SOURCE_MAX = 60


def visible_imports(user: User) -> Select:
    """Imports write to the shared address book: admins and managers see all of them."""
    query = select(DataImport)
    if user.role in MANAGING_ROLES:
        return query
    return query.where(false())


# ---- upload and mapping --------------------------------------------------------------


def create_import(actor: User, entity: str, filename: str, content: bytes) -> DataImport:
    """Check the file and keep it with a first guess of the mapping; ImportFileError if unfit."""
    if entity not in IMPORT_ENTITIES:
        raise ValueError(f"unknown import entity {entity!r}")
    check_bytes(content, current_app.config["IMPORT_MAX_BYTES"])
    summary = summarize(content)
    data_import = DataImport(
        entity=entity,
        filename=(filename or "import.csv")[:255],
        content=content,
        encoding=summary.format.encoding,
        delimiter=summary.format.delimiter,
        total_rows=summary.total_rows,
        mapping={
            "headers": summary.headers,
            "columns": import_fields.guess_mapping(entity, summary.headers),
            "source": "import",
            "route_leads": False,
        },
        duplicate_policy="skip",
        status="uploaded",
        created_by=actor,
    )
    db.session.add(data_import)
    return data_import


def file_format(data_import: DataImport) -> FileFormat:
    return FileFormat(data_import.encoding, data_import.delimiter)


def preview_rows(data_import: DataImport, limit: int = 5) -> list[list[str]]:
    """The first data rows, read from the start of the file only."""
    rows = []
    for index, (_number, cells) in enumerate(
        records(data_import.content, file_format(data_import))
    ):
        if index == 0:
            continue
        rows.append(cells)
        if len(rows) == limit:
            break
    return rows


def headers(data_import: DataImport) -> list[str]:
    saved = (data_import.mapping or {}).get("headers")
    if saved:
        return saved
    first = next(records(data_import.content, file_format(data_import)), (0, []))[1]
    return headers_of(first)


@dataclass
class ImportChoice:
    """What the mapping screen sends: a field per column and the options."""

    columns: list[str]
    policy: str = "skip"
    source: str = "import"
    route_leads: bool = False

    @classmethod
    def from_form(cls, form, column_count: int) -> "ImportChoice":
        return cls(
            columns=[(form.get(f"column-{i}") or "").strip() for i in range(column_count)],
            policy=(form.get("duplicate_policy") or "").strip(),
            source=(form.get("source") or "").strip(),
            route_leads=form.get("route_leads") in ("1", "on", "yes", "true"),
        )

    @classmethod
    def saved(cls, data_import: DataImport) -> "ImportChoice":
        options = data_import.mapping or {}
        return cls(
            columns=list(options.get("columns") or []),
            policy=data_import.duplicate_policy,
            source=options.get("source") or "import",
            route_leads=bool(options.get("route_leads")),
        )


@dataclass
class ChoiceErrors:
    columns: dict[int, str]
    overall: list[str]
    fields: dict[str, str]

    def __bool__(self) -> bool:
        return bool(self.columns or self.overall or self.fields)


def check_choice(data_import: DataImport, choice: ImportChoice) -> ChoiceErrors:
    by_column, overall = import_fields.check_mapping(data_import.entity, choice.columns)
    problems = {}
    if choice.policy not in DUPLICATE_POLICIES:
        problems["duplicate_policy"] = _("Choose what to do with duplicates.")
    if data_import.entity == "contacts":
        if not choice.source:
            problems["source"] = _("Enter a source, such as “import” or the name of a trade show.")
        elif len(choice.source) > SOURCE_MAX:
            problems["source"] = _("At most %(count)d characters.", count=SOURCE_MAX)
    return ChoiceErrors(by_column, overall, problems)


def preview_outcomes(data_import: DataImport, choice: ImportChoice, actor: User, rows) -> list:
    """What each preview row would become with this mapping: its values by field, and the
    reason it would be rejected (checks only; nothing is looked up for duplicates)."""
    draft = DataImport(
        id=data_import.id,
        entity=data_import.entity,
        duplicate_policy=choice.policy if choice.policy in DUPLICATE_POLICIES else "skip",
        mapping={"columns": choice.columns, "source": choice.source},
    )
    context = RunContext.build(draft, actor, user_zone(actor), _locale(actor))
    results = []
    for cells in rows:
        values, problem = context.values(cells)
        if not problem:
            try:
                PARSERS[data_import.entity](context, values)
            except RowRejected as error:
                problem = str(error)
        results.append(problem)
    return results


def start(data_import: DataImport, choice: ImportChoice, actor: User) -> None:
    """Save the mapping and queue the import; the caller commits, then enqueues the job."""
    headers_saved = (data_import.mapping or {}).get("headers")
    data_import.mapping = {
        "headers": headers_saved,
        "columns": choice.columns,
        "source": choice.source or "import",
        "route_leads": choice.route_leads and data_import.entity == "contacts",
    }
    data_import.duplicate_policy = choice.policy
    data_import.status = "queued"
    data_import.error = None
    audit.record(
        "create",
        entity_type="data_import",
        entity_id=data_import.id,
        summary=_("Import of %(file)s started", file=data_import.filename),
        actor=actor,
    )


def resume(data_import: DataImport) -> bool:
    """Queue again an import that failed or whose job was lost; it goes on after the last
    row recorded. The caller commits and enqueues."""
    if data_import.status not in ("failed", *RUNNING):
        return False
    data_import.status = "queued"
    data_import.error = None
    return True


# ---- running -------------------------------------------------------------------------


def _locale(user: User | None) -> str:
    return language_for(user)


def run(import_id: int, *, max_batches: int | None = None) -> dict:
    """Import what is left of the file (see the module's docstring). Returns the counts.

    `max_batches` stops after that many batches, as a worker that died would (tests)."""
    data_import = db.session.get(DataImport, import_id)
    if data_import is None or data_import.status not in RUNNING:
        return {"status": data_import.status if data_import else "missing"}
    actor_id = data_import.created_by_id
    if actor_id is None:
        return _fail(import_id, _("The user who started this import no longer exists."))
    content = db.session.scalar(select(DataImport.content).where(DataImport.id == import_id))
    fmt = file_format(data_import)
    actor = db.session.get(User, actor_id)
    g.import_running = import_id  # force_locale() needs a non-empty g
    locale = _locale(actor)
    db.session.execute(
        update(DataImport)
        .where(DataImport.id == import_id, DataImport.status.in_(RUNNING))
        .values(status="running", started_at=func.coalesce(DataImport.started_at, utcnow()))
    )
    db.session.commit()
    batch_rows = current_app.config["IMPORT_BATCH_ROWS"]
    with force_locale(locale):
        context = RunContext.build(
            db.session.get(DataImport, import_id), actor, user_zone(actor), locale
        )
        rows = data_rows(content, fmt)
        pending: list = []
        batches = 0
        try:
            while max_batches is None or batches < max_batches:
                watermark = _lock(import_id)
                if watermark is None:
                    break  # no longer running: undone, or finished by another run
                pending = [row for row in pending if row[0] > watermark]
                for row in rows:
                    if row[0] > watermark:
                        pending.append(row)
                    if len(pending) >= batch_rows:
                        break
                if not pending:
                    _finish(import_id)
                    break
                batch, pending = pending[:batch_rows], pending[batch_rows:]
                _write_batch(context, actor_id, batch)
                batches += 1
        except ImportFileError as error:
            db.session.rollback()
            return _fail(import_id, str(error))
    return _counts(import_id)


def _lock(import_id: int) -> int | None:
    """Take the import's row (an UPDATE locks it until the batch commits) and read how far
    it got; None when it is no longer running."""
    touched = db.session.execute(
        update(DataImport)
        .where(DataImport.id == import_id, DataImport.status == "running")
        .values(status="running")
    ).rowcount
    if not touched:
        db.session.rollback()
        return None
    return db.session.scalar(
        select(func.coalesce(func.max(ImportRow.row_number), 0)).where(
            ImportRow.import_id == import_id
        )
    )


def _write_batch(context: RunContext, actor_id: int, batch: list) -> None:
    """One batch in one transaction; if the database refuses it, row by row, so that only
    the row it refuses is rejected."""
    try:
        _write_rows(context, actor_id, batch, one_by_one=False)
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        current_app.logger.warning(
            "Import %s: batch refused (%s), row by row", context.import_id, error
        )
        watermark = _lock(context.import_id)
        if watermark is None:
            return
        remaining = [row for row in batch if row[0] > watermark]
        if remaining:
            _write_rows(context, actor_id, remaining, one_by_one=True)
        db.session.commit()


def _write_rows(context: RunContext, actor_id: int, batch: list, *, one_by_one: bool) -> None:
    context.actor = db.session.get(User, actor_id)
    if _has_request():
        audit.set_actor(context.actor)  # the audit log names who imported, not "system"
    parse = PARSERS[context.entity]
    write = WRITERS[context.entity]
    parsed = []
    for number, cells in batch:
        values, problem = context.values(cells)
        item = None
        if not problem:
            try:
                item = parse(context, values)
            except RowRejected as error:
                problem = str(error)
        parsed.append((number, item, problem))
    lookup = BatchLookup.load(context, [item for _n, item, _p in parsed if item is not None])
    outcomes: list[tuple[int, Outcome]] = []
    for number, item, problem in parsed:
        if problem:
            outcomes.append((number, Outcome("rejected", problem)))
        elif one_by_one:
            outcomes.append((number, _write_alone(context, lookup, write, number, item)))
        else:
            try:
                outcomes.append((number, write(context, lookup, number, item)))
            except RowRejected as error:
                outcomes.append((number, Outcome("rejected", str(error))))
    if not one_by_one:
        db.session.flush()
        for _number, outcome in outcomes:
            if outcome.route:
                route(context, outcome)
        db.session.flush()
    _record(context.import_id, outcomes)


def _write_alone(context, lookup, write, number, item) -> Outcome:
    try:
        with db.session.begin_nested():
            outcome = write(context, lookup, number, item)
            db.session.flush()
            if outcome.route:
                route(context, outcome)
                db.session.flush()
        return outcome
    except RowRejected as error:
        return Outcome("rejected", str(error))
    except SQLAlchemyError as error:
        detail = str(getattr(error, "orig", error)).splitlines()[0][:200]
        return Outcome("rejected", _("The database refused this row: %(error)s", error=detail))


def _record(import_id: int, outcomes: list[tuple[int, Outcome]]) -> None:
    """The batch's ImportRows and counters, in the batch's transaction."""
    rows = []
    counts = dict.fromkeys(("created", "updated", "skipped", "rejected"), 0)
    for number, outcome in outcomes:
        finish_outcome(outcome)
        rows.append(outcome.as_row(import_id, number))
        counts[outcome.outcome] += 1
    if rows:
        db.session.execute(insert(ImportRow), rows)
    db.session.execute(
        update(DataImport)
        .where(DataImport.id == import_id)
        .values(
            processed_rows=DataImport.processed_rows + len(rows),
            created_count=DataImport.created_count + counts["created"],
            updated_count=DataImport.updated_count + counts["updated"],
            skipped_count=DataImport.skipped_count + counts["skipped"],
            rejected_count=DataImport.rejected_count + counts["rejected"],
        )
    )


def _has_request() -> bool:
    from flask import has_request_context

    return has_request_context()


def _finish(import_id: int) -> None:
    """Done: the counters read again from the rows themselves, exact whatever happened."""
    counts = dict(
        db.session.execute(
            select(ImportRow.outcome, func.count())
            .where(ImportRow.import_id == import_id)
            .group_by(ImportRow.outcome)
        ).all()
    )
    db.session.execute(
        update(DataImport)
        .where(DataImport.id == import_id)
        .values(
            status="done",
            finished_at=utcnow(),
            processed_rows=sum(counts.values()),
            created_count=counts.get("created", 0),
            updated_count=counts.get("updated", 0),
            skipped_count=counts.get("skipped", 0),
            rejected_count=counts.get("rejected", 0),
        )
    )
    db.session.commit()


def _fail(import_id: int, message: str) -> dict:
    db.session.execute(
        update(DataImport)
        .where(DataImport.id == import_id)
        .values(status="failed", error=message[:2000], finished_at=utcnow())
    )
    db.session.commit()
    return _counts(import_id)


def fail(import_id: int, message: str) -> dict:
    """Mark the import failed after an unexpected error (the job's last resort)."""
    db.session.rollback()
    return _fail(import_id, message)


def _counts(import_id: int) -> dict:
    row = db.session.execute(
        select(
            DataImport.status,
            DataImport.processed_rows,
            DataImport.created_count,
            DataImport.updated_count,
            DataImport.skipped_count,
            DataImport.rejected_count,
        ).where(DataImport.id == import_id)
    ).one()
    return dict(row._mapping)


# ---- the report ----------------------------------------------------------------------


def rejected_page(
    import_id: int, after: int = 0, size: int = 50
) -> tuple[list[ImportRow], int | None]:
    """Rejected rows in file order, a page at a time (keyset on the row number)."""
    rows = list(
        db.session.scalars(
            select(ImportRow)
            .where(
                ImportRow.import_id == import_id,
                ImportRow.outcome == "rejected",
                ImportRow.row_number > after,
            )
            .order_by(ImportRow.row_number)
            .limit(size + 1)
        )
    )
    more = rows[size - 1].row_number if len(rows) > size else None
    return rows[:size], more


def rejected_csv_rows(data_import: DataImport):
    """(header, rows) of the rejected rows as they were in the file, with the row number
    and the reason first, to fix in a spreadsheet and import again."""
    reasons = dict(
        db.session.execute(
            select(ImportRow.row_number, ImportRow.reason).where(
                ImportRow.import_id == data_import.id, ImportRow.outcome == "rejected"
            )
        ).all()
    )
    header = [_("Row"), _("Reason"), *headers(data_import)]

    def rows():
        for number, cells in data_rows(data_import.content, file_format(data_import)):
            if number in reasons:
                yield [number, reasons[number], *cells]

    return header, rows()


# ---- undo ----------------------------------------------------------------------------


def undo_size(data_import: DataImport) -> int:
    return data_import.created_count + data_import.updated_count


def can_undo(data_import: DataImport) -> bool:
    return data_import.status in FINISHED and undo_size(data_import) > 0


def begin_undo(data_import: DataImport, actor: User) -> None:
    """Mark the import as being undone (the worker or the request does it); the caller commits."""
    data_import.status = "undoing"
    data_import.processed_rows = 0
    audit.record(
        "delete",
        entity_type="data_import",
        entity_id=data_import.id,
        summary=_("Import of %(file)s undone", file=data_import.filename),
        actor=actor,
    )


def undo(import_id: int, actor_id: int | None = None) -> dict:
    """Take back what the import did, newest row first: delete the records it created,
    unless they were used since (a deal, an incident, an exchange on the timeline: those
    are kept, and their ImportRow says so), and put back the values it replaced, where
    nobody changed them since. Running it again changes nothing more."""
    data_import = db.session.get(DataImport, import_id)
    if data_import is None or data_import.status != "undoing":
        return {"status": data_import.status if data_import else "missing"}
    actor = db.session.get(User, actor_id) if actor_id else None
    if actor is not None and _has_request():
        audit.set_actor(actor)
    size = current_app.config["IMPORT_BATCH_ROWS"]
    created_notes = set(
        db.session.scalars(
            select(ImportRow.record_id).where(
                ImportRow.import_id == import_id,
                ImportRow.outcome == "created",
                ImportRow.record_type == "activity",
            )
        )
    )
    below = None
    kept = 0
    while True:
        query = (
            select(ImportRow)
            .where(ImportRow.import_id == import_id, ImportRow.outcome.in_(("created", "updated")))
            .order_by(ImportRow.row_number.desc())
            .limit(size)
        )
        if below is not None:
            query = query.where(ImportRow.row_number < below)
        batch = list(db.session.scalars(query))
        if not batch:
            break
        below = batch[-1].row_number
        for row in batch:
            created = (row.before or {}).get("created", {})
            created_notes.update([created["activity"]] if "activity" in created else [])
        kept += _undo_batch(batch, created_notes)
        db.session.execute(
            update(DataImport)
            .where(DataImport.id == import_id)
            .values(processed_rows=DataImport.processed_rows + len(batch))
        )
        db.session.commit()
    db.session.execute(
        update(DataImport)
        .where(DataImport.id == import_id)
        .values(status="undone", undone_at=utcnow(), processed_rows=DataImport.total_rows)
    )
    db.session.commit()
    return {"status": "undone", "kept": kept}


def _undo_batch(batch: list[ImportRow], created_notes: set[int]) -> int:
    ids = {"contact": set(), "company": set(), "activity": set()}
    for row in batch:
        if row.record_id is not None:
            ids[row.record_type].add(row.record_id)
        for kind, record_id in ((row.before or {}).get("created") or {}).items():
            ids[kind].add(record_id)
    contacts = {
        c.id: c for c in db.session.scalars(select(Contact).where(Contact.id.in_(ids["contact"])))
    }
    companies = {
        c.id: c for c in db.session.scalars(select(Company).where(Company.id.in_(ids["company"])))
    }
    notes = {
        a.id: a
        for a in db.session.scalars(select(Activity).where(Activity.id.in_(ids["activity"])))
    }
    used_contacts = _used(Contact, set(contacts), created_notes)
    kept = 0
    for row in batch:  # newest first
        before = row.before or {}
        if row.outcome == "updated":
            record = (
                contacts.get(row.record_id)
                if row.record_type == "contact"
                else companies.get(row.record_id)
            )
            if record is not None:
                _restore(record, before)
        elif row.record_type == "activity":
            if row.record_id in notes:
                db.session.delete(notes.pop(row.record_id))
        elif row.record_type == "contact" and row.record_id in contacts:
            if row.record_id in used_contacts:
                row.reason = _("Kept when the import was undone: used since.")
                kept += 1
            else:
                db.session.delete(contacts.pop(row.record_id))
        side_note = (before.get("created") or {}).get("activity")
        if side_note in notes:
            db.session.delete(notes.pop(side_note))
    db.session.flush()
    # Companies last: the contacts the import gave them are gone by now.
    company_rows = [
        (row, company_id)
        for row in batch
        for company_id in (
            row.record_id if row.record_type == "company" and row.outcome == "created" else None,
            ((row.before or {}).get("created") or {}).get("company"),
        )
        if company_id in companies
    ]
    used_companies = _used(
        Company, {company_id for _row, company_id in company_rows}, created_notes
    )
    for row, company_id in company_rows:
        company = companies.pop(company_id, None)
        if company is None:
            continue
        if company_id in used_companies:
            if row.record_type == "company":
                row.reason = _("Kept when the import was undone: used since.")
                kept += 1
        else:
            db.session.delete(company)
    db.session.flush()
    return kept


def _used(model, ids: set[int], created_notes: set[int]) -> set[int]:
    """Which of these records were worked on since: a deal, an incident, an exchange on
    the timeline other than the import's own entries, or (companies) other contacts."""
    if not ids:
        return set()
    link = "contact_id" if model is Contact else "company_id"
    used = set(db.session.scalars(select(getattr(Deal, link)).where(getattr(Deal, link).in_(ids))))
    used |= set(
        db.session.scalars(select(getattr(Incident, link)).where(getattr(Incident, link).in_(ids)))
    )
    activity_link = getattr(Activity, link)
    used |= set(
        db.session.scalars(
            select(activity_link).where(
                activity_link.in_(ids),
                Activity.kind != "system",
                Activity.id.not_in(created_notes) if created_notes else True,
            )
        )
    )
    if model is Company:
        used |= set(
            db.session.scalars(select(Contact.company_id).where(Contact.company_id.in_(ids)))
        )
    return used


def _restore(record, before: dict) -> None:
    """Put back each value the row replaced, where it is still the row's value."""
    old = before.get("fields") or {}
    new = before.get("after") or {}
    for name, value in old.items():
        if name == "tags":
            if sorted(t.name for t in record.tags) == sorted(new.get("tags") or []):
                from crm.services.contacts import set_tags

                set_tags(record, value)
            continue
        current = getattr(record, name)
        current = current.isoformat() if isinstance(current, datetime) else current
        if name in new and current != new[name]:
            continue  # changed by someone since: theirs wins
        if name.endswith("_at") and isinstance(value, str):
            value = datetime.fromisoformat(value).astimezone(UTC)
        setattr(record, name, value)


def outcome_counts(import_id: int) -> dict[str, int]:
    return dict(
        db.session.execute(
            select(ImportRow.outcome, func.count())
            .where(ImportRow.import_id == import_id)
            .group_by(ImportRow.outcome)
        ).all()
    )


def kept_count(import_id: int) -> int:
    return db.session.scalar(
        select(func.count()).where(
            ImportRow.import_id == import_id,
            ImportRow.outcome.in_(("created",)),
            ImportRow.reason.is_not(None),
        )
    )


def recent_imports(user: User, before: int | None = None, size: int = 30):
    query = visible_imports(user).order_by(DataImport.id.desc()).limit(size + 1)
    if before:
        query = query.where(DataImport.id < before)
    rows = list(db.session.scalars(query.options(joinedload(DataImport.created_by))))
    more = rows[size - 1].id if len(rows) > size else None
    return rows[:size], more


def delete_upload(data_import: DataImport) -> None:
    """An import never started: forget it and its file."""
    db.session.execute(delete(ImportRow).where(ImportRow.import_id == data_import.id))
    db.session.delete(data_import)
