"""mg: durable, event-sourced state machines as a service."""

__version__ = "0.1.0"
