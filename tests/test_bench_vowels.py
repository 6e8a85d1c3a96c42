"""benchmarks/bench_vowels.py's result files: rows merged per model, config and budget; earlier real-data scores
reused only when the file holds them. Slow: importing the script imports the CLI and every metric."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from tests.conftest import benchmark_script

pytestmark = pytest.mark.slow


@pytest.fixture
def bench(monkeypatch):
    return benchmark_script("bench_vowels", monkeypatch)


def row(config: str, budget: float, value: float) -> dict:
    return {"model": "rvae", "config": config, "budget_cpu_s": budget, "metrics": {"discriminative": {"value": value}}}


def test_rows_are_merged_per_model_config_and_budget(bench, tmp_path):
    path = str(tmp_path / "lb" / "vowels.json")
    bench.merge_row(path, row("configs/rvae/vowels.yaml", 120.0, 0.3))
    bench.merge_row(path, row("configs/rvae/vowels.yaml", 600.0, 0.2))
    bench.merge_row(path, row("configs/rvae/vowels.yaml", 600.0, 0.1))  # a rerun replaces its own row only
    rows = json.load(open(path))
    assert [(r["budget_cpu_s"], r["metrics"]["discriminative"]["value"]) for r in rows] == [(120.0, 0.3), (600.0, 0.1)]


def test_results_file_keeps_each_budget_and_real_scores_are_reused(bench, tmp_path, monkeypatch):
    path = str(tmp_path / "vowels.json")
    with open(path, "w") as f:  # a file of one earlier run
        json.dump({"budget_cpu_s": 120.0, "configs": {"rvae/vowels": {"metrics": {}}}}, f)
    real = {"real_half_vs_half": {"discriminative": 0.04, "std": 0.01}, "real_predictive": {"predictive": 0.06}}
    results = {"budget_cpu_s": 600.0, "command": "c", **real, "configs": {"rvae/vowels": {"metrics": {"a": 1}}}}
    bench.merge_results(path, results, "rvae/vowels")
    data = json.load(open(path))
    assert sorted(data["by_budget"]) == ["120.0", "600.0"]
    assert data["by_budget"]["600.0"]["configs"]["rvae/vowels"]["metrics"] == {"a": 1}
    args = SimpleNamespace(real_from=path, budget_cpu_s=600.0, pred_iterations=5000)
    reused: dict = {}
    monkeypatch.setattr(bench, "real_own_score", lambda *a: pytest.fail("computed instead of reused"))
    bench.real_scores(None, args, reused)
    assert reused["real_half_vs_half"]["discriminative"] == 0.04 and reused["real_predictive"]["predictive"] == 0.06
    computed: dict = {}
    monkeypatch.setattr(bench, "real_own_score", lambda *a: {"value": 0.5, "std": 0.0})
    bench.real_scores(None, SimpleNamespace(**{**vars(args), "budget_cpu_s": 120.0, "pred_iterations": 0}), computed)
    assert computed["real_half_vs_half"]["discriminative"] == 0.5  # the 120 entry holds no real scores: computed
