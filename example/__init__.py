"""The bollydog example: hub introspection (the seed's TaskCount/TaskList) and a small shop."""
