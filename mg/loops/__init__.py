"""Background drivers of the machine service: the timer loop and the notification loop."""
