"""Mailboxes: the shared ones (admins) and each user's own, with a connection check."""

from flask import Blueprint

bp = Blueprint("mailboxes", __name__, url_prefix="/admin/mailboxes")
