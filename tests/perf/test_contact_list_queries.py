"""The contact list and its search, the pages a sales rep opens most: the statements they
run stay few and do not grow with the contacts, their tags or the users.

Whole page: the session (with the bell), the rows (with their tags on PostgreSQL), the
owner and tag choices together, the custom fields. A search asks the planner how many
contacts match once, then remembers it for a while."""

from sqlalchemy import event
from sqlalchemy.engine import Engine

from crm.extensions import db
from crm.models import Activity, Company, Contact, Tag
from crm.models.types import utcnow
from tests.factories import make_user

LIMIT = 10


def _add_contacts(count: int, owners, tags) -> None:
    company = Company(name=f"Durance {count}")
    now = utcnow()
    for i in range(count):
        contact = Contact(
            first_name=f"Jean{i}",
            last_name=f"Durand{count}",
            email=f"d{count}-{i}@example.com",
            company=company if i % 2 else None,
            owner=owners[i % len(owners)],
            tags=[tag for n, tag in enumerate(tags) if i % (n + 2) == 0],
        )
        db.session.add(contact)
        db.session.add(Activity(kind="note", contact=contact, body="n", occurred_at=now))
    db.session.commit()


def _statements(client, url: str) -> list[str]:
    seen = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    # On the Engine class: the request runs on the app's own engine, not on the test's.
    event.listen(Engine, "before_cursor_execute", record)
    try:
        response = client.get(url)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert response.status_code == 200, url
    assert int(response.headers["X-SQL-Queries"]) == len(seen), url
    return seen


def test_the_contact_list_and_its_search_run_few_statements_whatever_the_data(as_role):
    client, me = as_role("sales")
    owners = [me, make_user(), make_user()]
    tags = [Tag(name="vip"), Tag(name="salon"), Tag(name="partner")]
    _add_contacts(10, owners, tags)
    urls = ["/contacts", "/contacts?q=durand", "/contacts?q=durand&owner=me&tag=vip"]
    for url in urls:  # the searches' estimates asked for once (see the test below)
        _statements(client, url)
    small = {url: len(_statements(client, url)) for url in urls}

    _add_contacts(1000, owners, tags)
    for n in range(20):
        make_user(name=f"Owner {n}")
        db.session.add(Tag(name=f"tag-{n}"))
    db.session.commit()
    large = {url: len(_statements(client, url)) for url in urls}

    assert large == small
    postgres = db.engine.dialect.name == "postgresql"
    # The tags come with the rows on PostgreSQL; the search's estimate was asked already.
    assert large["/contacts"] == (4 if postgres else 5), large
    assert max(large.values()) <= LIMIT, large


def test_a_search_asks_the_planner_once_for_the_same_words(as_role):
    client, _ = as_role("sales")
    _add_contacts(5, [make_user()], [Tag(name="vip")])

    def explains(url: str) -> int:
        return sum(s.startswith("EXPLAIN") for s in _statements(client, url))

    first = explains("/contacts?q=jean0+durand")
    # Typed again, in another case and order: the same words, no new estimate.
    assert explains("/contacts?q=Durand+Jean0") == 0
    assert explains("/contacts?q=jean0+durand") == 0
    if db.engine.dialect.name == "postgresql":
        assert first == 1
