"""Email: write from the CRM, read a message, its attachments, and the open-tracking pixel."""

from flask import Blueprint

bp = Blueprint("email", __name__, url_prefix="/email")
