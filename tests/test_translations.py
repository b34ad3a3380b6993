"""The French catalogue is complete, matches the source, and is what French users see.

When a test here fails after you changed a text:

    make messages        # re-extract the strings and merge them into the .po
    # translate the new or emptied entries in crm/translations/fr/LC_MESSAGES/messages.po
    make translations    # compile (`make test` and `make install` do it too)

The extraction runs with the options of the Makefile's `messages` target, read
from the Makefile itself, so this test and `make messages` cannot disagree.
"""

import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.catalog import PYTHON_FORMAT
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "crm" / "translations"
FRENCH_PO = TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po"
FRENCH_MO = FRENCH_PO.with_suffix(".mo")
NBSP, NARROW_NBSP = "\u00a0", "\u202f"


# ---- the catalogue against the source ---------------------------------------


def _makefile_extract_args(output: Path) -> list[str]:
    """The arguments `make messages` gives `pybabel extract`, writing to `output`."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        words = shlex.split(line) if line.startswith("\t") and "pybabel" in line else []
        if "extract" in words:
            args = words[words.index("extract") + 1 :]
            out = args.index("-o")
            args[out + 1] = str(output)
            return args
    raise AssertionError("no `pybabel ... extract ... -o FILE` line in the Makefile")


@pytest.fixture(scope="module")
def source_messages(tmp_path_factory):
    """Every message of the current source: {(context, msgid): Message}."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    command = [sys.executable, "-m", "babel.messages.frontend", "-q", "extract"]
    result = subprocess.run(
        command + _makefile_extract_args(pot), cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, f"pybabel extract failed:\n{result.stderr}"
    with pot.open("rb") as f:
        catalog = read_po(f)
    messages = {message_key(m): m for m in catalog if m.id}
    assert len(messages) > 100, f"only {len(messages)} messages extracted: is babel.cfg right?"
    return messages


@pytest.fixture(scope="module")
def french():
    with FRENCH_PO.open("rb") as f:
        return read_po(f, locale="fr")


def message_key(message) -> tuple[str | None, str]:
    msgid = message.id[0] if isinstance(message.id, (list, tuple)) else message.id
    return message.context, msgid


def describe(key: tuple[str | None, str]) -> str:
    context, msgid = key
    return f"{msgid!r} (context {context!r})" if context else repr(msgid)


def translations_of(message) -> list[str]:
    return list(message.string) if isinstance(message.string, (list, tuple)) else [message.string]


def test_every_source_string_has_a_french_translation(source_messages, french):
    assert not french.fuzzy, f"the header of {FRENCH_PO} is marked fuzzy"
    catalogue = {message_key(m): m for m in french if m.id}
    missing, untranslated, fuzzy = [], [], []
    for key in sorted(source_messages, key=lambda k: (k[1], k[0] or "")):
        message = catalogue.get(key)
        if message is None:
            missing.append(describe(key))
        elif "fuzzy" in message.flags:
            fuzzy.append(describe(key))
        elif not all(s.strip() for s in translations_of(message)):
            untranslated.append(describe(key))
    problems = [
        (f"{len(missing)} not in the catalogue (run `make messages`)", missing),
        (f"{len(untranslated)} without a French translation", untranslated),
        (f"{len(fuzzy)} marked fuzzy (check the French, then remove the flag)", fuzzy),
    ]
    report = "\n".join(f"{title}:\n  " + "\n  ".join(items) for title, items in problems if items)
    assert not report, f"{FRENCH_PO.relative_to(ROOT)} is behind the source.\n{report}"


def placeholders(text: str) -> Counter:
    """%(name)s, %d, %% ... as Python's % operator reads them (babel's own pattern)."""
    return Counter(match.group(0) for match in PYTHON_FORMAT.finditer(text))


def _sample(spec: str):
    return 1 if spec[-1] in "diouxXc" else 1.5 if spec[-1] in "eEfFgG" else "x"


def _format_error(text: str, values: dict) -> str | None:
    try:
        text % values
    except (KeyError, ValueError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def test_french_placeholders_match_the_english(french):
    """Same %(name)s (and %% for a literal per cent) as the msgid, and the % operator accepts it.

    French writes "50 %" with a space, which Python reads as the conversion "% d" of
    "50 % de": in a python-format string a literal per cent sign must be written %%.
    """
    wrong = []
    for message in french:
        if not message.id or not message.string:
            continue
        ids = list(message.id) if isinstance(message.id, (list, tuple)) else [message.id]
        for index, text in enumerate(translations_of(message)):
            if not text:
                continue
            english = ids[min(index, len(ids) - 1)]
            expected, found = placeholders(english), placeholders(text)
            if expected != found:
                wrong.append(
                    f"{english!r} -> {text!r}: placeholders {sorted(expected.elements())}"
                    f" != {sorted(found.elements())}"
                )
                continue
            values = {
                m.group(1): _sample(m.group(0))
                for m in PYTHON_FORMAT.finditer(english)
                if m.group(1)
            }
            if _format_error(english, values) is None and (error := _format_error(text, values)):
                wrong.append(f"{english!r} -> {text!r}: {error}")
    assert not wrong, "French translations that would break or lose a value:\n" + "\n".join(wrong)


def test_french_typography_is_consistent(french):
    """A no-break space before : ; ? ! and inside « », and the apostrophe ’, everywhere."""
    rules = [
        # A colon between digits (10:30) or in a URL (https://) is not punctuation.
        (
            re.compile(r"(?<![\u00a0\u202f])[;?!»]|(?<![\u00a0\u202f\d]):(?![/\d])"),
            "no-break space (U+00A0) missing before it",
        ),
        (re.compile(r"«(?![\u00a0\u202f])"), "no-break space (U+00A0) missing after «"),
        (re.compile(r"'"), "use the apostrophe ’"),
    ]
    wrong = []
    for message in french:
        if not message.id:
            continue
        for text in translations_of(message):
            for pattern, problem in rules:
                for match in pattern.finditer(text or ""):
                    wrong.append(f"{text!r}: {match.group(0)!r} at {match.start()}: {problem}")
    assert not wrong, "French typography:\n" + "\n".join(wrong)


# ---- the pages in French ------------------------------------------------------

# What the pages must show in French, and English that must not be left on them.
LIST_IN_FRENCH = ["Se déconnecter", "Toutes les étapes", "Tous les responsables", "Prénom"]
LIST_IN_FRENCH += ["Dernière activité", "Ajouter le contact", "Piste", "à l’instant"]
LIST_IN_ENGLISH = [">Log out<", ">All stages<", ">Last activity<", ">Add contact<", "just now"]
CONTACT_IN_FRENCH = ["Historique", "Noter un appel", "Ajouter une note", "Enregistrer"]
CONTACT_IN_FRENCH += ["Se déconnecter", "Ancien client", "Appel", "A répondu"]
CONTACT_IN_FRENCH += [
    f"il y a 3{NBSP}jours",
    f"Étape passée de «{NBSP}Piste{NBSP}» à «{NBSP}Client{NBSP}».",
    "Gérante chez <a",
    f"responsable{NBSP}: Élodie Bernard",
]
CONTACT_IN_ENGLISH = [">Timeline<", "Log a call", "Add a note", ">Log out<", ">Save<", "ago"]
CONTACT_IN_ENGLISH += ["Stage changed", " at <a", "owner: "]
LOGIN_IN_FRENCH = ["Connexion au CRM", "Mot de passe", "Rester connecté sur cet appareil"]
LOGIN_IN_FRENCH += ["Se connecter"]
LOGIN_IN_ENGLISH = ["Sign in", "Password", "Keep me signed in"]


def compile_french_if_stale() -> bool:
    """Compile the .mo like `make translations` when it is missing or older than the .po."""
    if FRENCH_MO.exists() and FRENCH_MO.stat().st_mtime >= FRENCH_PO.stat().st_mtime:
        return False
    with FRENCH_PO.open("rb") as f:
        catalog = read_po(f, locale="fr")
    partial = FRENCH_MO.with_name(f".messages.{os.getpid()}.mo")
    with partial.open("wb") as f:
        write_mo(f, catalog, use_fuzzy=True)
    partial.replace(FRENCH_MO)  # atomic: a concurrent run never reads half a file
    return True


@pytest.fixture(scope="module")
def french_catalogue():
    if compile_french_if_stale():
        # flask-babel keeps the catalogues it loaded for the whole process: forget
        # any (empty) one read before the .mo existed.
        from crm.extensions import babel

        domain = vars(babel).get("domain_instance")  # a cached_property, absent until first used
        if domain is not None:
            domain.cache.clear()


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def sidebar(html: str) -> str:
    match = re.search(r'<nav class="sidebar".*?</nav>', html, re.S)
    assert match, "no side bar on the page"
    return match.group(0)


def assert_french(html: str, french_texts, english_texts) -> None:
    assert '<html lang="fr">' in html
    absent = [text for text in french_texts if text not in html]
    assert not absent, f"French text missing from the page: {absent}"
    left = [text for text in english_texts if text in html]
    assert not left, f"English text left on a French page: {left}"


@pytest.fixture
def french_sales_rep(as_role):
    client, user = as_role("sales", name="Élodie Bernard", locale="fr")
    return client, user


def test_contact_list_in_french_for_a_french_user(french_catalogue, french_sales_rep):
    from crm.extensions import db
    from tests.factories import make_company, make_contact

    client, user = french_sales_rep
    make_contact("Amélie", "Poulain", company=make_company("Boulangerie Martin"), owner=user)
    db.session.commit()

    html = page(client.get("/contacts"))  # the test client sends no Accept-Language
    assert_french(html, LIST_IN_FRENCH, LIST_IN_ENGLISH)
    nav = sidebar(html)
    assert ">Accueil<" in nav and ">Entreprises<" in nav
    english_nav = [f">{label}<" for label in ("Start", "Companies", "Deals", "Reports")]
    assert not [label for label in english_nav if label in nav], nav


def test_contact_page_in_french_for_a_french_user(french_catalogue, french_sales_rep):
    from crm.extensions import db
    from tests.factories import make_activity, make_company, make_contact

    client, user = french_sales_rep
    contact = make_contact(
        "Amélie",
        "Poulain",
        title="Gérante",
        company=make_company("Boulangerie Martin"),
        owner=user,
        stage="customer",
    )
    three_days_ago = datetime.now(UTC) - timedelta(days=3, minutes=5)
    make_activity(
        contact,
        kind="call",
        outcome="reached",
        body="Devis envoyé.",
        author=user,
        occurred_at=three_days_ago,
    )
    make_activity(contact, kind="system", data={"event": "stage", "from": "lead", "to": "customer"})
    db.session.commit()

    html = page(client.get(f"/contacts/{contact.id}"))
    assert_french(html, CONTACT_IN_FRENCH, CONTACT_IN_ENGLISH)
    # Dates as France writes them: day/month/year, 24-hour clock.
    assert re.search(r'title="\d{2}/\d{2}/\d{4} \d{2}:\d{2}"', html), (
        "no French date on the timeline"
    )


def test_browser_language_without_a_user_setting(french_catalogue, client):
    html = page(client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8"}))
    assert_french(html, LOGIN_IN_FRENCH, LOGIN_IN_ENGLISH)
    # WTForms' own messages come from its French catalogue (Flask-WTF follows flask-babel).
    response = client.post("/login", data={}, headers={"Accept-Language": "fr"})
    assert "Ce champ est requis." in response.get_data(as_text=True)

    english = page(client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}))
    assert '<html lang="en">' in english and "Sign in to the CRM" in english


def test_dates_and_numbers_as_france_writes_them(french_catalogue, app):
    from crm import formatting

    now = datetime.now(UTC)
    with app.test_request_context(headers={"Accept-Language": "fr"}):
        assert formatting.ago(now) == "à l’instant"
        assert formatting.ago(now - timedelta(days=3)) == f"il y a 3{NBSP}jours"
        assert formatting.ago(now - timedelta(hours=2)) == f"il y a 2{NBSP}heures"
        assert formatting.number(1234567.5) == f"1{NARROW_NBSP}234{NARROW_NBSP}567,5"
        assert formatting.date_medium(datetime(2026, 3, 5, 12, tzinfo=UTC)) == "5 mars 2026"
        # In the user's time zone (Paris by default): 14:30 UTC is 15:30 in March.
        moment = datetime(2026, 3, 5, 14, 30, tzinfo=UTC)
        assert formatting.datetime_short(moment) == "05/03/2026 15:30"


def test_user_setting_wins_over_the_browser(french_catalogue, french_sales_rep):
    client, _user = french_sales_rep
    html = page(client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}))
    assert_french(html, ["Bonjour Élodie", "Mes pistes à relancer"], ["Hello", "My leads"])


def test_browser_language_order_is_respected(app):
    from crm.i18n import select_locale

    for header, expected in (
        ("en-US,fr;q=0.8", "en"),
        ("fr-CA,en;q=0.5", "fr"),
        ("de", "en"),
        ("", "en"),
    ):
        with app.test_request_context("/login", headers={"Accept-Language": header}):
            assert select_locale() == expected, header
