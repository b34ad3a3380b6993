"""The report page: pick a dataset, groupings, a measure and a period; read the table and the
chart; open the list behind a figure; download the table as CSV. Everything is in the URL."""

from datetime import date

from flask import Blueprint, Response, current_app, request, url_for
from flask_babel import format_date
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from crm import htmx as hx
from crm.csv_safety import write_csv
from crm.permissions import requires
from crm.services import charts
from crm.services import forecast as fc
from crm.services import reports as rp

bp = Blueprint("reports", __name__, url_prefix="/reports")

PARTIALS = {"report": "report_body"}
# Kept when the dataset changes: the rest (groupings, filters, dates) belongs to the old one.
KEPT_ON_DATASET_CHANGE = ("dataset", "period", "from", "to")


def header_label(header: rp.Header) -> str:
    if header.kind == "month":
        return format_date(header.label, "LLL yyyy")
    if header.kind == "week":
        return _("Week of %(day)s", day=format_date(header.label, "medium"))
    if header.kind == "none":
        return _("(none)")
    if header.kind == "others":
        return _("Others")
    return str(header.label)


def _args() -> MultiDict:
    """The request's arguments; those of another dataset dropped when the dataset changed."""
    args = request.args
    shown = args.get("shown")
    if shown and shown != args.get("dataset"):
        return MultiDict({k: v for k, v in args.items() if k in KEPT_ON_DATASET_CHANGE})
    return args


def _quota_currency() -> str:
    return current_app.config.get("QUOTA_CURRENCY", fc.DEFAULT_QUOTA_CURRENCY)


def _parse():
    args = _args()
    today = fc.local_today(current_user)
    return args, rp.parse_query(args, current_user, today, _quota_currency())


def _form_context(args, dataset: rp.Dataset, query: rp.ReportQuery | None = None) -> dict:
    """The form's choices, and the values it shows: the report's when it ran, else as typed."""
    options = rp.filter_options(current_user, dataset)
    measures = rp.measures_for(dataset, current_user)
    values = query.as_args() if query else {k: v for k, v in args.items() if k != "shown"}
    values.setdefault("dataset", dataset.key)
    values.setdefault("period", rp.ANY_DATE)
    return {
        "args": args,
        "values": values,
        "dataset": dataset,
        "dataset_options": [(key, d.label) for key, d in rp.DATASETS.items()],
        "group_options": [(key, d.label) for key, d in rp.dimensions_of(dataset).items()],
        "measures": measures,
        "measure_options": list(measures.items()),
        "money_measures": rp.MONEY_MEASURES,
        "period_options": [(rp.ANY_DATE, _("Any date")), *rp.PERIOD_CHOICES.items()],
        "date_options": [(key, d.label) for key, d in dataset.dates.items()],
        "filters": [(spec, options[key]) for key, spec in dataset.filters.items()],
        "any_date": rp.ANY_DATE,
        "ALL": rp.ALL,
        "empty_cell": rp.Cell(),
    }


@bp.route("")
@requires("reports.view")
def index():
    try:
        args, query = _parse()
    except rp.ReportError as refused:
        args = _args()
        dataset = rp.DATASETS.get(args.get("dataset") or "deals", rp.DEALS)
        context = _form_context(args, dataset)
        return hx.render(
            "reports/index.html",
            PARTIALS,
            status=422,
            error=(refused.field, refused.message),
            report=None,
            **context,
        )
    try:
        report = rp.run(current_user, query)
    except rp.ReportError as refused:
        context = _form_context(args, query.dataset)
        return hx.render(
            "reports/index.html",
            PARTIALS,
            status=422,
            error=(refused.field, refused.message),
            report=None,
            **context,
        )
    response = hx.render(
        "reports/index.html",
        PARTIALS,
        error=None,
        report=report,
        query=query,
        chart=_chart(report),
        cell_url=_cell_url(report),
        header_label=header_label,
        **_form_context(args, query.dataset, query),
    )
    # The address bar shows the report as asked, without the form's bookkeeping.
    response.headers["HX-Push-Url"] = url_for("reports.index", **query.as_args())
    return response


@bp.route("/export.csv")
@requires("reports.view")
def export():
    try:
        _args_, query = _parse()
        report = rp.run(current_user, query)
    except rp.ReportError as refused:
        args = _args()
        dataset = rp.DATASETS.get(args.get("dataset") or "deals", rp.DEALS)
        return hx.render(
            "reports/index.html",
            status=422,
            error=(refused.field, refused.message),
            report=None,
            **_form_context(args, dataset),
        )
    header, rows = rp.table_rows(report, header_label)
    filename = f"report-{query.dataset.key}-{date.today().isoformat()}.csv"
    return Response(
        write_csv(header, rows),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _cell_url(report: rp.Report):
    """cell_url(row_key, column_key) -> the list showing that cell's records, or None."""
    endpoint = report.list_endpoint

    def build(row_key, column_key=None):
        if endpoint is None:
            return None
        args = report.list_args(row_key, column_key)
        return url_for(endpoint, **args) if args is not None else None

    return build


def _chart(report: rp.Report):
    """A line over time when the first grouping is months or weeks, else bars (stacked by the
    second grouping)."""
    query = report.query
    unit = "money" if query.is_money else "count"
    currency = query.currency if query.is_money else None
    title = f"{rp.MEASURES[query.measure]} · {query.dimensions[0].label}"
    labels = [header_label(h) for h in report.rows]
    # Averages do not stack: a two-way report of averages charts its rows' averages.
    if report.columns and query.measure != "amount_avg":
        title += f" · {query.dimensions[1].label}"
        series = [
            (
                header_label(c),
                [report.value(report.cell(r.key, c.key)) or 0 for r in report.rows],
            )
            for c in report.columns
        ]
    else:
        series = [
            ("", [report.value(report.row_totals.get(r.key, rp.Cell())) or 0 for r in report.rows])
        ]
    if query.dimensions[0].kind in ("month", "week") and len(report.rows) > 1:
        return "line", charts.line_chart(title, labels, series, unit=unit, currency=currency)
    cell_url = _cell_url(report)
    links = [cell_url(r.key, rp.ALL) for r in report.rows]
    return "bar", charts.bar_chart(title, labels, series, unit=unit, currency=currency, links=links)
