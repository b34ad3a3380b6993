"""Agenda pages and event changes."""

from flask import Blueprint

from crm import htmx as hx
from crm.permissions import requires

bp = Blueprint("agenda", __name__, url_prefix="/agenda")


@bp.route("")
@requires("agenda.view")
def index():
    return hx.render("main/coming_soon.html", area="agenda")
