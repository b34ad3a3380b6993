"""Custom fields: values validated per type (English and French input), definitions
edited by the admin, and list filters that read the JSON values on both databases."""

from contextlib import contextmanager

import pytest
from flask_babel import force_locale
from sqlalchemy import event, select

from crm.extensions import db
from crm.models import Company, Contact, CustomFieldDefinition, Deal, Incident
from crm.services import custom_fields as cf
from tests.factories import make_company, make_contact, make_deal, make_incident

pytestmark = pytest.mark.usefixtures("ctx")


@pytest.fixture(autouse=True)
def _english(ctx):
    # Outside a request, as in a job: messages in a forced language.
    with force_locale("en"):
        yield


def field(entity="contact", label="Field", field_type="text", choices=None, required=False):
    definition = cf.create_definition(entity, label, field_type, choices, required)
    db.session.commit()
    return definition


def parse(definition, raw, locale="en"):
    return cf.parse_value(definition, raw, locale=locale)


# ---- parse_value, type by type -------------------------------------------------------


def test_text_is_kept_trimmed_and_empty_is_none():
    text = field(label="Notes")
    assert parse(text, "  hello ") == "hello"
    assert parse(text, "   ") is None
    assert parse(text, None) is None
    with pytest.raises(cf.CustomFieldError):
        parse(text, "x" * (cf.MAX_TEXT + 1))


@pytest.mark.parametrize(
    ("raw", "locale", "stored"),
    [
        ("42", "en", 42),
        ("1 234,5", "fr", 1234.5),
        ("1 234,5", "en", 1234.5),  # French input from an English user: the other locale
        ("1\u202f234,50", "fr", 1234.5),  # narrow no-break space, as French Excel writes
        ("1,234.5", "en", 1234.5),
        ("1,234.5", "fr", 1234.5),
        ("-3", "en", -3),
        ("12,0", "fr", 12),
        (7, "en", 7),
        (2.5, "en", 2.5),
    ],
)
def test_number_reads_both_languages_and_stores_int_or_float(raw, locale, stored):
    number = field(label="Seats", field_type="number")
    value = parse(number, raw, locale)
    assert value == stored
    assert type(value) is type(stored)


@pytest.mark.parametrize("raw", ["abc", "12abc", "1e5", "1,2,3.4.5", "nan", "10000000000000000"])
def test_number_refuses_what_is_not_one(raw):
    number = field(label="Seats", field_type="number")
    with pytest.raises(cf.CustomFieldError):
        parse(number, raw)


def test_boolean_refuses_to_be_a_number():
    number = field(label="Seats", field_type="number")
    with pytest.raises(cf.CustomFieldError):
        parse(number, True)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("2026-12-31", "2026-12-31"),
        ("31/12/2026", "2026-12-31"),
        ("1/2/2026", "2026-02-01"),  # day first
        ("31.12.2026", "2026-12-31"),
        ("31/12/2026 00:00", "2026-12-31"),  # Excel's French CSV
        ("2026-12-31T10:30:00", "2026-12-31"),
    ],
)
def test_date_reads_iso_and_day_first(raw, stored):
    assert parse(field(label="Renewal", field_type="date"), raw) == stored


@pytest.mark.parametrize("raw", ["31/02/2026", "2026-13-01", "tomorrow", "12/2026"])
def test_date_refuses_impossible_or_unreadable(raw):
    with pytest.raises(cf.CustomFieldError):
        parse(field(label="Renewal", field_type="date"), raw)


def test_choice_must_be_one_of_the_choices_and_takes_its_spelling():
    choice = field(label="Language", field_type="choice", choices="French\nEnglish\n")
    assert choice.choices == ["French", "English"]
    assert parse(choice, "French") == "French"
    assert parse(choice, " english ") == "English"
    with pytest.raises(cf.CustomFieldError):
        parse(choice, "German")


def test_multichoice_from_checkboxes_or_one_csv_cell():
    multi = field(
        label="Interests", field_type="multichoice", choices=["Solar", "Heat pump", "Paris, FR"]
    )
    assert parse(multi, ["Heat pump", "Solar"]) == ["Solar", "Heat pump"]  # choices' order
    assert parse(multi, "heat pump; solar") == ["Solar", "Heat pump"]
    assert parse(multi, "Solar, Heat pump") == ["Solar", "Heat pump"]
    assert parse(multi, "Paris, FR|Solar") == ["Solar", "Paris, FR"]
    assert parse(multi, ["Solar", "Solar"]) == ["Solar"]
    assert parse(multi, []) is None
    assert parse(multi, "") is None
    with pytest.raises(cf.CustomFieldError):
        parse(multi, ["Solar", "Wind"])


