"""The ``labelstack`` command: each subcommand lives in its own module and registers itself here."""
