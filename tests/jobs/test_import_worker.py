"""A 50,000-row import run by a real worker process (`python worker.py`, as in production),
against the suite's real database and Redis.

Memory: each job runs in a work horse forked from the worker, whose peak resident memory
(VmHWM in /proc, read by the job when it ends) starts from the worker's own. The same
worker first runs a 2,000-row import, whose horse is the baseline: the 50,000-row horse
may need at most IMPORT_MEMORY_BOUND_KB more. What grows with the file is its bytes,
held once (about 4 MB here: 80 bytes a row), and the decoder's buffer; a batch of rows
and its objects are freed at each commit. Keeping every row or every ORM object instead
would cost hundreds of megabytes at this size, far over the bound.
"""

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq.job import Job
from sqlalchemy import func, select

from crm.extensions import db
from crm.jobs import imports as import_jobs
from crm.models import Contact, DataImport, ImportRow
from crm.queues import redis_connection
from crm.services import custom_fields
from crm.services.imports import runner
from tests.factories import make_user

ROOT = Path(__file__).resolve().parents[2]
ROWS = 50_000
BASELINE_ROWS = 2_000
IMPORT_MEMORY_BOUND_KB = 40_000
DEADLINE_SECONDS = 600


def french_excel_csv(rows: int, seed: int) -> tuple[bytes, int, int]:
    """A French Excel export: Windows-1252, ";" separators, CRLF, a custom field column.
    Every 100th row repeats the email of the row before (a duplicate in the file), every 250th has a
    broken email. Returns the bytes and how many duplicates and broken rows it holds."""
    rng = random.Random(seed)
    first = ["Hélène", "François", "Zoé", "Jérôme", "Anaïs", "Noël", "Cécile", "Loïc"]
    last = ["Müller", "Lefèvre", "Crépin", "Dupré", "Bénard", "Garçon", "Péris", "Thébault"]
    cities = [("69003", "Lyon"), ("75011", "Paris"), ("44000", "Nantes"), ("33000", "Bordeaux")]
    lines = ["Prénom;Nom;Société;E-mail;Téléphone;Code postal;Ville;Pays;Langue préférée"]
    duplicates = broken = 0
    for n in range(1, rows + 1):
        if n % 100 == 0:
            email = f"personne{n - 1}@exemple.fr"
            duplicates += 1
        elif n % 250 == 0:
            email = f"personne{n}@exemple"
            broken += 1
        else:
            email = f"personne{n}@exemple.fr"
        postcode, city = rng.choice(cities)
        lines.append(
            ";".join(
                [
                    rng.choice(first),
                    rng.choice(last),
                    f"Société {n % 400}",
                    email,
                    f"06 {n % 100:02d} {n // 100 % 100:02d} 00 00",
                    postcode,
                    city,
                    "France",
                    rng.choice(["Français", "Anglais"]),
                ]
            )
        )
    return ("\r\n".join(lines) + "\r\n").encode("cp1252"), duplicates, broken


def queued_import(actor, content: bytes) -> int:
    data_import = runner.create_import(actor, "contacts", "export.csv", content)
    db.session.commit()
    runner.start(data_import, runner.ImportChoice.saved(data_import), actor)
    db.session.commit()
    import_jobs.enqueue_run(data_import.id)
    return data_import.id


@pytest.fixture
def worker(tmp_path):
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield tmp_path / "worker.log"
    os.killpg(process.pid, 15)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(5)
    log.close()


def wait_done(import_ids, log_path) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        db.session.rollback()
        statuses = db.session.scalars(
            select(DataImport.status).where(DataImport.id.in_(import_ids))
        ).all()
        if all(status in ("done", "failed") for status in statuses):
            return
        time.sleep(0.5)
    pytest.fail(f"imports not done: {statuses}\n{log_path.read_text(errors='replace')[-4000:]}")


def test_a_worker_imports_50000_rows_in_flat_memory(ctx, worker, data_app):
    with data_app.test_request_context("/"):  # the upload and the undo speak the user's language
        _import_and_measure(worker)


def _job_result(job_id: str) -> dict:
    """The job's return value, awaited: the import row says "done" a moment before the work
    horse returns and RQ stores the result."""
    result = Job.fetch(job_id, connection=redis_connection()).latest_result(timeout=60)
    assert result is not None and result.return_value is not None, f"no result for {job_id}"
    return result.return_value


def _import_and_measure(worker):
    admin = make_user(role="admin")
    custom_fields.create_definition(
        "contact", "Langue préférée", "choice", ["Français", "Anglais"], required=True
    )
    db.session.commit()
    small_content, _d, _b = french_excel_csv(BASELINE_ROWS, seed=1)
    large_content, duplicates, broken = french_excel_csv(ROWS, seed=2)
    started = time.monotonic()
    small = queued_import(admin, small_content)
    wait_done([small], worker)  # the baseline first, alone: its own work horse
    # The large file's contacts must not meet the small one's: remove them.
    runner.begin_undo(db.session.get(DataImport, small), admin)
    db.session.commit()
    runner.undo(small, admin.id)
    large = queued_import(admin, large_content)
    wait_done([large], worker)
    elapsed = time.monotonic() - started

    data_import = db.session.get(DataImport, large)
    assert data_import.status == "done", data_import.error
    assert data_import.total_rows == data_import.processed_rows == ROWS
    assert data_import.skipped_count == duplicates
    assert data_import.rejected_count == broken
    assert data_import.created_count == ROWS - duplicates - broken
    assert (
        db.session.scalar(select(func.count()).select_from(Contact)) == ROWS - duplicates - broken
    )
    assert db.session.scalar(select(func.count()).where(ImportRow.import_id == large)) == ROWS

    baseline, peak = (_job_result(import_jobs.job_id(i))["peak_memory_kb"] for i in (small, large))
    print(
        f"\n{ROWS} rows in {elapsed:.0f} s (with the {BASELINE_ROWS}-row baseline); "
        f"work horse peak: {peak} KB, baseline {baseline} KB, growth {peak - baseline} KB"
    )
    assert peak - baseline < IMPORT_MEMORY_BOUND_KB
