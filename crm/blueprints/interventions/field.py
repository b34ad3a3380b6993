"""The technician's day on a phone: today's visits in order, one tap per step on the way
(en route, on site) and the report, signed on the screen, that closes the visit.

The rules live in crm/services/intervention_work.py; these views parse, check that the
user may work the visit (another technician's gives 404), call it, and answer with the
changed card or the form with its errors beside the fields.
"""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import abort, current_app, render_template, request, url_for
from flask_babel import format_date, format_time
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from crm import htmx as hx
from crm.blueprints.interventions.routes import bp
from crm.extensions import db
from crm.form_helpers import STRIP
from crm.i18n import select_timezone
from crm.models import Intervention
from crm.permissions import TECHNICIAN, get_or_404_for, requires
from crm.services import intervention_work as work
from crm.services.reminders import now

STEP_LABELS = {"en_route": _l("En route"), "on_site": _l("On site")}
STEP_TOASTS = {"en_route": _l("On the way to %(name)s."), "on_site": _l("Arrived at %(name)s.")}


class ReportForm(FlaskForm):
    work_done = TextAreaField(
        _l("Work done"), filters=STRIP, validators=[DataRequired(), Length(max=10000)]
    )
    time_spent = IntegerField(
        _l("Time spent (minutes)"),
        validators=[
            InputRequired(_l("How long did the visit take?")),
            NumberRange(1, 24 * 60, _l("Between 1 minute and 24 hours.")),
        ],
    )
    parts_used = TextAreaField(_l("Parts used"), validators=[Optional(), Length(max=5000)])
    signed_by = StringField(_l("Customer's name"), filters=STRIP, validators=[Length(max=200)])
    signature = HiddenField()
    customer_absent = BooleanField(_l("Customer absent: no signature"))
    absent_reason = StringField(_l("Why"), filters=STRIP, validators=[Length(max=300)])

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        self.parts = []
        try:
            self.parts = work.parse_parts(self.parts_used.data)
        except ValueError as error:
            self.parts_used.errors.append(str(error))
            valid = False
        self.signature_png = None
        if self.customer_absent.data:
            if not self.absent_reason.data:
                self.absent_reason.errors.append(_("Say why the customer could not sign."))
                valid = False
            self.signature.data = ""
            return valid
        if not self.signed_by.data:
            self.signed_by.errors.append(_("Who signs for the customer?"))
            valid = False
        try:
            self.signature_png = work.check_signature(self.signature.data)
        except work.SignatureInvalid as error:
            self.signature.errors = [*self.signature.errors, str(error)]
            self.signature.data = ""  # not drawn back: the customer signs again
            valid = False
        return valid

    def report(self) -> work.Report:
        absent = bool(self.customer_absent.data)
        return work.Report(
            work_done=self.work_done.data,
            time_spent_minutes=self.time_spent.data,
            parts=self.parts,
            signed_by=None if absent else self.signed_by.data,
            signature_png=None if absent else self.signature_png,
            absent_reason=self.absent_reason.data if absent else None,
        )


def viewer_zone() -> ZoneInfo:
    return ZoneInfo(select_timezone())


def _workable(intervention_id: int) -> Intervention:
    """The intervention if the user may work it: 404 for anyone else's."""
    get_or_404_for(current_user, Intervention, intervention_id)
    intervention = work.loaded(intervention_id)
    if intervention is None or not work.can_work(current_user, intervention):
        abort(404)
    return intervention


def _local_day(intervention: Intervention, zone: ZoneInfo) -> date:
    moment = intervention.starts_at or now()
    return moment.astimezone(zone).date()


def _incident_url(intervention: Intervention) -> str | None:
    """A link to the incident page, once the incidents blueprint has one."""
    if intervention.incident_id is None or "incidents.detail" not in current_app.view_functions:
        return None
    return url_for("incidents.detail", incident_id=intervention.incident_id)


