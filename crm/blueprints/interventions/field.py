"""The technician's day (placeholder until the field view lands)."""

from crm import htmx as hx
from crm.blueprints.interventions.routes import bp
from crm.permissions import requires


@bp.route("/today")
@requires("interventions.work")
def today():
    return hx.render("main/coming_soon.html", area="interventions")
