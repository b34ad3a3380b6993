"""Flask extensions, created unbound here and bound in create_app()."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
htmx_requests = Htmx()  # adds request.htmx
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session holds. A commit expires every loaded object
    (the signed-in user included), and the answer rendered next would read each back, one
    query apiece; after a write the objects at hand are what the database now holds.
    Attributes the database filled in itself (server defaults) still load when read."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True
