"""The product catalogue: list, search, quick-add, row editor, picker, amounts in both locales."""

import re
from decimal import Decimal

import pytest

from crm.extensions import db
from crm.models import Product
from crm.models.search_keys import fold
from crm.money import MoneyError, parse_money
from tests.conftest import htmx_headers
from tests.factories import make_product as _make_product


def make_product(code: str, **fields) -> Product:
    product = _make_product(code, **fields)
    product.name_key = fold(product.name)  # as the service stores it (the factory only lowercases)
    return product


def _codes(html: str) -> list[str]:
    return re.findall(r'<span class="product-code">([^<]+)</span>', html)


def _product(code: str) -> Product:
    return db.session.scalars(db.select(Product).where(Product.code == code)).one()


@pytest.fixture
def manager(as_role):
    return as_role("manager")


# ---- amounts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "locale", "value"),
    [
        ("1 234,50", "fr", "1234.50"),
        ("1\u202f234,50", "fr", "1234.50"),
        ("1\u00a0234,50 €", "fr", "1234.50"),
        ("1,234.50", "fr", "1234.50"),  # typed the English way by a French user
        ("1234.5", "fr", "1234.50"),
        ("1234,5", "fr", "1234.50"),
        ("1,234.50", "en", "1234.50"),
        ("1 234,50", "en", "1234.50"),  # typed the French way by an English user
        ("1234.5", "en", "1234.50"),
        ("12,345", "en", "12345.00"),  # ambiguous: the user's locale decides
        ("€ 99", "en", "99.00"),
        ("0", "en", "0.00"),
        ("2.500", "en", "2.50"),
    ],
)
def test_parse_money_reads_both_locales(text, locale, value):
    assert parse_money(text, locale) == Decimal(value)


@pytest.mark.parametrize(
    ("text", "locale", "reason"),
    [
        ("abc", "fr", "invalid"),
        ("12abc", "en", "invalid"),
        ("1,2,3", "en", "invalid"),
        ("1.234,50", "en", "invalid"),
        ("1e3", "en", "invalid"),
        ("", "en", "invalid"),
        ("-5", "en", "negative"),
        ("12,345", "fr", "decimals"),  # 12.345 in French: a third decimal
        ("1.999", "en", "decimals"),
        ("9999999999999", "en", "too_large"),
    ],
)
def test_parse_money_refuses_nonsense(text, locale, reason):
    with pytest.raises(MoneyError) as error:
        parse_money(text, locale)
    assert error.value.reason == reason


# ---- the list ---------------------------------------------------------------------


class TestList:
    def test_search_on_name_and_code_without_accents(self, as_role):
        client, _ = as_role("sales")
        make_product("SUP-01", name="Assistance téléphonique")
        make_product("INST-2024", name="Installation sur site")
        db.session.commit()
        for query, expected in [
            ("telephonique", ["SUP-01"]),
            ("ASSISTANCE", ["SUP-01"]),
            ("sup-0", ["SUP-01"]),
            ("2024", ["INST-2024"]),
            ("inst site", ["INST-2024"]),
            ("nothing", []),
        ]:
            assert _codes(client.get("/products", query_string={"q": query}).text) == expected, (
                query
            )

    def test_active_search_answers_only_the_rows(self, as_role):
        client, _ = as_role("sales")
        make_product("A-1", name="Alpha")
        db.session.commit()
        response = client.get("/products?q=alp", headers=htmx_headers("tbody#product-rows"))
        assert response.status_code == 200
        assert "<html" not in response.text and _codes(response.text) == ["A-1"]

    def test_status_filter(self, as_role):
        client, _ = as_role("sales")
        make_product("ON", name="On")
        make_product("OFF", name="Off", active=False)
        db.session.commit()
        assert sorted(_codes(client.get("/products").text)) == ["OFF", "ON"]
        assert _codes(client.get("/products?status=active").text) == ["ON"]
        assert _codes(client.get("/products?status=inactive").text) == ["OFF"]

    def test_prices_are_shown_in_the_readers_locale(self, as_role):
        client, _ = as_role("sales", locale="fr")
        make_product("P", name="P", unit_price=Decimal("1234.50"), unit_cost=Decimal("1000"))
        db.session.commit()
        html = client.get("/products").text
        assert "1\u202f234,50\xa0€" in html
        assert "19\xa0%" in html  # margin

    @pytest.mark.parametrize("sort", ["name", "-name", "code", "-code", "price", "-price"])
    def test_keyset_pages_cover_every_row_once(self, app, as_role, sort):
        client, _ = as_role("sales")
        app.config["PAGE_SIZE"] = 7
        for i in range(30):
            make_product(
                f"C{i:02d}", name=f"Same {i % 4}", unit_price=Decimal(f"{(i % 5) * 10}.29")
            )
        db.session.commit()
        seen, url, pages = [], f"/products?sort={sort}", 0
        while url:
            html = client.get(url, headers=htmx_headers("tr#load-more") if pages else {}).text
            seen += _codes(html)
            found = re.search(r'id="load-more" hx-get="([^"]+)"', html)
            url = found.group(1).replace("&amp;", "&") if found else None
            pages += 1
        app.config["PAGE_SIZE"] = 50
        assert sorted(seen) == sorted(f"C{i:02d}" for i in range(30))
        assert pages == 5
        if sort.lstrip("-") == "price":
            prices = [_product(code).unit_price for code in seen]
            assert prices == sorted(prices, reverse=sort.startswith("-"))

    def test_sales_see_the_list_without_the_quick_add_or_edit(self, as_role):
        client, _ = as_role("sales")
        make_product("A-1")
        db.session.commit()
        html = client.get("/products").text
        assert "product-quick-add" not in html and "/edit" not in html

    def test_query_count_does_not_grow_with_the_catalogue(self, as_role):
        client, _ = as_role("manager")

        def queries(url):
            response = client.get(url)
            assert response.status_code == 200
            return int(response.headers["X-SQL-Queries"])

        urls = [
            "/products",
            "/products?q=p&sort=-price",
            "/products?status=active&sort=code",
            "/products/search?q=p",
        ]
        for i in range(10):
            make_product(f"S{i:03d}")
        db.session.commit()
        small = {url: queries(url) for url in urls}
        for i in range(290):
            make_product(f"L{i:03d}", unit_cost=Decimal("10"))
        db.session.commit()
        large = {url: queries(url) for url in urls}
        assert large == small
        assert max(large.values()) <= 3, large


