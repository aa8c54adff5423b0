"""gate_transaction.truck_epc holds EPCs up to 512 bits (128 hex digits), as tag reads do

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gate_transaction") as batch_op:
        batch_op.alter_column(
            "truck_epc", existing_type=sa.String(length=64), type_=sa.String(length=128),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("gate_transaction") as batch_op:
        batch_op.alter_column(
            "truck_epc", existing_type=sa.String(length=128), type_=sa.String(length=64),
            existing_nullable=True,
        )
