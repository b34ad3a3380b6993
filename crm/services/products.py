"""The product catalogue: listing, searching, creating and editing products.

Prices are Decimal from end to end: crm.money.parse_money() reads what people
type in either locale ("1 234,50", "1,234.50", "1234.5") and refuses anything else.
"""

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import BigInteger, case, cast, func, or_, select

from crm.extensions import db
from crm.models import Product, User
from crm.models.search_keys import fold
from crm.money import MAX_PRICE
from crm.services import keyset

CODE_MAX, NAME_MAX = 40, 200
PICKER_LIMIT = 10

STATUSES = ("active", "inactive")

# Price sorting goes through whole cents, so that the keyset cursor is an int on both
# databases (SQLite keeps Numeric as a float: round before the cast).
_CENTS = cast(func.round(Product.unit_price * 100), BigInteger)

SORTS = {
    "name": (keyset.SortKey(Product.name_key), lambda p: p.name_key),
    "code": (keyset.SortKey(Product.code), lambda p: p.code),
    "price": (keyset.SortKey(_CENTS, "int"), lambda p: int(round(p.unit_price * 100))),
}
DEFAULT_SORT = "name"


class ProductError(ValueError):
    """A product that breaks a catalogue rule; `field` says which input is at fault."""

    def __init__(self, code: str, field: str):
        super().__init__(code)
        self.code = code
        self.field = field


# ---- listing -----------------------------------------------------------------


@dataclass
class ProductFilters:
    q: str = ""
    status: str = ""  # "", "active" or "inactive"
    sort: str = DEFAULT_SORT  # a key of SORTS, "-" in front for descending
    cursor: str | None = None

    @classmethod
    def from_args(cls, args) -> "ProductFilters":
        sort = args.get("sort", DEFAULT_SORT)
        if sort.lstrip("-") not in SORTS:
            sort = DEFAULT_SORT
        status = args.get("status", "")
        return cls(
            q=args.get("q", "").strip()[:100],
            status=status if status in STATUSES else "",
            sort=sort,
            cursor=args.get("cursor") or None,
        )

    def as_args(self, **changes) -> dict:
        """Query-string arguments for a link that keeps these filters."""
        values = {"q": self.q, "status": self.status}
        values["sort"] = self.sort if self.sort != DEFAULT_SORT else ""
        values.update(changes)
        return {k: v for k, v in values.items() if v}

    @property
    def active(self) -> bool:
        return bool(self.q or self.status)


@dataclass
class ProductPage:
    products: list[Product]
    next_cursor: str | None


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_conditions(text: str) -> list:
    """Every typed word must appear in the name (accents ignored) or in the code.

    Not text_search.search_condition: its phone-number reading would turn a
    numeric code such as "2024-01" into a run of digits.
    """
    conditions = []
    for term in fold(text).split(" "):
        if term:
            pattern = f"%{_escape_like(term)}%"
            conditions.append(
                or_(
                    Product.name_key.like(pattern, escape="\\"),
                    func.lower(Product.code).like(pattern, escape="\\"),
                )
            )
    return conditions


def list_products(filters: ProductFilters, size: int = 50) -> ProductPage:
    """One page of the catalogue: one query whatever the number of products."""
    query = select(Product).where(*search_conditions(filters.q))
    if filters.status:
        query = query.where(Product.active.is_(filters.status == "active"))
    key, sort_value = SORTS[filters.sort.lstrip("-")]
    descending = filters.sort.startswith("-")
    query = keyset.paginate(query, key, Product.id, descending, filters.cursor, size)
    rows = list(db.session.scalars(query))
    products, next_cursor = keyset.split_page(rows, size, sort_value)
    return ProductPage(products, next_cursor)


def search_active(text: str, limit: int = PICKER_LIMIT) -> list[Product]:
    """Active products for a picker, best first: an exact code, then by name. One query."""
    text = (text or "").strip()[:100]
    exact = case((func.lower(Product.code) == text.lower(), 0), else_=1)
    query = (
        select(Product)
        .where(Product.active.is_(True), *search_conditions(text))
        .order_by(exact, Product.name_key, Product.id)
        .limit(limit)
    )
    return list(db.session.scalars(query))


# ---- changes -------------------------------------------------------------------


def _clean_code(code: str | None) -> str:
    code = " ".join((code or "").split())
    if not code:
        raise ProductError("code_required", "code")
    if len(code) > CODE_MAX:
        raise ProductError("code_too_long", "code")
    return code


def _clean_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ProductError("name_required", "name")
    if len(name) > NAME_MAX:
        raise ProductError("name_too_long", "name")
    return name


def _check_amount(value: Decimal | None, field: str, required: bool) -> Decimal | None:
    if value is None:
        if required:
            raise ProductError("price_required", field)
        return None
    if value < 0 or value > MAX_PRICE:
        raise ProductError("price_range", field)
    return value.quantize(Decimal("0.01"))


def code_taken(code: str, exclude_id: int | None = None) -> bool:
    """Codes are unique whatever their case: "ab-1" and "AB-1" are one product."""
    query = select(Product.id).where(func.lower(Product.code) == code.lower())
    if exclude_id is not None:
        query = query.where(Product.id != exclude_id)
    return db.session.scalar(query.limit(1)) is not None


def create_product(
    actor: User,
    *,
    code: str,
    name: str,
    unit_price: Decimal | None,
    unit_cost: Decimal | None = None,
    active: bool = True,
) -> Product:
    code = _clean_code(code)
    name = _clean_name(name)
    unit_price = _check_amount(unit_price, "unit_price", required=True)
    unit_cost = _check_amount(unit_cost, "unit_cost", required=False)
    if code_taken(code):
        raise ProductError("code_taken", "code")
    product = Product(
        code=code,
        name=name,
        name_key=fold(name),
        unit_price=unit_price,
        unit_cost=unit_cost,
        active=active,
    )
    db.session.add(product)
    return product


def update_product(
    actor: User,
    product: Product,
    *,
    name: str,
    unit_price: Decimal | None,
    unit_cost: Decimal | None,
    active: bool,
    code: str | None = None,
) -> Product:
    """Change a product. Deal lines keep the price and cost they were made with."""
    name = _clean_name(name)
    unit_price = _check_amount(unit_price, "unit_price", required=True)
    unit_cost = _check_amount(unit_cost, "unit_cost", required=False)
    if code is not None:
        code = _clean_code(code)
        if code_taken(code, exclude_id=product.id):
            raise ProductError("code_taken", "code")
        product.code = code
    product.name = name
    product.name_key = fold(name)
    product.unit_price = unit_price
    product.unit_cost = unit_cost
    product.active = active
    return product
