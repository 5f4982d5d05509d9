"""verify: prediction vs training, and its agreement rule."""

import json

import pytest

from gradspec import cli
from gradspec.training import TrainConfig, format_table, verify
from gradspec.training.verify import _check


@pytest.mark.parametrize(
    "pred, observed, outcome, agree",
    [
        ("vanishing", "vanishing", "stalled", True),
        ("vanishing", "vanishing", "solved", False),
        ("exploding", "exploding", "diverged", True),
        ("exploding", "vanishing", "stalled", False),
        ("critical", "critical", "solved", True),
        ("critical", "critical", "diverged", False),
    ],
)
def test_agreement_rule(pred, observed, outcome, agree):
    ok, note = _check(pred, observed, outcome)
    assert ok is agree and (note == "") is agree


def test_verify_rows_on_a_tiny_grid():
    common = dict(task="adding", T=30, hidden=32, steps=5, batch=8)
    # Gain 5, not 3: at N = 32 over T = 30 a gain-3 draw measures +0.11 +- 0.02 from
    # h0 = 0, a factor ~25 over the horizon, on the critical band's edge (F = 10).
    rows = verify([TrainConfig(init="gaussian", gain=0.3, **common),
                   TrainConfig(init="gaussian", gain=5.0, **common)])
    assert [r["predicted_regime"] for r in rows] == ["vanishing", "exploding"]
    # The rate the training run observed at init agrees with the prediction's sign and,
    # for the strongly contracting case, its size (mean field at N = 32: within 0.15).
    assert rows[0]["observed_rate"] < 0 < rows[1]["observed_rate"]
    assert rows[0]["observed_rate"] == pytest.approx(rows[0]["predicted_lambda"], abs=0.15)
    json.dumps(rows, allow_nan=False)  # plain data
    table = format_table(rows)
    assert "gaussian(0.3)" in table and "vanishing" in table


def test_verify_rejects_non_configs():
    with pytest.raises(TypeError, match="grid\\[0\\]"):
        verify([{"cell": "rnn"}])


@pytest.mark.slow
def test_cli_verify_json(capsys):
    assert cli.main(["verify", "--T", "20", "--steps", "3", "--hidden", "16", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and {r["outcome"] for r in rows} <= {"solved", "stalled", "diverged"}


@pytest.mark.slow
def test_quick_study_and_config_file(tmp_path):
    from gradspec.training import read_grid, study_grid

    full = study_grid()
    assert len(full) >= 24 and len({c.task for c in full}) == 4
    assert len({(c.task, c.spec.length, dict(c.task_options).get("permuted")) for c in full}) == 8
    rows = verify(study_grid(quick=True))
    assert len(rows) == 3 and all(r["observed_regime"] in ("vanishing", "critical", "exploding")
                                  for r in rows)
    for r in rows:  # the network's own exponent and the reported one: the same contract
        assert abs(r["predicted_lambda"] - r["network_lambda"]) <= 2 * r["uncertainty"] + 3e-3
    text = format_table(rows)
    assert "agreement:" in text and "network" in text
    path = tmp_path / "grid.toml"
    path.write_text('[defaults]\nhidden = 8\nsteps = 5\n\n[[config]]\ninit = "identity"\n\n'
                    '[[config]]\ncell = "gru"\ninit = "default"\nT = 7\n')
    grid = read_grid(path)
    assert [(c.cell, c.hidden, c.T) for c in grid] == [("rnn", 8, 50), ("gru", 8, 7)]
    path.write_text('[[config]]\nhidden = -1\n')
    with pytest.raises(ValueError, match="number 1.*hidden"):
        read_grid(path)
