"""The pure core: data shapes and step rules. No I/O is imported here."""
