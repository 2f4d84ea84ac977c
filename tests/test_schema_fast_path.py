"""The fast schema check of big storyboards (validate.py: fastjsonschema first, jsonschema for
the errors) never calls valid what jsonschema refuses: both verdicts on every storyboard of the
test corpus, the examples, and storyboards mutated at random (hypothesis)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kling_compose.validate import FAST_CHECK_VALUES, _fast_check, _validator, schema_errors

TESTS = Path(__file__).parent
CORPUS = sorted([*TESTS.glob("cases/**/storyboard.yaml"),
                 *(TESTS.parent / "examples").glob("**/storyboard.yaml")])


def _load(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, LookupError, TypeError):
        # a YAML error case (PyYAML's own constructors raise KeyError, IndexError, TypeError
        # on hostile tags, which parse.py turns into located errors): never reaches the schema
        return None


def _agree(data) -> None:
    slow_valid = not list(_validator().iter_errors(data))
    if _fast_check(data):
        assert slow_valid, "fastjsonschema called valid what jsonschema refuses"
    elif slow_valid:
        pytest.fail("fastjsonschema refused what jsonschema accepts (allowed only for `$` "
                    "before a trailing newline in a pattern): " + repr(data)[:300])


@pytest.mark.parametrize("path", CORPUS, ids=[str(p.relative_to(TESTS.parent)) for p in CORPUS])
def test_both_checks_agree_on_the_corpus(path):
    data = _load(path)
    if data is not None and "{{" not in path.read_text() and "{%" not in path.read_text():
        _agree(data)


BASE = _load(TESTS / "cases" / "golden" / "runware-o3-pro-flooded-opera" / "storyboard.yaml")
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3000), st.floats(-2, 20),
                   st.text(max_size=12), st.lists(st.integers(0, 3), max_size=3),
                   st.dictionaries(st.sampled_from(["from", "frame", "x", "crossfade"]),
                                   st.text(max_size=6), max_size=2))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


PATHS = [p for p in _paths(BASE) if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3))
def test_both_checks_agree_on_mutated_storyboards(edits):
    data = copy.deepcopy(BASE)
    for path, value in edits:
        node = data
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    _agree(data)


def test_big_documents_take_the_fast_path_and_small_ones_do_not(monkeypatch):
    calls = []
    monkeypatch.setattr("kling_compose.validate._fast_check",
                        lambda data: calls.append(1) or True)
    assert schema_errors(BASE, FAST_CHECK_VALUES) == [] and calls == [1]
    bad = {**BASE, "version": 2}
    assert schema_errors(bad, FAST_CHECK_VALUES - 1) != [] and calls == [1]
