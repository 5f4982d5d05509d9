"""Sweep stores are continued only when asked, and only with the code that filled them.

One rule for the Python API and the CLI: a store that holds results is refused unless
``resume=True`` / ``--resume``. A store's manifest records the sha256 of the
measurement's source, so a measurement edited without a version bump is refused
instead of reusing results of the old code.
"""

import hashlib
import json
import re

import pytest

import gradspec.sweep as gs
from gradspec.cli.sweep import main as cli_main
from gradspec.sweep import store as _store

GRID = {"x": [1.0, 2.0, 3.0]}


def _plus_one(values, key):
    del key
    return {"y": values["x"] + 1.0}


def _plus_two(values, key):  # the "edited" measurement: same name, same version
    del key
    return {"y": values["x"] + 2.0}


def _register(fn, version=1):
    return gs.register("test_changing", fn, params={"x": 0.0}, version=version,
                       overwrite=True)


def _make_identical():
    """A fresh function object with the same source each call (a notebook cell rerun)."""
    def fn(values, key):
        del key
        return {"y": 2.0 * values["x"]}
    return fn


# -- resume: one rule for the API and the CLI ---------------------------------------------


def test_api_refuses_a_store_with_results_unless_resume(tmp_path):
    store = tmp_path / "s"
    first = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store)
    assert (first.computed, first.skipped) == (2, 0)
    before = (store / "records-p0.jsonl").read_bytes()
    with pytest.raises(ValueError, match=re.escape(f"store '{store}' already holds 2 "
                                                   "results; pass resume=True")):
        gs.sweep("mean_field", {"sigma_w": [0.5, 1.0, 1.5]}, store=store)
    assert (store / "records-p0.jsonl").read_bytes() == before  # nothing written
    again = gs.sweep("mean_field", {"sigma_w": [0.5, 1.0, 1.5]}, store=store, resume=True)
    assert (again.computed, again.skipped) == (1, 2)  # the result says what was reused
    assert len(again.records) == 3 and len(gs.load(store)) == 3
    # resume=True on a new store is just a sweep; an empty store (no results) needs none.
    fresh = gs.sweep("mean_field", {"sigma_w": [0.5]}, store=tmp_path / "new", resume=True)
    assert (fresh.computed, fresh.skipped) == (1, 0)
    (tmp_path / "empty").mkdir()
    assert gs.sweep("mean_field", {"sigma_w": [0.5]}, store=tmp_path / "empty").computed == 1


def test_cli_and_api_apply_the_same_rule_to_each_others_stores(tmp_path, capsys):
    store = tmp_path / "runs"
    config = tmp_path / "c.toml"
    config.write_text(f'store = "{store}"\nmeasurement = "mean_field"\n'
                      'grid.sigma_w = [0.5, 1.0]\n')
    gs.sweep("mean_field", {"sigma_w": [0.5]}, store=store)  # the API starts it
    assert cli_main([str(config)]) == 2
    err = capsys.readouterr().err
    assert "already holds 1 results; pass --resume" in err and str(store) in err
    assert cli_main([str(config), "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)[0]
    assert (summary["computed"], summary["skipped"]) == (1, 1)
    with pytest.raises(ValueError, match="already holds 2 results; pass resume=True"):
        gs.sweep("mean_field", {"sigma_w": [0.5, 1.0]}, store=store)  # the CLI's store


# -- a measurement's code is part of what a store holds -----------------------------------


def test_measurement_edited_without_version_bump_is_refused(tmp_path):
    store = tmp_path / "s"
    old = _register(_plus_one)
    assert [r["results"]["y"] for r in gs.sweep("test_changing", GRID, store=store).records] \
        == [2.0, 3.0, 4.0]
    new = _register(_plus_two)  # other code, same name and version
    assert new.version == old.version and new.source != old.source
    with pytest.raises(ValueError, match=(
            rf"'test_changing' changed since the store was written, without a version "
            rf"bump: its code's sha256 is now {new.source[:12]}, the store's results came "
            rf"from {old.source[:12]} \(both version 1\)")):
        gs.sweep("test_changing", GRID, store=store, resume=True)
    assert len(gs.load(store)) == 3  # nothing added
    # Without a store nothing is stale: the new code runs.
    assert [r["results"]["y"] for r in gs.sweep("test_changing", GRID).records] == \
        [3.0, 4.0, 5.0]
    # A version bump is a different sweep for this store; another store takes it.
    _register(_plus_two, version=2)
    with pytest.raises(ValueError, match=r"different sweep \(version"):
        gs.sweep("test_changing", GRID, store=store, resume=True)
    bumped = gs.sweep("test_changing", GRID, store=tmp_path / "v2")
    assert [r["results"]["y"] for r in bumped.records] == [3.0, 4.0, 5.0]


def test_documented_escape_for_an_edit_that_cannot_change_results(tmp_path):
    """The refusal says how to keep the results: set the manifest's source by hand."""
    store = tmp_path / "s"
    _register(_plus_one)
    gs.sweep("test_changing", GRID, store=store)
    new = _register(_plus_two)
    with pytest.raises(ValueError) as err:
        gs.sweep("test_changing", GRID, store=store, resume=True)
    assert str(store / _store.MANIFEST) in str(err.value) and new.source in str(err.value)
    manifest = json.loads((store / _store.MANIFEST).read_text())
    (store / _store.MANIFEST).write_text(json.dumps({**manifest, "source": new.source}))
    res = gs.sweep("test_changing", GRID, store=store, resume=True)
    assert (res.computed, res.skipped) == (0, 3)


def test_same_source_in_a_new_function_object_is_reused(tmp_path):
    """Re-registering unchanged code (a rerun notebook cell) is no change."""
    store = tmp_path / "s"
    first, second = _make_identical(), _make_identical()
    assert first is not second
    m1, m2 = _register(first), _register(second)
    assert m1.source == m2.source
    _register(first)
    gs.sweep("test_changing", GRID, store=store)
    _register(second)
    res = gs.sweep("test_changing", GRID, store=store, resume=True)
    assert (res.computed, res.skipped) == (0, 3)


def test_source_falls_back_to_name_and_version_without_source_text():
    namespace = {}
    exec("def made_by_exec(values, key):\n    return {'y': values['x']}\n", namespace)
    fn = namespace["made_by_exec"]
    fn.__module__ = "somewhere"
    for version in (1, 2):
        m = _register(fn, version=version)
        text = f"somewhere.made_by_exec:v{version}"
        assert m.source == hashlib.sha256(text.encode()).hexdigest()
    assert _register(_plus_one).source == hashlib.sha256(
        b"def _plus_one(values, key):\n    del key\n    return {\"y\": values[\"x\"] + 1.0}\n"
    ).hexdigest()


def test_store_without_a_recorded_source_is_refused(tmp_path):
    """A store from before sources were recorded cannot vouch for its code."""
    store = tmp_path / "s"
    gs.sweep("mean_field", {"sigma_w": [0.5]}, store=store)
    manifest = json.loads((store / _store.MANIFEST).read_text())
    del manifest["source"]
    (store / _store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="came from unrecorded code"):
        gs.sweep("mean_field", {"sigma_w": [0.5]}, store=store, resume=True)
