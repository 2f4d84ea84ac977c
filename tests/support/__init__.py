"""Helpers shared by the tests of every folder, importable as `support` under pytest.

pytest's default import mode (prepend) puts tests/ on sys.path when it loads the rootdir's
tests/conftest.py (tests/ has no __init__.py), as it does for the packages tests/providers and
tests/simulator; nothing here changes sys.path. Fixtures live in the conftest files; this
package holds the plain functions they and the test modules call:

- `support.projects`: temporary projects (`make_project`, `chain_storyboard`,
  `clone_project`) run through the real CLI in-process (`cli`, `run_json`, `PREVIEW`);
- `support.scripts`: `load_script`, a script that is no module of any package (bench/*.py)
  loaded from its file.
"""
