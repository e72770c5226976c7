"""How long recordings are kept, per organisation (a deployment has one: ``"default"``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sessions.db import Database
from sessions.models import (
    DEFAULT_ORGANISATION,
    ORGANISATION_MAX,
    USERNAME_MAX,
    OrganisationSettings,
    utcnow,
)

__all__ = ["MAX_RETENTION_DAYS", "RetentionStore"]

MAX_RETENTION_DAYS = 36_500
"""A hundred years: anything longer is a typo (use ``None`` to keep recordings forever)."""


def _check_organisation(organisation: str) -> None:
    if not organisation or len(organisation) > ORGANISATION_MAX:
        raise ValueError(
            f"organisation must be 1-{ORGANISATION_MAX} characters, got {organisation!r}"
        )


class RetentionStore:
    """The retention period of each organisation, stored in ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, organisation: str = DEFAULT_ORGANISATION) -> int | None:
        """Days recordings are kept after they end; ``None`` (also when never set): forever."""
        _check_organisation(organisation)
        async with self._db.session() as session:
            row = await session.get(OrganisationSettings, organisation)
            return None if row is None else row.retention_days

    async def set(
        self,
        days: int | None,
        organisation: str = DEFAULT_ORGANISATION,
        *,
        actor: str | None = None,
    ) -> int | None:
        """Keep recordings ``days`` days (1 to :data:`MAX_RETENTION_DAYS`), or forever with
        ``None``; returns what was stored. :class:`ValueError` for anything else."""
        _check_organisation(organisation)
        if days is not None and (
            isinstance(days, bool)
            or not isinstance(days, int)
            or not 1 <= days <= MAX_RETENTION_DAYS
        ):
            raise ValueError(
                f"retention must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, or "
                f"None to keep recordings forever; got {days!r}"
            )
        if actor is not None and not 1 <= len(actor) <= USERNAME_MAX:
            raise ValueError(f"actor must be 1-{USERNAME_MAX} characters, got {actor!r}")
        async with self._db.session() as session, session.begin():
            row = await session.get(OrganisationSettings, organisation, with_for_update=True)
            if row is None:
                session.add(
                    OrganisationSettings(
                        organisation=organisation, retention_days=days, updated_by=actor
                    )
                )
            else:
                row.retention_days, row.updated_by, row.updated_at = days, actor, utcnow()
        return days

    async def cutoff(
        self, organisation: str = DEFAULT_ORGANISATION, *, now: datetime | None = None
    ) -> datetime | None:
        """Recordings that ended before this have expired; ``None`` when they are kept forever."""
        days = await self.get(organisation)
        return None if days is None else (now or utcnow()) - timedelta(days=days)
