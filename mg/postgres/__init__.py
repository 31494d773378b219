"""Everything that talks to Postgres. Only this package imports asyncpg or trio_asyncio."""
