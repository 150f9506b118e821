"""Indexes for the console's newest-first pages: ``backups.created_at`` (the backups
page across every volume) and ``jobs.created_at`` (the jobs and history pages without a
state filter). ``migrations.created_at`` has had its index since 0011.

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-06 21:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0012'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_backups_created_at', 'backups', ['created_at'])
    op.create_index('ix_jobs_created_at', 'jobs', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_jobs_created_at', table_name='jobs')
    op.drop_index('ix_backups_created_at', table_name='backups')
