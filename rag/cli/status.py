"""The exit statuses of every command, in one place."""

EXIT_OK = 0  # done
EXIT_FAILED = 1  # some input skipped, or the operation failed (the message says which)
EXIT_USAGE = 2  # bad arguments or settings
EXIT_INTERRUPTED = 130  # Ctrl-C
