"""The bridge between trio (mg) and asyncpg (asyncio): the interface the storage adapter uses
(``interface``), the pool on the asyncio side, and the two ways to run that loop (a dedicated
thread, or trio-asyncio). Only ``mg.postgres`` uses it."""
