"""Deals: the board, the list, a deal's page, forecasts and quotas."""

from flask import Blueprint

bp = Blueprint("deals", __name__, url_prefix="/deals")

from crm.blueprints.deals import board, forecast, routes  # noqa: E402,F401  (they add their routes to bp)
