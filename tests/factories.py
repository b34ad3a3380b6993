"""Test data, one function per model; each adds to the session and flushes."""

import itertools

from crm.extensions import db
from crm.models import Activity, Company, Contact, Team, User
from crm.services.passwords import hash_password

_seq = itertools.count(1)
PASSWORD = "correct horse battery"


def make_team(name: str | None = None) -> Team:
    team = Team(name=name or f"Team {next(_seq)}")
    db.session.add(team)
    db.session.flush()
    return team


def make_user(role: str = "sales", password: str | None = PASSWORD, **fields) -> User:
    n = next(_seq)
    fields.setdefault("email", f"user{n}@example.com")
    fields.setdefault("name", f"User {n}")
    user = User(role=role, password_hash=hash_password(password) if password else None, **fields)
    db.session.add(user)
    db.session.flush()
    return user


def make_company(name: str | None = None, **fields) -> Company:
    company = Company(name=name or f"Company {next(_seq)}", **fields)
    db.session.add(company)
    db.session.flush()
    return company


def make_contact(first_name: str = "Jean", last_name: str | None = None, **fields) -> Contact:
    n = next(_seq)
    fields.setdefault("email", f"contact{n}@example.com")
    contact = Contact(first_name=first_name, last_name=f"Durand{n}" if last_name is None else last_name, **fields)
    db.session.add(contact)
    db.session.flush()
    return contact


def make_activity(contact: Contact, kind: str = "note", **fields) -> Activity:
    activity = Activity(kind=kind, contact=contact, company=contact.company, **fields)
    db.session.add(activity)
    db.session.flush()
    return activity
