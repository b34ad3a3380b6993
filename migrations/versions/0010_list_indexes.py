"""Indexes for the lists at scale: the deal board's first cards per column, the hot leads
(by score, for everyone and per owner), the contacts without a company (the list sorted by
company), the company found by a sender's address, and the meetings held about deals (the
forecast's funnel)

Expression indexes (ix_expr_*) live here only: SQLite cannot reflect them back, so the
models do not declare them (crm.schema.migrated_object leaves them out of comparisons).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 08:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # A board column opens with its soonest expected closes, undated last: one short index
    # walk per stage (the query writes the same default date).
    op.create_index(
        'ix_expr_deal_card_order',
        'deal',
        ['stage_id', sa.text("coalesce(expected_close, '2999-12-31')"), 'id'],
    )
    op.create_index('ix_contact_score_id', 'contact', ['score', 'id'])
    op.create_index('ix_contact_owner_score_id', 'contact', ['owner_id', 'score', 'id'])
    # Contacts sorted by company: those without one come first, by id.
    op.create_index(
        'ix_contact_without_company',
        'contact',
        ['id'],
        postgresql_where=sa.text('company_id IS NULL'),
        sqlite_where=sa.text('company_id IS NULL'),
    )
    # Mail in and out finds the company of an address (lower(trim(email)) as the code asks).
    op.create_index('ix_expr_company_email', 'company', [sa.text('lower(trim(email))')])
    op.create_index(
        'ix_activity_meeting_deal',
        'activity',
        ['deal_id', 'occurred_at'],
        postgresql_where=sa.text("kind = 'meeting'"),
        sqlite_where=sa.text("kind = 'meeting'"),
    )


def downgrade():
    op.drop_index('ix_activity_meeting_deal', table_name='activity')
    op.drop_index('ix_expr_company_email', table_name='company')
    op.drop_index('ix_contact_without_company', table_name='contact')
    op.drop_index('ix_contact_owner_score_id', table_name='contact')
    op.drop_index('ix_contact_score_id', table_name='contact')
    op.drop_index('ix_expr_deal_card_order', table_name='deal')
