"""Helpers shared by the test modules (no tests here): `from support.<module> import ...`.

tests/ is on sys.path when pytest runs (its conftest.py has no package around it), so this
package is importable as `support`, next to `conftest`.
"""
