"""Subcommands of ``wcr`` beyond ``spec``/``run``: each module here defines ``COMMANDS``, a list of
``(name, help, add_arguments, run)`` rows exactly like :data:`suite.cli.COMMANDS`; the CLI collects them
all, in module-name order.  ``run(args) -> int`` may raise :class:`suite.cli.UsageError` for bad input
(one line on stderr, exit 2)."""
