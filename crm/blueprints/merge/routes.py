"""Merging two duplicate contacts or companies into one, from a side-by-side screen."""

from flask import Blueprint

bp = Blueprint("merge", __name__, url_prefix="/merge")