# ---- quick-add ------------------------------------------------------------------


class TestQuickAdd:
    def test_manager_adds_a_product_typed_the_french_way(self, as_role):
        client, _ = as_role("manager", locale="fr")
        response = client.post(
            "/products",
            data={"code": "SUP-01", "name": "Support", "unit_price": "1 234,50", "unit_cost": ""},
            headers=htmx_headers("form#product-quick-add"),
        )
        assert response.status_code == 200
        assert '<hx-partial hx-target="#product-rows" hx-swap="afterbegin">' in response.text
        assert 'value=""' in response.text  # a fresh form
        product = _product("SUP-01")
        assert (product.name, product.unit_price, product.unit_cost, product.active) == (
            "Support",
            Decimal("1234.50"),
            None,
            True,
        )
        assert product.name_key == "support"

    def test_duplicate_code_whatever_its_case_is_refused_with_the_input_kept(self, manager):
        client, _ = manager
        make_product("SUP-01")
        db.session.commit()
        response = client.post(
            "/products",
            data={"code": "sup-01", "name": "Copy", "unit_price": "12.5"},
            headers=htmx_headers("form#product-quick-add"),
        )
        assert response.status_code == 422
        assert "Another product already has this code." in response.text
        assert 'value="sup-01"' in response.text and 'value="Copy"' in response.text
        assert 'value="12.5"' in response.text
        assert db.session.scalar(db.select(db.func.count()).select_from(Product)) == 1

    def test_nonsense_price_gets_a_clear_error(self, manager):
        client, _ = manager
        make_product("X")
        db.session.commit()
        response = client.post(
            "/products",
            data={"code": "x", "name": "X", "unit_price": "twelve", "unit_cost": "-3"},
            headers=htmx_headers("form#product-quick-add"),
        )
        assert response.status_code == 422
        assert "Enter an amount such as 1,234.50." in response.text
        assert "The amount cannot be negative." in response.text
        assert "Another product already has this code." in response.text  # every error at once
        assert 'value="twelve"' in response.text

    def test_code_name_and_price_are_required(self, manager):
        client, _ = manager
        response = client.post("/products", data={}, headers=htmx_headers("form#product-quick-add"))
        assert response.status_code == 422
        assert response.text.count('class="error"') == 3
        assert "Enter a price." in response.text

    def test_without_htmx_the_page_comes_back(self, manager):
        client, _ = manager
        response = client.post("/products", data={"code": "A", "name": "A", "unit_price": "1"})
        assert response.status_code == 303
        response = client.post("/products", data={"code": "A", "name": "B", "unit_price": "1"})
        assert response.status_code == 422 and "<html" in response.text

    def test_sales_cannot_add(self, as_role):
        client, _ = as_role("sales")
        response = client.post("/products", data={"code": "A", "name": "A", "unit_price": "1"})
        assert response.status_code == 403
        assert db.session.scalar(db.select(db.func.count()).select_from(Product)) == 0


# ---- row editor -----------------------------------------------------------------


