"""alert_failures: alerts.next_attempt_at, the backoff after a rejected send

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing alerts get NULL: due at once, as before this revision. The new `failed`
    # status needs no schema change (alerts.status is a plain string).
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
