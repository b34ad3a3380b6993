"""What a CSV column can be imported into, and a first guess from its header.

Headers come from everywhere: our own exports, other CRMs, Excel sheets typed by hand,
in English or French. A header is folded (no case, no accents, punctuation as spaces)
and compared with each field's names; custom fields match their label or key and are
mapped as "custom.<key>".
"""

import re
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm.models.search_keys import fold
from crm.services import custom_fields

CUSTOM_PREFIX = "custom."
# The custom field entity of each import entity (notes have none).
CUSTOM_ENTITY = {"contacts": "contact", "companies": "company"}


@dataclass(frozen=True)
class ImportField:
    key: str
    label: object  # a lazy string
    aliases: tuple[str, ...] = ()


_ADDRESS = (
    ImportField(
        "street", _l("Street"), ("street", "address", "adresse", "rue", "address line 1", "voie")
    ),
    ImportField(
        "postcode",
        _l("Postcode"),
        ("postcode", "postal code", "post code", "zip", "zip code", "code postal", "cp"),
    ),
    ImportField("city", _l("City"), ("city", "town", "ville", "commune", "localite")),
    ImportField("country", _l("Country"), ("country", "pays")),
)
_OWNER = ImportField(
    "owner",
    _l("Owner (user's email or name)"),
    (
        "owner",
        "contact owner",
        "account owner",
        "proprietaire",
        "responsable",
        "commercial",
        "assigned to",
        "attribue a",
        "suivi par",
    ),
)
_STAGE = ImportField(
    "stage", _l("Stage"), ("stage", "lifecycle stage", "etape", "statut", "status", "cycle de vie")
)
_NOTES = ImportField(
    "notes",
    _l("Note (added to the timeline)"),
    ("notes", "note", "comment", "comments", "commentaire", "commentaires", "remarques"),
)
_EMAIL = ImportField(
    "email",
    _l("Email"),
    ("email", "e mail", "mail", "email address", "adresse email", "adresse e mail", "courriel"),
)
_PHONE = ImportField(
    "phone",
    _l("Phone"),
    (
        "phone",
        "phone number",
        "telephone",
        "tel",
        "mobile",
        "portable",
        "numero de telephone",
        "tel portable",
    ),
)
_LINKEDIN = ImportField(
    "linkedin_url", _l("LinkedIn"), ("linkedin", "linkedin url", "profil linkedin")
)

FIELDS: dict[str, tuple[ImportField, ...]] = {
    "contacts": (
        ImportField(
            "first_name", _l("First name"), ("first name", "firstname", "given name", "prenom")
        ),
        ImportField(
            "last_name",
            _l("Last name"),
            ("last name", "lastname", "surname", "family name", "nom", "nom de famille"),
        ),
        ImportField("name", _l("Full name"), ("name", "full name", "nom complet", "contact")),
        _EMAIL,
        _PHONE,
        ImportField(
            "title",
            _l("Job title"),
            ("title", "job title", "position", "fonction", "poste", "titre"),
        ),
        ImportField(
            "company",
            _l("Company (found or created by name)"),
            (
                "company",
                "company name",
                "organization",
                "organisation",
                "societe",
                "entreprise",
                "account",
                "raison sociale",
            ),
        ),
        _OWNER,
        _STAGE,
        ImportField("source", _l("Source"), ("source", "lead source", "origine", "provenance")),
        ImportField("tags", _l("Tags"), ("tags", "tag", "labels", "etiquettes", "mots cles")),
        *_ADDRESS,
        ImportField(
            "consent",
            _l("Marketing consent"),
            ("consent", "consentement", "opt in", "marketing consent", "accepte les emails"),
        ),
        _LINKEDIN,
        ImportField("twitter_url", _l("X (Twitter)"), ("twitter", "x", "twitter url")),
        _NOTES,
    ),
    "companies": (
        ImportField(
            "name",
            _l("Company name"),
            (
                "name",
                "company",
                "company name",
                "societe",
                "entreprise",
                "raison sociale",
                "nom",
                "organisation",
                "organization",
            ),
        ),
        ImportField(
            "industry",
            _l("Industry"),
            ("industry", "sector", "secteur", "secteur d activite", "activite"),
        ),
        ImportField(
            "employees",
            _l("Employees"),
            (
                "employees",
                "number of employees",
                "headcount",
                "effectif",
                "effectifs",
                "nombre de salaries",
                "salaries",
            ),
        ),
        ImportField(
            "website",
            _l("Website"),
            ("website", "web site", "site web", "site internet", "url", "site"),
        ),
        _LINKEDIN,
        _EMAIL,
        _PHONE,
        *_ADDRESS,
        _OWNER,
        _STAGE,
        _NOTES,
    ),
    "notes": (
        ImportField(
            "contact_email",
            _l("Contact's email"),
            ("email", "e mail", "mail", "courriel", "contact email", "email du contact"),
        ),
        ImportField(
            "company",
            _l("Company name"),
            ("company", "company name", "societe", "entreprise", "raison sociale"),
        ),
        ImportField("subject", _l("Subject"), ("subject", "title", "objet", "sujet", "titre")),
        ImportField(
            "body",
            _l("Note"),
            (
                "note",
                "notes",
                "body",
                "text",
                "content",
                "texte",
                "contenu",
                "commentaire",
                "description",
            ),
        ),
        ImportField(
            "occurred_at",
            _l("Date"),
            ("date", "occurred at", "created at", "date de creation", "quand", "le"),
        ),
        ImportField(
            "author", _l("Author (user's email or name)"), ("author", "auteur", "by", "par")
        ),
    ),
}

