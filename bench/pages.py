"""What the benchmark measures, in one place: pages, writes and the targets they must meet.

A page's path may name ids found in the seeded database ({contact}, {company},
{deal}, {feed_token}, {incident}, {tech_day}: see `bench.run.find_records`) and {term},
which cycles through SEARCH_TERMS. Each page and write is asked by one of ROLES, signed
in as that user.
"""

from dataclasses import dataclass

# The targets, on the two-core machine with 100,000 contacts.
P95_MS = 50  # sequential, every page and write
REQUESTS_PER_SECOND = 300  # under load, contact list and search
SQL_QUERIES = 10  # per request, whatever the data size
LIST_PAGE_BYTES = 60 * 1024
FRAGMENT_BYTES = 20 * 1024
RSS_BYTES = 150 * 1024 * 1024  # each web worker, and the RQ worker

# A few letters, as somebody types them in the search box: surnames, first names, a city.
SEARCH_TERMS = ("dur", "mer", "gir", "lam", "rou", "cam", "oli", "hel", "lyon", "bonn")


# Who asks: a sales rep, a sales manager (their team's deals), a support agent (the
# incident queue starts from their own incidents), a technician (their own visits).
ROLES = ("sales", "manager", "support", "technician")


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    role: str = "sales"  # one of ROLES
    # The element an htmx request swaps into ("tbody#contact-rows"): a list page (the board
    # too) answers it with the rows alone, measured as the fragment; list pages have the
    # size targets.
    fragment_target: str | None = None
    load: bool = False  # also driven by the load tool

    @property
    def is_list(self) -> bool:
        return self.fragment_target is not None


PAGES = (
    Page("start page", "/"),
    Page("start page, team", "/", role="manager"),
    Page("dashboard, my day", "/dashboard"),
    Page("dashboard, team", "/dashboard?tab=team", role="manager"),
    Page("dashboard, support", "/dashboard?tab=support", role="support"),
    Page("hot leads", "/leads", fragment_target="tbody#lead-rows"),
    Page("report, deals by owner", "/reports?dataset=deals&group=owner", role="manager"),
    Page("contact list", "/contacts", fragment_target="tbody#contact-rows", load=True),
    Page("contact search", "/contacts?q={term}", fragment_target="tbody#contact-rows", load=True),
    Page(
        "contacts, stage filter", "/contacts?stage=customer", fragment_target="tbody#contact-rows"
    ),
    Page("contacts by activity", "/contacts?sort=-activity", fragment_target="tbody#contact-rows"),
    Page("contact, long timeline", "/contacts/{contact}"),
    Page("company list", "/companies", fragment_target="tbody#company-rows"),
    Page("company search", "/companies?q={term}", fragment_target="tbody#company-rows"),
    Page("company, most people", "/companies/{company}"),
    Page("global search", "/search?q={term}"),
    Page("deal board", "/deals", fragment_target="div#deal-board"),
    Page("deal board, team", "/deals", role="manager", fragment_target="div#deal-board"),
    Page("deal list", "/deals/list", fragment_target="tbody#deal-rows"),
    Page("deal list, team", "/deals/list", role="manager", fragment_target="tbody#deal-rows"),
    Page("deal page", "/deals/{deal}"),
    Page("forecast, team", "/deals/forecast", role="manager"),
    Page("agenda week", "/agenda?view=week"),
    Page("agenda week, team", "/agenda?view=team", role="manager"),
    Page("task list", "/tasks"),
    # What a subscribed calendar app fetches every few minutes: the rep's feed.
    Page("calendar feed", "/feeds/{feed_token}.ics"),
    # Support: the agent's own open incidents, most urgent first, and a search in them.
    Page("incident queue", "/incidents", role="support", fragment_target="tbody#incident-rows"),
    Page(
        "incident search",
        "/incidents?q={term}",
        role="support",
        fragment_target="tbody#incident-rows",
    ),
    Page("incident page", "/incidents/{incident}", role="support"),
    Page("dispatch board, week", "/interventions", role="support"),
    # The phone view of a technician's busiest day near the seed's today.
    Page("technician day", "/interventions/today?day={tech_day}", role="technician"),
)


@dataclass(frozen=True)
class Write:
    name: str
    # How bench.run builds the request: "log_call", "move_deal", "create_contact", "reply".
    kind: str
    role: str = "sales"


WRITES = (
    Write("log a call", "log_call"),
    Write("move a deal", "move_deal"),
    Write("create a contact", "create_contact"),
    Write("reply to an incident", "reply", role="support"),
)
