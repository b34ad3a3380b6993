"""The language of texts stored for someone to read later (crm.i18n.language_for)."""

from flask_babel import gettext

from crm.i18n import language_for, office_language, writing_for
from tests.factories import make_user


def test_the_readers_choice_then_the_writers_language_then_the_offices(app, ctx):
    rep = make_user(role="sales")
    rep.locale = None
    # In a job: the office's language (CRM_LANGUAGE, English by default).
    assert language_for(rep) == office_language() == "en"
    with app.test_request_context("/", headers={"Accept-Language": "fr"}):
        # Written during a French request: the writer's language.
        assert language_for(rep) == "fr"
        with writing_for(rep):
            assert gettext("Task") == "Tâche"
        rep.locale = "en"
        assert language_for(rep) == "en"  # the reader's own choice wins
    assert language_for(None) == "en"


def test_the_office_language_is_a_setting(app, ctx):
    app.config["BABEL_DEFAULT_LOCALE"] = "fr"
    assert language_for(make_user(role="sales", locale=None)) == "fr"
