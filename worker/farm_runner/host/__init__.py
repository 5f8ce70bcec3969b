"""The supervisor: trusted code on the worker (see farm_runner/__init__.py)."""
