"""Alembic environment for the kiln registry.

kiln runs it in code (``services.registry.engine.upgrade``), handing over a connection that is already
in a transaction through ``config.attributes["connection"]``; with a ``sqlalchemy.url`` main option it
opens its own engine instead. The whole upgrade is one transaction on both backends.
"""
from __future__ import annotations

from alembic import context

from services.registry.engine import _PG_MIGRATION_LOCK, make_engine
from services.registry.schema import Base  # the target for --autogenerate only; migrations never import it

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,  # SQLite too: kiln sends BEGIN itself, so its DDL is transactional
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite needs batch mode
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes upgrading on first use: the second waits, then finds nothing left to do.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
