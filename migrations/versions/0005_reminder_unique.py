"""One reminder per person, subject, occurrence and channel, for real

The unique constraint of 0004 spanned (event_id, task_id), of which one is always
NULL; NULLs never collide, so it let duplicates in. Two partial unique indexes,
one per kind of subject, do what it meant.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.drop_constraint('uq_reminder', type_='unique')
        batch_op.create_index(
            'uq_reminder_event', ['user_id', 'event_id', 'occurrence_start', 'channel'],
            unique=True,
            sqlite_where=sa.text('event_id IS NOT NULL'),
            postgresql_where=sa.text('event_id IS NOT NULL'),
        )
        batch_op.create_index(
            'uq_reminder_task', ['user_id', 'task_id', 'occurrence_start', 'channel'],
            unique=True,
            sqlite_where=sa.text('task_id IS NOT NULL'),
            postgresql_where=sa.text('task_id IS NOT NULL'),
        )


def downgrade():
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.drop_index('uq_reminder_task')
        batch_op.drop_index('uq_reminder_event')
        batch_op.create_unique_constraint(
            'uq_reminder', ['user_id', 'event_id', 'task_id', 'occurrence_start', 'channel']
        )
