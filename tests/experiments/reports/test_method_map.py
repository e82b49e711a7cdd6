"""The method map: cells are report.py's paired differences per source, the table and the forest plot follow
the manifest, and a bad manifest is a one-line error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hora.experiments.errors import HoraError
from hora.experiments.reports import method_map

REPO = Path(__file__).resolve().parents[3]

# test accuracy per seed at the lr that validation picks (0.001); at lr 0.01 validation is poor and test is high,
# so a cell that used test accuracy, or both lrs, would come out different
ACCURACY = {"lora": [0.70, 0.72, 0.74], "hora": [0.71, 0.72, 0.76], "hora-far": [0.60, 0.61, 0.65]}
PARAMS = {"lora": 100, "hora": 110, "hora-far": 80}
SHARE = {"lora": float("nan"), "hora": 0.001, "hora-far": 1.0}


def _runs(methods: list[str], fraction: float) -> pd.DataFrame:
    rows = []
    for method in methods:
        for seed, acc in enumerate(ACCURACY[method]):
            for lr, test, val in ((0.001, acc, acc + 0.01), (0.01, 0.99, 0.5)):
                rows.append(dict(method=method, fraction=fraction, seed=seed, lr=lr, accuracy=test, val_accuracy=val,
                                 trainable_params=PARAMS[method], diag_generator_share=SHARE[method]))
    return pd.DataFrame(rows)


def _manifest(tmp_path: Path, sources: list[dict]) -> Path:
    forms = [{"method": "hora", "label": "default"}, {"method": "hora-far", "label": "far form"}]
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"forms": forms, "sources": sources}))
    return path


@pytest.fixture
def two_sources(tmp_path) -> Path:
    _runs(["lora", "hora", "hora-far"], 0.02).to_csv(tmp_path / "text.csv", index=False)
    _runs(["lora", "hora"], 0.1).to_csv(tmp_path / "vision.csv", index=False)
    return _manifest(tmp_path, [
        {"setting": "text", "model": "M", "files": ["text.csv"], "methods": ["hora", "hora-far"], "study": "s1"},
        {"setting": "vision", "model": "V", "files": ["vision.csv"], "methods": ["hora"], "study": "s2"}])


def test_cells_are_paired_differences_at_the_lr_chosen_on_validation(two_sources):
    cells = method_map.map_cells(method_map.load_manifest(two_sources))
    assert list(zip(cells["method"], cells["setting"], strict=True)) == [
        ("hora", "text"), ("hora", "vision"), ("hora-far", "text")]  # form order, then setting order
    far = cells[cells["method"] == "hora-far"].iloc[0]
    diffs = 100 * (np.array(ACCURACY["hora-far"]) - np.array(ACCURACY["lora"]))
    half = 4.302653 * diffs.std(ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert far["n_pairs"] == 3
    assert far["diff"] == pytest.approx(diffs.mean())
    assert (far["low"], far["high"]) == (pytest.approx(diffs.mean() - half, abs=1e-4),
                                         pytest.approx(diffs.mean() + half, abs=1e-4))
    assert far["params_ratio"] == pytest.approx(0.8)
    assert far["generator_share"] == pytest.approx(1.0)


def test_table_has_one_row_per_form_and_one_column_per_setting_and_fraction(two_sources):
    manifest = method_map.load_manifest(two_sources)
    table = method_map.table_markdown(manifest, method_map.map_cells(manifest))
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0] == "| form | params / LoRA | generator share | text 2 % | vision 10 % |"
    hora_row, far_row = lines[1], lines[2]
    assert hora_row.startswith("| default (`hora`) | 1.10 | 0.001 | +1.00 [")
    # the far form's interval excludes 0: bold; it was not run on vision: an empty cell
    assert far_row.startswith("| far form (`hora-far`) | 0.80 | 1 | **-10.00 [") and far_row.endswith("(3)** |  |")


@pytest.mark.parametrize(("share", "expected"), [([0.0011, 0.00066], "0.00066–0.0011"), ([1.0, 1.0], "1"),
                                                 ([0.0], "0"), ([float("nan")], "–")])
def test_share_is_one_value_or_a_range(share, expected):
    assert method_map.format_share(pd.Series(share)) == expected


def test_params_are_given_per_model_when_models_differ():
    cells = pd.DataFrame({"model": ["MiniLM", "MiniLM", "ViT"], "params_ratio": [0.81, 0.81, 1.41]})
    assert method_map.format_params(cells) == "0.81 MiniLM · 1.41 ViT"
    assert method_map.format_params(cells.iloc[:2]) == "0.81"


def test_one_pair_has_no_interval():
    assert method_map.format_interval(-1.5, float("nan"), float("nan"), 1) == "-1.50 (1 pair)"


def test_write_map_writes_the_table_and_a_png(two_sources, tmp_path):
    written = method_map.write_map(two_sources, tmp_path / "out")
    assert written["figure"].read_bytes()[:4] == b"\x89PNG"
    assert "| far form (`hora-far`) |" in written["table"].read_text()


def test_a_cell_from_two_sources_is_an_error(tmp_path):
    _runs(["lora", "hora"], 0.02).to_csv(tmp_path / "a.csv", index=False)
    _runs(["lora", "hora"], 0.02).to_csv(tmp_path / "b.csv", index=False)
    path = _manifest(tmp_path, [{"setting": "text", "model": "M", "files": [f], "methods": ["hora"], "study": "s"}
                                for f in ("a.csv", "b.csv")])
    with pytest.raises(HoraError, match="'hora' on text at fraction 0.02 comes from more than one source"):
        method_map.map_cells(method_map.load_manifest(path))


@pytest.mark.parametrize(("source", "message"), [
    ({"setting": "t", "model": "M", "files": ["runs.csv"], "methods": ["dora"], "study": "s"},
     "names method\\(s\\) dora that no form lists"),
    ({"setting": "t", "model": "M", "files": ["runs.csv"], "methods": ["hora"]}, "lacks 'study'"),
    ({"setting": "t", "model": "M", "files": ["runs.csv"], "methods": ["hora-far"], "study": "s"},
     "hold no run of 'hora-far'"),
    ({"setting": "t", "model": "M", "files": ["nolora.csv"], "methods": ["hora"], "study": "s"},
     "no 'lora' run of the same seed to pair with"),
    ({"setting": "t", "model": "M", "files": ["missing.csv"], "methods": ["hora"], "study": "s"},
     "results table not found"),
])
def test_bad_sources_are_one_line_errors(tmp_path, source, message):
    _runs(["lora", "hora"], 0.02).to_csv(tmp_path / "runs.csv", index=False)
    _runs(["hora"], 0.02).to_csv(tmp_path / "nolora.csv", index=False)
    with pytest.raises(HoraError, match=message):
        method_map.map_cells(method_map.load_manifest(_manifest(tmp_path, [source])))


def test_a_missing_or_broken_manifest_is_an_error(tmp_path):
    with pytest.raises(HoraError, match="manifest not found"):
        method_map.load_manifest(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(HoraError, match="is not valid JSON"):
        method_map.load_manifest(tmp_path / "bad.json")


def test_the_shipped_manifest_reproduces_the_committed_table(tmp_path):
    """docs/method_map.md is what `hora map` makes from docs/results/method_map.json and the committed CSVs,
    and the README and docs/results.md show that table as it is."""
    written = method_map.write_map(REPO / "docs" / "results" / "method_map.json", tmp_path)
    table = written["table"].read_text()
    assert table == (REPO / "docs" / method_map.TABLE_NAME).read_text()
    rows = "\n".join(line for line in table.splitlines() if line.startswith("|"))
    for page in ("README.md", "docs/results.md"):
        assert rows in (REPO / page).read_text(), f"{page}'s method map differs from `hora map`'s; paste it again"