_PUNCTUATION = re.compile(r"[^\w]+")


def normalize(header: str) -> str:
    """ "E-mail " -> "e mail", "Téléphone" -> "telephone", "Code_postal" -> "code postal"."""
    return _PUNCTUATION.sub(" ", fold(header).replace("_", " ")).strip()


def choices(entity: str) -> list[tuple[str, str]]:
    """(value, label) of everything a column can be imported into, custom fields last."""
    options = [(field.key, str(field.label)) for field in FIELDS[entity]]
    for definition in _custom_definitions(entity):
        label = definition.label + (" *" if definition.required else "")
        options.append((CUSTOM_PREFIX + definition.key, _("%(label)s (custom field)", label=label)))
    return options


def labels(entity: str) -> dict[str, str]:
    return dict(choices(entity))


def _custom_definitions(entity: str) -> list:
    custom_entity = CUSTOM_ENTITY.get(entity)
    return custom_fields.definitions(custom_entity) if custom_entity else []


def guess_mapping(entity: str, headers: list[str]) -> list[str]:
    """A field for each column ("" for none), each field used once, the first column that
    names it winning; exact names first, so "Nom complet" is not taken for "Nom"."""
    names: dict[str, str] = {}
    for field in FIELDS[entity]:
        for alias in (field.key.replace("_", " "), *field.aliases):
            names.setdefault(normalize(alias), field.key)
    for definition in _custom_definitions(entity):
        for alias in (definition.label, definition.key):
            names.setdefault(normalize(alias), CUSTOM_PREFIX + definition.key)
    mapping, used = [], set()
    for header in headers:
        key = names.get(normalize(header), "")
        if key in used:
            key = ""
        used.add(key)
        mapping.append(key)
    return mapping


def check_mapping(entity: str, mapping: list[str]) -> tuple[dict[int, str], list[str]]:
    """Errors of a mapping: by column index (an unknown field, a field mapped twice), and
    for the whole (what the entity cannot do without). Empty when the import can start."""
    known = {value for value, _label in choices(entity)}
    by_column: dict[int, str] = {}
    seen: dict[str, int] = {}
    for index, key in enumerate(mapping):
        if not key:
            continue
        if key not in known:
            by_column[index] = _("Choose a field from the list.")
        elif key in seen:
            by_column[index] = _("Already chosen for another column.")
            by_column.setdefault(seen[key], _("Already chosen for another column."))
        else:
            seen[key] = index
    chosen = set(seen)
    overall = []
    if not chosen:
        overall.append(_("Choose a field for at least one column."))
    elif entity == "contacts" and not chosen & {
        "first_name",
        "last_name",
        "name",
        "email",
        "phone",
    }:
        overall.append(_("Choose a column for the name, the email or the phone number."))
    elif entity == "companies" and "name" not in chosen:
        overall.append(_("Choose the column of the company name."))
    elif entity == "notes":
        if "body" not in chosen:
            overall.append(_("Choose the column of the note's text."))
        if not chosen & {"contact_email", "company"}:
            overall.append(
                _(
                    "Choose the column of the contact's email or of the company name, to attach each note."
                )
            )
    return by_column, overall


def unmapped_required(entity: str, mapping: list[str]) -> list[str]:
    """Labels of the required custom fields no column fills: new records will be rejected."""
    chosen = set(mapping)
    return [
        d.label
        for d in _custom_definitions(entity)
        if d.required and CUSTOM_PREFIX + d.key not in chosen
    ]
