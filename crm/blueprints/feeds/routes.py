"""Private ICS feeds of users and teams, and importing one invitation."""

from flask import Blueprint

bp = Blueprint("feeds", __name__)