@pytest.mark.parametrize(
    ("raw", "stored"),
    [("yes", True), ("Oui", True), ("1", True), (True, True), ("non", False), ("No", False)],
)
def test_boolean_reads_yes_no_in_both_languages(raw, stored):
    assert parse(field(label="Approved", field_type="boolean"), raw) is stored


def test_boolean_refuses_anything_else():
    with pytest.raises(cf.CustomFieldError):
        parse(field(label="Approved", field_type="boolean"), "maybe")


def test_url_http_or_https_only():
    url = field(label="Site", field_type="url")
    assert parse(url, "https://example.fr/a") == "https://example.fr/a"
    assert parse(url, "www.example.fr") == "https://www.example.fr"
    for bad in ("javascript:alert(1)", "ftp://example.fr", "javascript://x/%0Aalert(1)", "http://"):
        with pytest.raises(cf.CustomFieldError):
            parse(url, bad)


# ---- validate --------------------------------------------------------------------------


def test_validate_merges_over_current_and_reports_errors_by_key():
    seats = field(label="Seats", field_type="number")
    lang = field(
        label="Language", field_type="choice", choices=["French", "English"], required=True
    )
    values, errors = cf.validate("contact", {seats.key: "12", lang.key: "French"}, {"old": 1})
    assert errors == {}
    assert values == {"old": 1, "seats": 12, "language": "French"}

    values, errors = cf.validate("contact", {seats.key: "twelve", lang.key: ""})
    assert set(errors) == {"seats", "language"}


def test_required_field_absent_from_raw_is_an_error_unless_already_stored():
    field(label="Language", field_type="choice", choices=["French"], required=True)
    assert "language" in cf.validate("contact", {})[1]
    values, errors = cf.validate("contact", {}, {"language": "French"})
    assert errors == {} and values == {"language": "French"}


def test_emptying_a_field_removes_its_key_and_only_limits_the_check():
    notes = field(label="Notes")
    field(label="Language", field_type="choice", choices=["French"], required=True)
    values, errors = cf.validate("contact", {notes.key: ""}, {"notes": "x"}, only=[notes.key])
    assert errors == {} and values == {}


def test_validate_reads_multichoice_from_a_multidict():
    from werkzeug.datastructures import MultiDict

    multi = field(label="Interests", field_type="multichoice", choices=["A", "B"])
    values, errors = cf.validate("contact", MultiDict([(multi.key, "A"), (multi.key, "B")]))
    assert values == {"interests": ["A", "B"]} and not errors


def test_inactive_fields_are_neither_checked_nor_dropped():
    old = field(label="Old", required=True)
    cf.set_active(db.session.get(CustomFieldDefinition, old.id), False)
    db.session.commit()
    values, errors = cf.validate("contact", {}, {"old": "kept"})
    assert errors == {} and values == {"old": "kept"}


# ---- display -----------------------------------------------------------------------------


def test_display_in_the_users_locale():
    number = field(label="Seats", field_type="number")
    day = field(label="Renewal", field_type="date")
    yes = field(label="Approved", field_type="boolean")
    multi = field(label="Tags", field_type="multichoice", choices=["A", "B"])
    with force_locale("fr"):
        assert cf.display(number, 1234.5) == "1\u202f234,5"
        assert cf.display(day, "2026-12-31") == "31 déc. 2026"
        assert cf.display(yes, True) == "Oui"
        assert cf.display(multi, ["A", "B"]) == "A, B"
        assert cf.display(number, None) == ""
    with force_locale("en"):
        assert cf.display(number, 1234.5) == "1,234.5"
        assert cf.display(day, "2026-12-31") == "Dec 31, 2026"


# ---- definitions -------------------------------------------------------------------------


def test_key_is_the_slug_of_the_label_unique_per_entity_and_never_changes():
    first = field(label="Numéro de contrat")
    second = field(entity="contact", label="Numero de  contrat!")
    other_entity = field(entity="company", label="Numéro de contrat")
    assert (first.key, second.key, other_entity.key) == (
        "numero_de_contrat",
        "numero_de_contrat_2",
        "numero_de_contrat",
    )
    cf.update_definition(first, "Contract", "text")
    db.session.commit()
    assert first.key == "numero_de_contrat" and first.label == "Contract"


def test_bad_definitions_are_refused_with_a_message_per_field():
    with pytest.raises(cf.DefinitionError) as error:
        cf.create_definition("contact", "", "choice", "")
    assert set(error.value.errors) == {"label", "choices"}
    field(label="Language")
    with pytest.raises(cf.DefinitionError) as error:
        cf.create_definition("contact", "language", "text")
    assert "label" in error.value.errors
    with pytest.raises(cf.DefinitionError):
        cf.create_definition("contact", "Other", "colour")


