"""Session records: how a session ended, what it continues, consent; recordings; retention.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Sessions that had already ended get ``end_reason = 'closed'`` (the only way they could end before).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.add_column(sa.Column("end_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("ended_abnormally", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("previous_session_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("recording_consent", sa.Boolean(), nullable=True))
        batch_op.create_foreign_key(
            "fk_sessions_previous_session_id", "sessions", ["previous_session_id"], ["id"]
        )
    op.execute("UPDATE sessions SET end_reason = 'closed' WHERE ended_at IS NOT NULL")

    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("track", sa.String(length=128), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "video",
                "audio",
                name="recording_kind",
                native_enum=False,
                length=16,
                create_constraint=False,
            ),
            nullable=False,
        ),
        sa.Column("participant", sa.String(length=64), nullable=False),
        sa.Column("codec", sa.String(length=32), nullable=False),
        sa.Column("container", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "recording",
                "complete",
                "interrupted",
                "failed",
                name="recording_status",
                native_enum=False,
                length=16,
                create_constraint=False,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recordings_session_id", "recordings", ["session_id"], unique=False)

    op.create_table(
        "organisation_settings",
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("organisation"),
    )


def downgrade() -> None:
    op.drop_table("organisation_settings")
    op.drop_index("ix_recordings_session_id", table_name="recordings")
    op.drop_table("recordings")
    with op.batch_alter_table("sessions") as batch_op:
        batch_op.drop_constraint("fk_sessions_previous_session_id", type_="foreignkey")
        batch_op.drop_column("recording_consent")
        batch_op.drop_column("previous_session_id")
        batch_op.drop_column("ended_abnormally")
        batch_op.drop_column("end_reason")
