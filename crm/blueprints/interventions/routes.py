"""Intervention pages and changes."""

from flask import Blueprint

from crm import htmx as hx
from crm.permissions import requires

bp = Blueprint("interventions", __name__, url_prefix="/interventions")


@bp.route("")
@requires("interventions.view")
def index():
    return hx.render("main/coming_soon.html", area="interventions")


from crm.blueprints.interventions import field  # noqa: E402,F401  (registers the technician's views)
