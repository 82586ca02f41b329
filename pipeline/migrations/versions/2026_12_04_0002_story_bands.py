"""story_bands: LSH band keys of grouped articles, for near-linear story grouping

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 10:12:31.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Articles grouped before this revision have no rows: pipeline.dedup keys them lazily,
    # once, when a later run compares new articles with them.
    op.create_table(
        "story_bands",
        sa.Column("band", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("article_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("band", "key", "article_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("story_bands", schema=None) as batch_op:
        batch_op.create_index("ix_story_bands_article", ["article_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("story_bands", schema=None) as batch_op:
        batch_op.drop_index("ix_story_bands_article")

    op.drop_table("story_bands")
