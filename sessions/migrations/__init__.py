"""Alembic migration environment of the storage package (run through :mod:`sessions.migrate`).

A new revision, after changing the models: migrate a scratch database to the head, then let Alembic
compare it with the models and write the script (review it by hand; name the file
``versions/rNNNN_<slug>.py`` and keep ``NNNN`` as its revision id)::

    python -c "import asyncio; from sessions import Database; \\
        asyncio.run(Database('sqlite+aiosqlite:////tmp/scratch.db').migrate())"
    python -c "from alembic import command; from sessions.migrate import alembic_config; \\
        command.revision(alembic_config('sqlite+aiosqlite:////tmp/scratch.db'), \\
        'what changed', autogenerate=True, rev_id='0003')"
"""
