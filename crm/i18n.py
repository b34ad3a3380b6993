"""Language and time zone of each request: the user's setting, else the browser's."""

from functools import cache
from zoneinfo import available_timezones

from babel import negotiate_locale
from flask import current_app, has_request_context, request
from flask_babel import force_locale, get_locale
from flask_login import current_user

DEFAULT_TIMEZONE = "Europe/Paris"


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.locale:
        return current_user.locale
    # The browser's order of preference decides, and "fr-CA" counts as "fr"
    # (werkzeug's best_match would pick "fr" for "en-US,fr;q=0.8").
    preferred = [language for language, _quality in request.accept_languages]
    return negotiate_locale(preferred, current_app.config["LANGUAGES"], sep="-") or "en"


def select_timezone() -> str:
    if current_user and current_user.is_authenticated and current_user.timezone:
        return current_user.timezone
    return DEFAULT_TIMEZONE


@cache  # reads the zone database from disk (3 ms): the same for the life of the process
def timezone_choices() -> tuple[str, ...]:
    return tuple(
        sorted(tz for tz in available_timezones() if "/" in tz and not tz.startswith("Etc/"))
    )


def office_language() -> str:
    """The office's language (CRM_LANGUAGE): what the CRM writes in when no reader is known."""
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def language_for(user=None) -> str:
    """The language of a text stored for `user` to read later (a task title, a notification):
    the one they chose; else, when written during a request, that request's (someone of the
    same office); else the office's."""
    if user is not None and user.locale:
        return user.locale
    if has_request_context():
        return str(get_locale() or office_language())
    return office_language()


def writing_for(user=None):
    """Write the texts stored for `user` in their language (see language_for)."""
    return force_locale(language_for(user))
