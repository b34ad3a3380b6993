"""The product catalogue shared by every deal.

Pages
    GET  /products                    the list: active search on name and code, status filter,
                                      sortable columns, infinite scroll, quick-add, row editor
    POST /products                    quick-add (products.manage)
    GET  /products/<id>/edit          the row editor; GET /products/<id>/row: the row again
    POST /products/<id>               save the row editor (products.manage)

Product picker for the deal page
    GET /products/search?q=<text>     (products.view; one SQL query)

    Answers `<option>` elements only, for a `<select>` (or a `<datalist>`) that the
    caller owns: active products whose name (accents ignored) or code contains every
    typed word, an exact code first, then by name, at most 10::

        <option value="42" data-code="SUP-01" data-name="Support, 1 year"
                data-unit-price="1234.50" data-unit-cost="800.00">SUP-01 · Support, 1 year — 1 234,50 €</option>

    `value` is the product id; `data-unit-price` and `data-unit-cost` are plain decimals
    with a dot ("" when the cost is unknown), ready to post back; the text is for people,
    with the price in the reader's locale. With no match the answer is one
    `<option value="" disabled>` saying so; an empty `q` lists the first 10 by name.
    Example::

        <input type="search" name="product_q" hx-get="/products/search" hx-trigger="input changed delay:200ms"
               hx-target="#product-choices" hx-swap="innerHTML" hx-sync="this:replace">
        <select id="product-choices" name="product_id"></select>

    Amounts typed by people: crm.form_helpers.MoneyField (a WTForms field),
    or crm.money.parse_money(text, locale) outside a form.
"""

from flask import Blueprint, current_app, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from crm import htmx as hx
from crm.blueprints.products.forms import ProductEditForm, ProductForm
from crm.extensions import db
from crm.models import Product
from crm.permissions import requires
from crm.services import products
from crm.services.products import ProductError

bp = Blueprint("products", __name__, url_prefix="/products")

LIST_PARTIALS = {"product-rows": "rows", "load-more": "rows"}
# The row editor's inputs are "edit-name", ...: apart from the quick-add form's on one page.
EDIT_PREFIX = "edit"


def _error_message(code: str) -> str:
    return {
        "code_required": _("Give the product a code."),
        "code_too_long": _("A code has at most %(count)d characters.", count=products.CODE_MAX),
        "code_taken": _("Another product already has this code."),
        "name_required": _("Give the product a name."),
        "name_too_long": _("A name has at most %(count)d characters.", count=products.NAME_MAX),
        "price_required": _("Enter a price."),
        "price_range": _("This amount is out of range."),
    }[code]


def _list_context(filters: products.ProductFilters, **extra) -> dict:
    page = products.list_products(filters, current_app.config["PAGE_SIZE"])
    context = {"page": page, "filters": filters, "editing": None, "edit_form": None}
    context.update(extra)
    return context


@bp.route("")
@requires("products.view")
def index():
    filters = products.ProductFilters.from_args(request.args)
    return hx.render(
        "products/index.html",
        LIST_PARTIALS,
        form=ProductForm(formdata=None),
        **_list_context(filters),
    )


@bp.route("", methods=["POST"])
@requires("products.manage")
def create():
    form = ProductForm()
    if form.validate_on_submit():
        try:
            product = products.create_product(
                current_user,
                code=form.code.data,
                name=form.name.data,
                unit_price=form.unit_price.data,
                unit_cost=form.unit_cost.data,
            )
            db.session.commit()
        except ProductError as error:
            db.session.rollback()
            getattr(form, error.field).errors.append(_error_message(error.code))
        except IntegrityError:
            # The same code saved by someone else a moment ago: the unique index said no.
            db.session.rollback()
            form.code.errors.append(_error_message("code_taken"))
        else:
            hx.toast(_("%(name)s added to the catalogue.", name=product.name))
            if not hx.is_htmx():
                return hx.location(url_for("products.index"))
            return hx.render_fragment(
                "products/index.html",
                "quick_add",
                "new_row",
                form=ProductForm(formdata=None),
                product=product,
            )
    if not hx.is_htmx():
        return hx.render(
            "products/index.html",
            form=form,
            status=422,
            **_list_context(products.ProductFilters()),
        )
    return hx.render_fragment("products/index.html", "quick_add", form=form, status=422)


@bp.route("/search")
@requires("products.view")
def search():
    return hx.render_fragment(
        "products/_options.html",
        "options",
        products=products.search_active(request.args.get("q", "")),
    )


def _product_or_404(product_id: int) -> Product:
    return db.get_or_404(Product, product_id)


def _row(product: Product, form=None, status: int = 200):
    """The row (or its editor) under htmx; the list with that row open otherwise."""
    if hx.is_htmx():
        return hx.render_fragment(
            "products/_row.html",
            "edit_row" if form else "row",
            product=product,
            form=form,
            status=status,
        )
    return hx.render(
        "products/index.html",
        status=status,
        form=ProductForm(formdata=None),
        # Without htmx the editor opens in the list searched for that code, so it is on the page.
        **_list_context(
            products.ProductFilters(q=product.code if form is not None else ""),
            editing=product.id if form is not None else None,
            edit_form=form,
        ),
    )


@bp.route("/<int:product_id>/row")
@requires("products.view")
def row(product_id: int):
    return _row(_product_or_404(product_id))


@bp.route("/<int:product_id>/edit")
@requires("products.manage")
def edit(product_id: int):
    product = _product_or_404(product_id)
    return _row(product, ProductEditForm(formdata=None, obj=product, prefix=EDIT_PREFIX))


@bp.route("/<int:product_id>", methods=["POST"])
@requires("products.manage")
def update(product_id: int):
    product = _product_or_404(product_id)
    form = ProductEditForm(prefix=EDIT_PREFIX)
    if form.validate_on_submit():
        try:
            products.update_product(
                current_user,
                product,
                name=form.name.data,
                unit_price=form.unit_price.data,
                unit_cost=form.unit_cost.data,
                active=form.active.data,
            )
        except ProductError as error:
            db.session.rollback()
            getattr(form, error.field).errors.append(_error_message(error.code))
        else:
            db.session.commit()
            hx.toast(_("%(name)s saved.", name=product.name))
            if not hx.is_htmx():
                return hx.location(url_for("products.index"))
            return _row(product)
    return _row(product, form, status=422)
