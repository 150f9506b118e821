"""Migrations: one row per volume migration (source, destination, via target, phases,
downtime, verify outcome, state, report; the evacuation it belongs to)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 20:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'migrations',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=True),
        sa.Column('source_host', sa.String(length=200), nullable=False),
        sa.Column('source_volume', sa.String(length=255), nullable=False),
        sa.Column('dest_host', sa.String(length=200), nullable=False),
        sa.Column('dest_volume', sa.String(length=255), nullable=False),
        sa.Column('driver', sa.String(length=100), nullable=False),
        sa.Column('driver_opts', sa.JSON(), nullable=False),
        sa.Column('via', sa.String(length=100), nullable=False),
        sa.Column('cutover', sa.String(length=16), nullable=False),
        sa.Column('remove_source', sa.Boolean(), nullable=False),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('phases', sa.JSON(), nullable=False),
        sa.Column('downtime_seconds', sa.Float(), nullable=True),
        sa.Column('verify_outcome', sa.String(length=16), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('report', sa.JSON(), nullable=False),
        sa.Column('cancel_requested_by', sa.String(length=200), nullable=True),
        sa.Column('rollback_requested_by', sa.String(length=200), nullable=True),
        sa.Column('batch', sa.String(length=32), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_migrations_state', 'migrations', ['state'])
    op.create_index('ix_migrations_created_at', 'migrations', ['created_at'])
    op.create_index('ix_migrations_batch', 'migrations', ['batch'])


def downgrade() -> None:
    op.drop_index('ix_migrations_batch', table_name='migrations')
    op.drop_index('ix_migrations_created_at', table_name='migrations')
    op.drop_index('ix_migrations_state', table_name='migrations')
    op.drop_table('migrations')
