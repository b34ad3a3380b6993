"""The language of texts stored for someone to read later (crm.i18n.language_for)."""

import threading

from flask_babel import gettext

from crm.i18n import language_for, writing_for
from tests.factories import make_user


def _in_a_job(app, work):
    """Run `work` as the worker does: in an app context, with no request around."""
    result = []

    def run():
        with app.app_context():
            result.append(work())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def test_the_readers_choice_then_the_writers_language_then_the_offices(app, ctx):
    rep = make_user(role="sales", locale=None)
    with app.test_request_context("/", headers={"Accept-Language": "fr"}):
        # Written during a French request: the writer's language.
        assert language_for(rep) == "fr"
        with writing_for(rep):
            assert gettext("Task") == "Tâche"
        rep.locale = "en"
        assert language_for(rep) == "en"  # the reader's own choice wins
    rep.locale = None
    # In a job: the office's language (CRM_LANGUAGE, English by default).
    assert _in_a_job(app, lambda: language_for(rep)) == "en"
    app.config["BABEL_DEFAULT_LOCALE"] = "fr"
    assert _in_a_job(app, lambda: language_for(rep)) == "fr"
