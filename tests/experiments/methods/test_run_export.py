"""``hora export``'s functions (hora.experiments.methods.run_export): a trained HoRA run folder to a PEFT LoRA adapter
with hora_export.json beside it. The command-line runs of ``hora export`` are in tests/cli/test_commands.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hora.experiments.errors import HoraError
from hora.experiments.methods import build
from hora.experiments.methods.run_export import EXPORT_INFO, export_run, label_maps
from hora.experiments.training.train_config import TrainConfig


def test_label_maps_have_string_ids_like_a_transformers_config():
    assert label_maps(["neg", "pos"]) == {"id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1}}
    assert label_maps([3, 7, 1]) == {"id2label": {"0": "3", "1": "7", "2": "1"},
                                     "label2id": {"3": 0, "7": 1, "1": 2}}  # label values named as strings
    assert label_maps([]) == {"id2label": {}, "label2id": {}}


@pytest.fixture
def hora_run(tiny_bert, tiny_csv, tmp_path):
    """A ``hora train`` folder: HoRA on the tiny BERT, 3 steps."""
    from hora.experiments.training import train as train_mod

    out = tmp_path / "run"
    train_mod.train(TrainConfig(model=str(tiny_bert), data=str(tiny_csv), text_columns="review",
                                label_column="sentiment", steps=3, batch_size=8, max_length=16, output=str(out),
                                progress=False))
    return out


def test_export_run_writes_a_lora_adapter_loadable_as_its_docstring_says(hora_run, tiny_bert, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out_dir = tmp_path / "lora"
    diff = export_run(hora_run, out_dir)
    assert diff is not None and diff < 1e-4
    assert sorted(p.name for p in out_dir.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                         EXPORT_INFO]
    assert json.loads((out_dir / "adapter_config.json").read_text())["peft_type"] == "LORA"
    info = json.loads((out_dir / EXPORT_INFO).read_text())
    assert info == {"source_adapter": str(hora_run.resolve()), "method": "hora", "base_model": str(tiny_bert),
                    "base_model_name": tiny_bert.name, "revision": None, "regression": False, "kind": "text",
                    "objective": "classify", "task": "reviews", "label_names": ["neg", "pos"],
                    "id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1},
                    "max_logit_difference": diff}

    # the loading recipe of the module docstring gives the trained HoRA model's logits
    base = AutoModelForSequenceClassification.from_pretrained(
        info["base_model"], id2label={int(i): n for i, n in info["id2label"].items()}, label2id=info["label2id"])
    lora = PeftModel.from_pretrained(base, out_dir).eval()
    trained, _ = build.load_trained(hora_run)
    batch = dict(AutoTokenizer.from_pretrained(tiny_bert)(["good film", "dull plot and weak acting"], padding=True,
                                                          return_tensors="pt"))
    with torch.no_grad():
        expected = trained.eval()(**batch).logits
        torch.testing.assert_close(lora(**batch).logits, expected, atol=1e-5, rtol=0)
        with lora.disable_adapter():
            assert float((lora(**batch).logits - expected).abs().max()) > 1e-3  # the adapter was trained


OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def test_the_documented_label_recipe_works_with_a_pipeline(hora_run, tmp_path, monkeypatch):
    """docs/operations.md's loading code, run as written on an export in ./my-lora: pipeline() names the
    run's labels and agrees with the trained HoRA model."""
    import torch

    export_run(hora_run, tmp_path / "my-lora")
    section = OPERATIONS.read_text().split("## Exported adapters and their labels")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "operations_recipe"}
    exec(compile(code, "docs/operations.md", "exec"), scope)
    assert scope["model"].config.id2label == {0: "neg", 1: "pos"}
    trained, _ = build.load_trained(hora_run)
    texts = ["a fine, moving film", "dull plot and weak acting", "great story"]
    batch = dict(scope["classify"].tokenizer(texts, padding=True, return_tensors="pt"))
    with torch.no_grad():
        probs = trained.eval()(**batch).logits.softmax(-1)
    for text, got, p in zip(texts, scope["classify"](texts), probs, strict=True):
        assert got["label"] == ["neg", "pos"][int(p.argmax())], text
        assert got["score"] == pytest.approx(float(p.max()), abs=1e-5)


def test_export_run_without_check_records_no_difference(hora_run, tmp_path):
    assert export_run(hora_run, tmp_path / "lora", check=False) is None
    info = json.loads((tmp_path / "lora" / EXPORT_INFO).read_text())
    assert info["max_logit_difference"] is None and info["label_names"] == ["neg", "pos"]


def test_export_run_checks_the_paths_before_loading_anything(tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("the run was read before the paths were checked")

    monkeypatch.setattr(build, "read_run", no_work)
    monkeypatch.setattr(build, "load_trained", no_work)
    with pytest.raises(HoraError, match="adapter folder not found"):
        export_run(tmp_path / "missing", tmp_path / "lora")
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(HoraError, match="would overwrite the HoRA adapter"):
        export_run(run, run / "lora")
    assert not (tmp_path / "lora").exists() and not list(run.iterdir())


def test_a_run_on_a_hub_vit_with_rgb_images_exports_exactly(hub_cache, tmp_path):
    from conftest import write_images

    from hora.experiments.training import train as train_mod

    run = tmp_path / "vit-run"
    train_mod.train(TrainConfig(model="hora-test/tiny-vit", dataset=str(write_images(tmp_path / "colours")),
                                image_column="img", label_column="colour", steps=3, batch_size=8, output=str(run),
                                progress=False))
    assert export_run(run, tmp_path / "lora") < 1e-5  # probed with 3 x 8 x 8 images, as the model takes them
    info = json.loads((tmp_path / "lora" / EXPORT_INFO).read_text())
    assert info["base_model"] == "hora-test/tiny-vit" and info["label_names"] == ["red", "green", "blue"]
