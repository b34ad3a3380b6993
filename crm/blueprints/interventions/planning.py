"""Planning an intervention from an incident or a deal: /interventions/new.

The form starts from the record (its subject, its customer's address); without a
time it is unscheduled and waits on the dispatch board's tray, with a time and
technicians it is booked at once (refused with the same message as a drop when a
technician is taken).
"""

from flask import request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from crm import htmx as hx
from crm.blueprints.interventions.routes import bp, viewer_zone
from crm.extensions import db
from crm.form_helpers import STRIP, choices
from crm.models import Deal, Incident, User
from crm.permissions import get_or_404_for, requires
from crm.services import bookings, interventions
from crm.services.recurrence import from_local_naive


def duration_label(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return _("%(num)d min", num=rest)
    if not rest:
        return _("%(num)d h", num=hours)
    return _("%(hours)d h %(minutes)02d", hours=hours, minutes=rest)


class PlanForm(FlaskForm):
    title = StringField(_l("Title"), filters=STRIP, validators=[DataRequired(), Length(max=200)])
    address = StringField(_l("Address"), filters=STRIP, validators=[Length(max=400)])
    skills = SelectMultipleField(_l("Skills needed"), coerce=str, validate_choice=True)
    duration_minutes = SelectField(_l("Duration"), coerce=int, default=60)
    starts_at = DateTimeLocalField(
        _l("Date and time (optional)"),
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[Optional()],
    )
    technicians = SelectMultipleField(_l("Technicians"), coerce=int, validate_choice=True)
    notes = TextAreaField(_l("Notes for the technician"), validators=[Length(max=5000)])
    incident_id = HiddenField()
    deal_id = HiddenField()

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.starts_at.data and not self.technicians.data:
            self.technicians.errors.append(_("Choose who goes, or leave the time empty."))
            valid = False
        if self.technicians.data and not self.starts_at.data:
            self.starts_at.errors.append(_("Choose when, or leave the technicians empty."))
            valid = False
        return valid


def _plan_form(people: list[User], formdata=None, **data) -> PlanForm:
    form = PlanForm(formdata=formdata, **data)
    form.skills.choices = choices((s, s) for s in interventions.all_skills(people))
    form.duration_minutes.choices = choices(
        (m, duration_label(m)) for m in interventions.DURATION_CHOICES
    )
    form.technicians.choices = choices((t.id, t.name) for t in people)
    return form


def _source(args) -> tuple[Incident | None, Deal | None]:
    """The incident or deal the intervention serves, if the user may see it."""
    incident_id = args.get("incident_id", type=int)
    deal_id = args.get("deal_id", type=int)
    incident = get_or_404_for(current_user, Incident, incident_id) if incident_id else None
    deal = get_or_404_for(current_user, Deal, deal_id) if deal_id and not incident else None
    return incident, deal


def _render(form: PlanForm, incident, deal, status: int = 200, error: str | None = None):
    return hx.render(
        "interventions/new.html",
        {"plan-form": "form"},
        status=status,
        form=form,
        incident=incident,
        deal=deal,
        customer=interventions.draft_for(incident, deal),
        error=error,
    )


@bp.route("/new")
@requires("interventions.plan")
def new():
    incident, deal = _source(request.args)
    draft = interventions.draft_for(incident, deal)
    form = _plan_form(
        interventions.technicians(),
        title=draft.get("title", ""),
        address=draft.get("address", ""),
        incident_id=incident.id if incident else "",
        deal_id=deal.id if deal else "",
    )
    return _render(form, incident, deal)


@bp.route("/new", methods=["POST"])
@requires("interventions.plan")
def create():
    incident, deal = _source(request.form)
    people = interventions.technicians()
    form = _plan_form(people, request.form)
    if not form.validate():
        return _render(form, incident, deal, status=422)
    chosen = [p for p in people if p.id in set(form.technicians.data or ())]
    starts_at = (
        from_local_naive(form.starts_at.data, viewer_zone()) if form.starts_at.data else None
    )
    try:
        intervention = interventions.create(
            current_user,
            title=form.title.data,
            duration_minutes=form.duration_minutes.data,
            address=form.address.data,
            skills=form.skills.data,
            notes=form.notes.data,
            incident=incident,
            deal=deal,
            starts_at=starts_at,
            technicians_=chosen,
        )
    except bookings.DoubleBooking as refused:
        form.technicians.errors.append(refused.message)
        db.session.rollback()
        return _render(form, incident, deal, status=409)
    missing = interventions.missing_skills(intervention, chosen) if chosen else []
    db.session.commit()
    if starts_at is None:
        hx.toast(_("Intervention created: it waits on the dispatch board."))
    elif missing:
        hx.toast(
            _("Intervention planned. Missing skills: %(skills)s.", skills=", ".join(missing)),
            "warning",
        )
    else:
        hx.toast(_("Intervention planned."))
    return hx.location(url_for("interventions.show", intervention_id=intervention.id))
