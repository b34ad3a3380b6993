"""Incident pages and changes."""

from flask import Blueprint

from crm import htmx as hx
from crm.permissions import requires

bp = Blueprint("incidents", __name__, url_prefix="/incidents")


@bp.route("")
@requires("incidents.view")
def index():
    return hx.render("main/coming_soon.html", area="incidents")
