"""Work done inside the sandbox, on trees the package could have written (see farm_runner/__init__.py)."""
