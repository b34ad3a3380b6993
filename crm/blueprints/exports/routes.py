"""Exports of a filtered list to CSV or XLSX, with the filters of the list it came from."""

from flask import Blueprint

bp = Blueprint("exports", __name__, url_prefix="/exports")
