"""Merging two duplicate contacts or companies into one, from a side-by-side screen.

From a record's page: a picker (likely duplicates first, then an active search of the same
kind), then both records side by side with a choice per field, then one POST that merges
the other record into this one and opens it.
"""

from flask import Blueprint, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm import htmx as hx
from crm.extensions import db
from crm.models import Company, Contact
from crm.permissions import get_or_404_for, requires
from crm.services import merge

bp = Blueprint("merge", __name__, url_prefix="/merge")

PICK_PARTIALS = {"merge-candidates": "candidates"}


def _detail_url(kind: str, record) -> str:
    endpoint, argument = merge.DETAIL_ENDPOINTS[kind]
    return url_for(endpoint, **{argument: record.id})


def _pick(kind: str, record_id: int):
    record = get_or_404_for(current_user, merge.MODELS[kind], record_id)
    q = request.args.get("q", "").strip()[:100]
    return hx.render(
        "merge/pick.html",
        PICK_PARTIALS,
        kind=kind,
        record=record,
        q=q,
        suggested=merge.duplicates(current_user, kind, record),
        found=merge.search(current_user, kind, record, q) if q else [],
        detail_url=_detail_url(kind, record),
    )


def _compare(kind: str, record_id: int, other_id: int):
    model = merge.MODELS[kind]
    kept = get_or_404_for(current_user, model, record_id)
    other = get_or_404_for(current_user, model, other_id)
    if request.method == "POST":
        picks = {
            name.removeprefix("pick-"): value
            for name, value in request.form.items()
            if name.startswith("pick-")
        }
        try:
            merge.merge(current_user, kind, kept, other, picks)
        except merge.MergeRefused as refusal:
            db.session.rollback()
            return _refused(kind, kept, str(refusal))
        db.session.commit()
        hx.toast(_("Merged: %(name)s now holds the history of both.", name=str(kept)))
        return hx.location(_detail_url(kind, kept))
    try:
        plan = merge.plan(kind, kept, other)
    except merge.MergeRefused as refusal:
        return _refused(kind, kept, str(refusal))
    return hx.render(
        "merge/compare.html",
        plan=plan,
        kind=kind,
        detail_url=_detail_url(kind, kept),
        other_url=_detail_url(kind, other),
    )


def _refused(kind: str, record, message: str):
    """The picker again, with the reason: 422, as a refused form."""
    return hx.render(
        "merge/pick.html",
        status=422,
        kind=kind,
        record=record,
        q="",
        suggested=merge.duplicates(current_user, kind, record),
        found=[],
        detail_url=_detail_url(kind, record),
        error=message,
    )


@bp.route("/contacts/<int:contact_id>")
@requires("records.merge")
def pick_contact(contact_id: int):
    return _pick("contact", contact_id)


@bp.route("/contacts/<int:contact_id>/with/<int:other_id>", methods=["GET", "POST"])
@requires("records.merge")
def contacts(contact_id: int, other_id: int):
    return _compare("contact", contact_id, other_id)


@bp.route("/companies/<int:company_id>")
@requires("records.merge")
def pick_company(company_id: int):
    return _pick("company", company_id)


@bp.route("/companies/<int:company_id>/with/<int:other_id>", methods=["GET", "POST"])
@requires("records.merge")
def companies(company_id: int, other_id: int):
    return _compare("company", company_id, other_id)


# For templates: the merge pages of a record, by its kind.
PAGES = {
    Contact: ("merge.pick_contact", "merge.contacts", "contact_id"),
    Company: ("merge.pick_company", "merge.companies", "company_id"),
}


@bp.app_context_processor
def _merge_urls():
    def merge_url(record, other=None) -> str | None:
        """The picker of `record`, or with `other` the screen merging `other` into it."""
        if type(record) not in PAGES:
            return None
        pick, compare, argument = PAGES[type(record)]
        if other is None:
            return url_for(pick, **{argument: record.id})
        return url_for(compare, **{argument: record.id}, other_id=other.id)

    return {"merge_url": merge_url}
