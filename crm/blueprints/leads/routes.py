"""Leads: the hot list, scoring and routing rules, and the public web forms that capture leads."""

from flask import Blueprint

bp = Blueprint("leads", __name__, url_prefix="/leads")
