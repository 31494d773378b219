"""The client API over HTTP (PROTOCOL section 3). Only this package imports quart."""