def test_type_change_refused_while_values_are_stored():
    seats = field(label="Seats", field_type="number")
    contact = make_contact(custom_fields={"seats": 3})
    db.session.commit()
    with pytest.raises(cf.DefinitionError) as error:
        cf.update_definition(seats, "Seats", "text")
    assert "1 records" in error.value.errors["field_type"]
    contact.custom_fields = {}
    db.session.commit()
    cf.update_definition(seats, "Seats", "text")
    db.session.commit()
    assert seats.field_type == "text"


class _Counter:
    count = 0


@contextmanager
def count_queries():
    counter = _Counter()

    def _count(*_args):
        counter.count += 1

    event.listen(db.engine, "before_cursor_execute", _count)
    try:
        yield counter
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)


def test_definitions_in_order_cached_until_one_changes():
    a, b, c = (field(label=name) for name in "ABC")
    cf.reorder("contact", [c.id, a.id])
    db.session.commit()
    assert [f.label for f in cf.definitions("contact")] == ["C", "A", "B"]
    with count_queries() as queries:
        cf.definitions("contact")
        cf.definitions("contact")
    assert queries.count == 0
    cf.move(db.session.get(CustomFieldDefinition, b.id), -1)
    db.session.commit()
    assert [f.label for f in cf.definitions("contact")] == ["C", "B", "A"]
    cf.set_active(db.session.get(CustomFieldDefinition, b.id), False)
    db.session.commit()
    assert [f.label for f in cf.definitions("contact")] == ["C", "A"]
    assert [f.label for f in cf.definitions("contact", include_inactive=True)] == ["C", "B", "A"]


# ---- filters, on whichever database the run uses ------------------------------------------


def _ids(model, definition, value):
    return set(
        db.session.scalars(select(model.id).where(cf.filter_condition(model, definition, value)))
    )


def test_filters_on_every_type_and_entity():
    lang = field(label="Language", field_type="choice", choices=["Français", "English"])
    tags = field(label="Tags", field_type="multichoice", choices=["Été", "a", "ab", "50%"])
    yes = field(label="Approved", field_type="boolean")
    seats = field(label="Seats", field_type="number")
    day = field(label="Renewal", field_type="date")
    note = field(label="Note")
    fr = make_contact(
        custom_fields={
            "language": "Français",
            "tags": ["Été", "ab"],
            "approved": True,
            "seats": 12,
            "renewal": "2026-12-31",
            "note": "Call back in June",
        }
    )
    en = make_contact(
        custom_fields={"language": "English", "tags": ["a", "50%"], "approved": False}
    )
    none = make_contact()
    empty = make_contact(custom_fields=None)
    db.session.commit()
    assert _ids(Contact, lang, "Français") == {fr.id}
    assert _ids(Contact, tags, "Été") == {fr.id}
    assert _ids(Contact, tags, "a") == {en.id}  # "a" does not match inside "ab"
    assert _ids(Contact, tags, "ab") == {fr.id}
    assert _ids(Contact, tags, "50%") == {en.id}
    assert _ids(Contact, yes, "yes") == {fr.id}
    assert _ids(Contact, yes, "no") == {en.id}
    assert _ids(Contact, seats, "12") == {fr.id}
    assert _ids(Contact, day, "31/12/2026") == {fr.id}
    assert _ids(Contact, note, "JUNE") == {fr.id}
    assert none.id and empty.id  # matched by no filter above
    with pytest.raises(cf.CustomFieldError):
        cf.filter_condition(Contact, lang, "German")

    for entity, model, record in (
        ("company", Company, lambda **kw: make_company(**kw)),
        ("deal", Deal, lambda **kw: make_deal(**kw)),
        ("incident", Incident, lambda **kw: make_incident(**kw)),
    ):
        flag = field(entity=entity, label="Flag", field_type="boolean")
        hit = record(custom_fields={"flag": True})
        record(custom_fields={"flag": False})
        db.session.commit()
        assert _ids(model, flag, "oui") == {hit.id}


def test_custom_filter_args_keep_only_fitting_values():
    field(label="Language", field_type="choice", choices=["French", "English"])
    field(label="Approved", field_type="boolean")
    field(label="Note")
    args = {"cf_language": "french", "cf_approved": "oui", "cf_note": "x", "cf_other": "y"}
    assert cf.custom_filter_args("contact", args) == {"language": "French", "approved": "yes"}
    assert cf.custom_filter_args("contact", {"cf_language": "German"}) == {}
