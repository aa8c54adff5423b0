"""index of moves waiting for the TOS's acknowledgement

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 17:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("move", schema=None) as batch_op:
        batch_op.create_index("ix_move_unacked", ["acked_at", "last_sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("move", schema=None) as batch_op:
        batch_op.drop_index("ix_move_unacked")