def _card_context(zone: ZoneInfo) -> dict:
    return {
        "zone": zone,
        "work": work,
        "step_labels": STEP_LABELS,
        "incident_url": _incident_url,
        "time_of": lambda moment: format_time(moment, "short"),
    }


# ---- the day -------------------------------------------------------------------


@bp.route("/today")
@requires("interventions.work")
def today():
    zone = viewer_zone()
    this_day = now().astimezone(zone).date()
    try:
        day = date.fromisoformat(request.args["day"]) if request.args.get("day") else this_day
    except ValueError:
        day = this_day
    visits = work.day_of(current_user, day, zone)
    return hx.render(
        "interventions/field/today.html",
        {"field-day": "day"},
        visits=visits,
        day=day,
        this_day=this_day,
        previous_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1),
        weekday_label=format_date(day, "EEEE").capitalize(),
        day_label=format_date(day, "long"),
        is_technician=current_user.role == TECHNICIAN,
        **_card_context(zone),
    )


@bp.route("/<int:intervention_id>/step", methods=["POST"])
@requires("interventions.work")
def work_step(intervention_id: int):
    """One tap: "En route" or "On site". The answer is the card in its new state."""
    intervention = _workable(intervention_id)
    zone = viewer_zone()
    status = 200
    try:
        changed = work.change_status(intervention, request.form.get("status", ""), current_user)
        db.session.commit()
    except work.WorkRefused as refused:
        db.session.rollback()
        intervention = work.loaded(intervention_id)
        hx.toast(str(refused), "error")
        changed, status = False, 409
    else:
        if changed:
            name = _customer_name(intervention)
            hx.toast(STEP_TOASTS[intervention.status] % {"name": name})
    if not hx.is_htmx():
        return hx.location(url_for(".today", day=_local_day(intervention, zone).isoformat()))
    body = render_template(
        "interventions/field/_visit.html", visit=intervention, **_card_context(zone)
    )
    return body, status


def _customer_name(intervention: Intervention) -> str:
    if intervention.contact is not None:
        return intervention.contact.name
    if intervention.company is not None:
        return intervention.company.name
    return intervention.title


# ---- the report ------------------------------------------------------------------


def _report_page(intervention: Intervention, form: ReportForm | None, status: int = 200):
    zone = viewer_zone()
    return hx.render(
        "interventions/field/report.html",
        {"report-form": "report_form"},
        status=status,
        visit=intervention,
        form=form,
        back_url=url_for(".today", day=_local_day(intervention, zone).isoformat()),
        **_card_context(zone),
    )


@bp.route("/<int:intervention_id>/report")
@requires("interventions.work")
def work_report(intervention_id: int):
    """The report form of an open visit, or the report of a closed one."""
    intervention = _workable(intervention_id)
    form = None
    if intervention.status in work.REPORTABLE:
        form = ReportForm(formdata=None)
        form.time_spent.data = work.minutes_on_site(intervention)
        if intervention.contact is not None:
            form.signed_by.data = intervention.contact.name
    return _report_page(intervention, form)


@bp.route("/<int:intervention_id>/report", methods=["POST"])
@requires("interventions.work")
def save_work_report(intervention_id: int):
    intervention = _workable(intervention_id)
    if intervention.status not in work.REPORTABLE:
        hx.toast(_("This visit is closed: it cannot take a report."), "error")
        return _report_page(intervention, None, status=409)
    form = ReportForm()
    if not form.validate_on_submit():
        return _report_page(intervention, form, status=422)
    try:
        work.submit_report(intervention, form.report(), current_user)
        db.session.commit()
    except work.WorkRefused as refused:
        db.session.rollback()
        hx.toast(str(refused), "error")
        return _report_page(work.loaded(intervention_id), None, status=409)
    hx.toast(_("Report saved: the visit is closed."))
    if current_user.role == TECHNICIAN:
        day = _local_day(intervention, viewer_zone())
        return hx.location(url_for(".today", day=day.isoformat()))
    return hx.location(url_for(".work_report", intervention_id=intervention.id))
