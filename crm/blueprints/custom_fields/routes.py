"""Custom fields: admins add, order and require fields on contacts, companies, deals and incidents."""

from flask import Blueprint

bp = Blueprint("custom_fields", __name__, url_prefix="/admin/fields")
