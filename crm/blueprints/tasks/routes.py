"""Task pages and changes."""

from flask import Blueprint

from crm import htmx as hx
from crm.permissions import requires

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


@bp.route("")
@requires("tasks.use")
def index():
    return hx.render("main/coming_soon.html", area="tasks")
