"""The machine service: every operation on machines, whoever drives it (HTTP, timer loop,
notification loop). It decides with the pure core and acts through its ports."""