class TestRowEditor:
    def test_edit_save_and_cancel(self, manager):
        client, _ = manager
        product = make_product("A-1", name="Old", unit_price=Decimal("10"))
        db.session.commit()
        editor = client.get(
            f"/products/{product.id}/edit", headers=htmx_headers(f"tr#product-{product.id}")
        )
        assert editor.status_code == 200
        assert 'name="edit-name"' in editor.text and 'value="10.00"' in editor.text
        response = client.post(
            f"/products/{product.id}",
            data={"edit-name": "New name", "edit-unit_price": "1,250.00", "edit-unit_cost": "900"},
            headers=htmx_headers(f"tr#product-{product.id}"),
        )
        assert response.status_code == 200
        assert response.text.lstrip().startswith(f'<tr id="product-{product.id}"')
        db.session.expire_all()
        product = _product("A-1")
        assert (
            product.name,
            product.name_key,
            product.unit_price,
            product.unit_cost,
            product.active,
        ) == (
            "New name",
            "new name",
            Decimal("1250.00"),
            Decimal("900.00"),
            False,
        )
        assert "Inactive" in response.text
        cancel = client.get(
            f"/products/{product.id}/row", headers=htmx_headers(f"tr#product-{product.id}")
        )
        assert "New name" in cancel.text and "edit-name" not in cancel.text

    def test_invalid_edit_answers_422_with_the_input_kept(self, manager):
        client, _ = manager
        product = make_product("A-1", name="Keep", unit_price=Decimal("10"))
        db.session.commit()
        response = client.post(
            f"/products/{product.id}",
            data={"edit-name": "", "edit-unit_price": "ten", "edit-active": "y"},
            headers=htmx_headers(f"tr#product-{product.id}"),
        )
        assert response.status_code == 422
        assert 'value="ten"' in response.text and "checked" in response.text
        db.session.expire_all()
        assert (_product("A-1").name, _product("A-1").unit_price) == ("Keep", Decimal("10.00"))

    def test_editor_without_htmx_is_the_list_with_the_row_open(self, manager):
        client, _ = manager
        product = make_product("A-1")
        db.session.commit()
        page = client.get(f"/products/{product.id}/edit").text
        assert "<html" in page and 'name="edit-name"' in page

    def test_sales_cannot_edit(self, as_role):
        client, _ = as_role("sales")
        product = make_product("A-1", name="Keep")
        db.session.commit()
        assert client.get(f"/products/{product.id}/edit").status_code == 403
        assert client.post(f"/products/{product.id}", data={"edit-name": "X"}).status_code == 403

    def test_unknown_product_is_404(self, manager):
        client, _ = manager
        assert client.get("/products/999999/edit").status_code == 404


# ---- the picker -------------------------------------------------------------------


class TestPicker:
    def test_options_of_active_products_best_first(self, as_role):
        client, _ = as_role("sales")
        make_product(
            "SUP", name="Zeta support", unit_price=Decimal("1234.5"), unit_cost=Decimal("800")
        )
        make_product("SUP-2", name="Alpha support")
        make_product("SUP-OLD", name="Old support", active=False)
        db.session.commit()
        response = client.get(
            "/products/search?q=sup", headers=htmx_headers("select#product-choices")
        )
        assert response.status_code == 200
        options = re.findall(r"<option value=\"(\d+)\" data-code=\"([^\"]+)\"", response.text)
        assert [code for _id, code in options] == ["SUP", "SUP-2"]  # exact code first, no inactive
        assert 'data-unit-price="1234.50" data-unit-cost="800.00"' in response.text
        assert "SUP · Zeta support — €1,234.50" in response.text

    def test_at_most_ten_and_one_query(self, as_role):
        client, _ = as_role("sales")
        for i in range(15):
            make_product(f"P{i:02d}", name=f"Widget {i}")
        db.session.commit()
        baseline = int(client.get("/products/search?q=nomatch").headers["X-SQL-Queries"])
        response = client.get("/products/search?q=widget")
        assert response.text.count("<option") == 10
        assert int(response.headers["X-SQL-Queries"]) == baseline
        assert "No active product matches." in client.get("/products/search?q=nomatch").text

    def test_support_cannot_use_it(self, as_role):
        client, _ = as_role("support")
        assert client.get("/products/search?q=a").status_code == 403


# ---- the service -----------------------------------------------------------------


def test_service_refuses_a_code_taken_in_another_case_and_cleans_values(ctx):
    from crm.services.products import ProductError, create_product, update_product
    from tests.factories import make_user

    actor = make_user(role="manager")
    product = create_product(
        actor, code="  SUP  01 ", name=" Héllo   World ", unit_price=Decimal("10")
    )
    db.session.flush()
    assert (product.code, product.name, product.name_key) == (
        "SUP 01",
        "Héllo World",
        "hello world",
    )
    with pytest.raises(ProductError) as error:
        create_product(actor, code="sup 01", name="Copy", unit_price=Decimal("1"))
    assert (error.value.code, error.value.field) == ("code_taken", "code")
    with pytest.raises(ProductError) as error:
        update_product(
            actor, product, name="x", unit_price=Decimal("-1"), unit_cost=None, active=True
        )
    assert (error.value.code, error.value.field) == ("price_range", "unit_price")
    update_product(
        actor,
        product,
        name="Same",
        unit_price=Decimal("5"),
        unit_cost=None,
        active=False,
        code="sup 01",
    )  # its own code in another case is fine
    assert product.code == "sup 01" and not product.active
