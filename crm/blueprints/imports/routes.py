"""CSV imports: upload, map the columns, choose what to do with duplicates, follow the worker, undo."""

from flask import Blueprint

bp = Blueprint("imports", __name__, url_prefix="/imports")
