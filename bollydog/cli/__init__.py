"""The ``bollydog`` command line: execute, service, shell, ls, deadletters."""
