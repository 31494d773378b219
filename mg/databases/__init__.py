"""A node over several databases (``[namespaces.X] database.url``, PROTOCOL section 8): one
storage per database (pool, state, loops, sequencers, wake-up listener: ``Database``), and the
one map the service finds a namespace's or a sink's storage through (``mg.databases.routing``).
See docs/architecture.md, "Spreading out"."""
