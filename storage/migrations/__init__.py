"""Alembic's script directory for the operational database (env.py, versions/)."""
