"""Hot reload: handler code swapped inside the running process (:mod:`bollydog.reload.swap`),
files watched with ``watchfiles`` (:mod:`bollydog.reload.watch`), and a supervisor for the
changes a swap cannot carry (:mod:`bollydog.reload.supervisor`). See ``docs/reload.md``."""
