"""The HTML report's pieces on edge cases the pipeline can produce."""

from tunixrt.report.charts import line_chart
from tunixrt.report.page import _dataset


def test_an_empty_split_renders_as_a_dash() -> None:
    """dataset.split.val=0 is valid: its stats have no averages (was a TypeError)."""
    empty = {"steps": {"min": None, "avg": None, "max": None}, "chars": dict.fromkeys(
        ("min", "avg", "max"))}  # fmt: skip
    full = {"steps": {"min": 2, "avg": 2.5, "max": 3}, "chars": {"min": 9, "avg": 10.2, "max": 12},
            "by_category": {"addition": 4}}  # fmt: skip
    ds = {"dataset_key": "k-v1", "counts": {"total": 4, "train": 4, "val": 0, "test": 0},
          "stats": {"train": full, "val": empty, "test": empty}}  # fmt: skip
    html = _dataset(ds)
    assert '<td>val</td><td class="num">0</td><td>-</td><td>-</td>' in html
    assert "2 / 2.5 / 3" in html and "addition 4" in html


def test_charts_of_no_or_flat_data_do_not_fail() -> None:
    assert "no data" in line_chart({"loss": []}, title="loss", x_label="step", log_y=True)
    flat = line_chart({"lr": [(1, 0.5), (2, 0.5)]}, title="lr", x_label="step")
    assert flat.startswith("<svg") and "<polyline" in flat
    log = line_chart({"loss": [(1, 5.0), (2, 0.0), (3, 1e-3)]}, title="l", x_label="s", log_y=True)
    assert "<polyline" in log  # a zero is left out of a log scale, not a math error
