"""sentence_language: sentences.language, the language of each sentence

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sentences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
    # Sentences split before this revision take their article's language, as a bare code
    # ("en-GB" -> "en"): the split stage then detected nothing per sentence.
    article_language = (
        "(SELECT lower(articles.language) FROM articles WHERE articles.id = sentences.article_id)"
    )
    op.execute(
        f"UPDATE sentences SET language = CASE "
        f"WHEN substr({article_language}, 3, 1) IN ('-', '_') "
        f"THEN substr({article_language}, 1, 2) ELSE {article_language} END"
    )


def downgrade() -> None:
    with op.batch_alter_table("sentences", schema=None) as batch_op:
        batch_op.drop_column("language")
