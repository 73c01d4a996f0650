"""Code that must pass the type checker (see tests/test_types.py)."""
