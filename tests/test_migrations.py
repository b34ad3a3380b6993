"""The models and the migrations agree: `flask db check` stays clean."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crm.extensions import db
from crm.schema import migrated_object


def test_migrations_match_the_models(ctx):
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": migrated_object}
        )
        assert compare_metadata(context, db.metadata) == []
