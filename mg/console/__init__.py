"""The operator console (PROTOCOL section 9): pages under ``/ui/`` beside the client API."""
