"""The global search box: contacts and companies as you type."""

from flask import Blueprint, request
from flask_login import current_user
from sqlalchemy.orm import selectinload

from crm import htmx as hx
from crm.extensions import db
from crm.models import Company, Contact
from crm.permissions import requires, visible_companies, visible_contacts
from crm.services.contacts import name_order
from crm.services.text_search import search_condition

bp = Blueprint("search", __name__, url_prefix="/search")


@bp.route("")
@requires("search.use")
def results():
    q = request.args.get("q", "").strip()[:100]
    limit = 8 if hx.is_partial() else 50
    found_contacts, found_companies = [], []
    if q:
        found_contacts = list(
            db.session.scalars(
                visible_contacts(current_user)
                .where(*search_condition(Contact.search_text, q))
                .options(selectinload(Contact.company))
                .order_by(name_order(q), Contact.id)
                .limit(limit)
            )
        )
        found_companies = list(
            db.session.scalars(
                visible_companies(current_user)
                .where(*search_condition(Company.name_key, q))
                .order_by(Company.name_key, Company.id)
                .limit(limit // 2)
            )
        )
    return hx.render(
        "search/results.html",
        {"search-suggestions": "suggestions"},
        q=q,
        contacts=found_contacts,
        companies=found_companies,
    )
