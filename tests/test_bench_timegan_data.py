"""benchmarks/bench_timegan_data.py --leaderboard: the runs of one model, config and budget become one row; metrics
of one training seed are joined, several seeds give their mean and standard deviation."""

from __future__ import annotations

import json

import pytest

from tests.conftest import benchmark_script


@pytest.fixture
def bench(monkeypatch):
    return benchmark_script("bench_timegan_data", monkeypatch)


def result(seed, metrics, budget=900.0, repeats=10, model="rvae", command=None):
    return {"model": model, "config": [f"configs/{model}/energy.yaml"], "cli_args": [], "dataset": "energy",
            "budget_cpu_s": budget, "seeds": 1, "repeats": repeats, "commit": "abc1234",
            "command": command or f"python benchmarks/bench_timegan_data.py --seed {seed} --repeats {repeats}",
            "metrics": {m: {"value": v, "spread": 0.01} for m, v in metrics.items()}}  # fmt: skip


def test_seeds_are_averaged_and_metrics_of_one_seed_joined(bench, tmp_path):
    files = []
    for i, r in enumerate([
        result(0, {"discriminative": 0.10, "predictive": 0.25}),
        result(0, {"context_fid": 0.05, "discriminative": 0.90}, repeats=1),  # fewer repeats: its disc. not taken
        result(1, {"discriminative": 0.20, "predictive": 0.27}),
        result(2, {"discriminative": 0.30, "predictive": 0.26}),
        result(0, {"discriminative": 0.40}, budget=480.0),
        {"model": "real data", "dataset": "energy", "budget_cpu_s": None, "command": "c", "commit": "x",
         "metrics": {"discriminative": {"value": 0.002}}},
    ]):  # fmt: skip
        files.append(str(tmp_path / f"{i}.json"))
        with open(files[-1], "w") as f:
            json.dump(r, f)
    out = tmp_path / "board.json"
    assert bench.main(["--leaderboard", str(out), *files]) == 0
    rows = {r["budget_cpu_s"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {900.0, 480.0}
    full = rows[900.0]
    assert full["seeds"] == 3 and full["spread_over"] == "training seeds"
    assert full["metrics"]["discriminative"]["value"] == pytest.approx(0.20)
    assert full["metrics"]["discriminative"]["spread"] == pytest.approx(0.10)  # std over seeds, ddof 1
    assert full["per_seed"]["discriminative"] == {"0": 0.10, "1": 0.20, "2": 0.30}
    assert full["metrics"]["context_fid"] == {"value": 0.05, "spread": 0.01}  # one seed: its repeats' spread
    assert full["real_data"] == {"discriminative": 0.002}
    assert "--seed 0" in full["command"] and "--seed 2" in full["command"]
    assert rows[480.0]["seeds"] == 1 and rows[480.0]["spread_over"] == "metric repeats"


def test_the_seed_of_an_older_file_comes_from_its_command(bench):
    assert bench._seed({"command": "python b.py --seed 2 --out x"}) == 2
    assert bench._seed({"command": "python b.py --seed=3"}) == 3
    assert bench._seed({"command": "python b.py"}) == 0
    assert bench._seed({"seed": 4, "command": "--seed 1"}) == 4
