"""The generated leaderboard: result files render into tables, and the shipped tables are up to date."""

import json

import pytest

from tests.conftest import benchmark_script


def _leaderboard():
    return benchmark_script("leaderboard")


ROW = {
    "model": "R-VAE-GAN",
    "config": "configs/rvae_gan/stocks.yaml",
    "dataset": "stocks",
    "budget_cpu_s": 300,
    "metrics": {"discriminative": {"value": 0.051, "spread": 0.012}, "predictive": {"value": 0.038}},
    "real_data": {"discriminative": 0.019, "predictive": 0.036},
    "seeds": 1,
    "command": "python benchmarks/bench_x.py --config configs/rvae_gan/stocks.yaml",
    "commit": "abc1234",
}


def test_shipped_tables_are_up_to_date():
    assert _leaderboard().main(["--check"]) == 0, "run `python benchmarks/leaderboard.py` and commit the tables"


def test_rows_render_with_the_real_data_score_beside_each_metric(tmp_path):
    lb = _leaderboard()
    (tmp_path / "run.json").write_text(json.dumps([ROW]))
    rows = lb.load_rows(str(tmp_path))
    full, short = lb.render_full(rows), lb.render_short(rows)
    assert "### stocks" in full and "0.051 ± 0.012 (0.019)" in full and "5 CPU-min" in full
    assert ROW["command"] in full and "abc1234" in full
    assert "discriminative 0.051 ± 0.012 (0.019)" in short and "predictive 0.038 (0.036)" in short


def test_the_front_page_keeps_the_longest_budget_of_each_config(tmp_path):
    lb = _leaderboard()
    longer = {**ROW, "budget_cpu_s": 900, "metrics": {"discriminative": {"value": 0.031}}}
    (tmp_path / "run.json").write_text(json.dumps([longer, ROW]))
    rows = lb.load_rows(str(tmp_path))
    short, full = lb.render_short(rows), lb.render_full(rows)
    assert "| 15 CPU-min |" in short and "| 5 CPU-min |" not in short and "0.031" in short and "0.051" not in short
    assert "0.031" in full and "0.051" in full  # the full table keeps both budgets


def test_bad_result_files_and_missing_markers_are_named(tmp_path):
    lb = _leaderboard()
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(lb.LeaderboardError, match="broken.json"):
        lb.load_rows(str(tmp_path))
    (tmp_path / "broken.json").write_text(json.dumps([{"model": "GAN"}]))
    with pytest.raises(lb.LeaderboardError, match=r"broken.json, row 0: missing \['config'"):
        lb.load_rows(str(tmp_path))
    with pytest.raises(lb.LeaderboardError, match="no <a> ... <b> pair"):
        lb.splice("text without markers", "<a>", "<b>", "body", "README.md")
    assert lb.splice("x <a>\nold\n<b> y", "<a>", "<b>", "new", "R") == "x <a>\nnew\n<b> y"
