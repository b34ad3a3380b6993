"""Importing a French Excel file in Chromium: choose it and upload (2 clicks), check the
guessed columns and start (1 click), watch the progress bar fill while a worker imports in
the background, then open the report (1 click)."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from crm.services import custom_fields
from tests import factories

pytestmark = pytest.mark.browser

ROWS = 1500
ROOT = Path(__file__).resolve().parents[2]


def start_worker(tmp_path: Path) -> subprocess.Popen:
    """The production worker on the test's database and Redis, with small batches so that
    the bar moves in steps the page can show."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=ROOT,
        env=dict(os.environ, IMPORT_BATCH_ROWS="100"),
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def french_file(tmp_path: Path) -> Path:
    lines = ["Prénom;Nom;Société;E-mail;Code postal;Ville;Langue préférée"]
    for n in range(1, ROWS + 1):
        email = f"client{n}@exemple" if n % 500 == 0 else f"client{n}@exemple.fr"
        lines.append(f"Hélène;Dupré {n};Société {n % 20};{email};69003;Lyon;Français")
    path = tmp_path / "contacts export.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def test_upload_map_start_watch_and_open_the_report(page: Page, seed, signed_in, clicks, tmp_path):
    admin = factories.make_user(role="admin", name="Ada Admin")
    custom_fields.create_definition(
        "contact", "Langue préférée", "choice", ["Français", "Anglais"], required=True
    )
    seed.commit()
    signed_in(page, admin)
    page.goto("/imports")

    with clicks.task("upload a CSV file", 2):
        page.locator("#file").set_input_files(french_file(tmp_path))
        clicks.count += 1  # choosing the file in the browser's dialog
        clicks.click(page.get_by_role("button", name="Upload and check the columns"))
        expect(page.locator("h1")).to_have_text("Check the columns")

    mapping = page.locator("#import-mapping")
    expect(mapping).to_contain_text("1500 rows")
    expect(mapping).to_contain_text("read as cp1252")
    expect(page.get_by_label("Field for column Prénom")).to_have_value("first_name")
    expect(page.get_by_label("Field for column Langue préférée")).to_have_value(
        "custom.langue_preferee"
    )
    expect(mapping).to_contain_text("Hélène")
    page.screenshot(path=tmp_path / "mapping.png", full_page=True)

    with clicks.task("check the columns and start the import", 1):
        clicks.click(page.get_by_role("button", name="Import 1500 rows"))
        expect(page.locator("#import-progress")).to_be_visible()

    bar = page.locator("#import-bar")
    expect(bar).to_have_attribute("value", "0")  # waiting for the worker
    worker = start_worker(tmp_path)  # `python worker.py`, as in production
    try:
        expect(bar).to_have_attribute("value", "100", timeout=120_000)
    finally:
        stop_worker(worker)
    expect(page.locator("#import-progress")).to_contain_text("Import finished")
    expect(page.locator("#import-progress")).not_to_have_attribute(
        "hx-trigger", re.compile("every")
    )
    page.screenshot(path=tmp_path / "progress.png", full_page=True)

    with clicks.task("open the import report", 1):
        clicks.click(page.get_by_role("link", name="Open the report"))
        expect(page.locator("h1")).to_contain_text("Import report")
    expect(page.locator("#count-created")).to_have_text(str(ROWS - 3))
    expect(page.locator("#count-rejected")).to_have_text("3")
    expect(page.locator(".rejected-rows")).to_contain_text("Invalid email: client500@exemple")
    page.screenshot(path=tmp_path / "report.png", full_page=True)
