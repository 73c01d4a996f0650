"""Persistence adapters: memory (default), files, SQLAlchemy (SQLite, PostgreSQL)."""
