"""Several processes serving one port (``[server] workers``): the parent that supervises them
(``mg.workers.supervisor``) and what a worker adds to a node (``mg.workers.worker``, the merged
``/metrics`` of ``mg.workers.exposition``). See docs/architecture.md, "Spreading out"."""
