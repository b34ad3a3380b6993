"""Companies: the list, quick-add, and the company page with its contacts and timeline."""

from flask import Blueprint, current_app, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from crm import htmx as hx
from crm.blueprints.companies.forms import CompanyForm, CompanyQuickAddForm
from crm.blueprints.contacts.forms import QuickAddForm
from crm.blueprints.custom_fields.inputs import CustomInputs
from crm.blueprints.incidents.routes import customer_panel_context
from crm.blueprints.tasks.routes import record_panel_context
from crm.extensions import db
from crm.models import Company
from crm.models.search_keys import fold
from crm.permissions import get_or_404_for, requires
from crm.services import companies
from crm.services import contacts as contact_service
from crm.services.timeline import company_timeline

bp = Blueprint("companies", __name__, url_prefix="/companies")

LIST_PARTIALS = {"company-rows": "rows", "load-more": "rows"}


def _list_context(filters: companies.CompanyFilters) -> dict:
    rows, next_cursor = companies.list_companies(
        current_user, filters, current_app.config["PAGE_SIZE"]
    )
    return {"rows": rows, "next_cursor": next_cursor, "filters": filters}


@bp.route("")
@requires("contacts.list")
def index():
    filters = companies.CompanyFilters.from_args(request.args)
    return hx.render(
        "companies/index.html",
        LIST_PARTIALS,
        form=CompanyQuickAddForm(formdata=None),
        custom=CustomInputs.for_create("company"),
        **_list_context(filters),
    )


@bp.route("", methods=["POST"])
@requires("contacts.create")
def create():
    form = CompanyQuickAddForm()
    custom = CustomInputs.for_create("company", request.form)
    form_valid = form.validate_on_submit()
    custom_values = custom.validate()
    if form_valid and custom_values is not None:
        existing = db.session.scalars(
            select(Company).where(Company.name_key == fold(form.name.data))
        ).first()
        if existing:
            form.name.errors.append(_("This company already exists."))
        else:
            company = Company(
                name=form.name.data.strip(),
                website=form.website.data or None,
                owner=current_user,
                custom_fields=custom_values,
            )
            db.session.add(company)
            db.session.commit()
            hx.toast(_("%(name)s added.", name=company.name))
            return hx.location(url_for("companies.detail", company_id=company.id))
    if hx.is_htmx():
        return hx.render_fragment(
            "companies/index.html", "quick_add", form=form, custom=custom, status=422
        )
    return hx.render(
        "companies/index.html",
        form=form,
        custom=custom,
        status=422,
        **_list_context(companies.CompanyFilters()),
    )


def _detail_context(company: Company, **extra) -> dict:
    # The first page of the contact list filtered on the company, in the same rows (plain
    # values, not ORM objects); the next come from the list as one scrolls down.
    people = contact_service.list_contact_rows(
        current_user,
        contact_service.ContactFilters(company=company.id),
        current_app.config["PAGE_SIZE"],
    )
    context = {
        "company": company,
        "people": people,
        "timeline": company_timeline(company, current_user),
        "editing_form": None,
        "editing_custom": None,
        "contact_form": QuickAddForm(formdata=None, data={"company": company.name}),
        "contact_custom": CustomInputs.for_create("contact"),
        **record_panel_context("company", company),
        **customer_panel_context(company=company),
    }
    context.update(extra)
    return context


@bp.route("/<int:company_id>")
@requires("contacts.view")
def detail(company_id: int):
    company = get_or_404_for(current_user, Company, company_id, joinedload(Company.owner))
    return hx.render("companies/detail.html", **_detail_context(company))


@bp.route("/<int:company_id>/edit")
@requires("contacts.edit")
def edit(company_id: int):
    company = get_or_404_for(current_user, Company, company_id)
    form = CompanyForm(obj=company, formdata=None)
    custom = CustomInputs.for_record("company", company.custom_fields)
    return hx.render(
        "companies/detail.html",
        {"company-details": "details"},
        **_detail_context(company, editing_form=form, editing_custom=custom),
    )


@bp.route("/<int:company_id>", methods=["POST"])
@requires("contacts.edit")
def update(company_id: int):
    company = get_or_404_for(current_user, Company, company_id)
    form = CompanyForm()
    custom = CustomInputs.for_record("company", company.custom_fields, request.form)
    form_valid = form.validate_on_submit()
    custom_values = custom.validate(company.custom_fields)
    if form_valid and custom_values is not None:
        clash = db.session.scalars(
            select(Company).where(
                Company.name_key == fold(form.name.data), Company.id != company.id
            )
        ).first()
        if clash:
            form.name.errors.append(_("Another company already has this name."))
        else:
            form.populate_obj(company)
            for name in (
                "industry",
                "website",
                "linkedin_url",
                "email",
                "phone",
                "street",
                "postcode",
                "city",
                "country",
            ):
                setattr(company, name, (getattr(company, name) or "").strip() or None)
            company.custom_fields = custom_values
            _refresh_contact_search(company)
            db.session.commit()
            hx.toast(_("Company saved."))
            if not hx.is_htmx():
                return hx.location(url_for("companies.detail", company_id=company.id))
            return hx.render_fragment(
                "companies/detail.html", "details", **_detail_context(company)
            )
    return hx.render(
        "companies/detail.html",
        {"company-details": "details"},
        status=422,
        **_detail_context(company, editing_form=form, editing_custom=custom),
    )


def _refresh_contact_search(company: Company) -> None:
    """Contacts are found by their company's name: keep their search keys in step."""
    for contact in company.contacts:
        contact.refresh_keys()
