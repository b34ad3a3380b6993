"""The product catalogue shared by every deal."""

from flask import Blueprint

bp = Blueprint("products", __name__, url_prefix="/products")
