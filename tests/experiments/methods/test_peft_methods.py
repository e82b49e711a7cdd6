"""Every PEFT method the harness accepts, on tiny models: built from PEFT's config class on HoRA's modules with the
head trained, refusals as one line, a config folder as a method named after it, and a small grid that reports all."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from hora.experiments.errors import HoraError
from hora.experiments.grid import sweep
from hora.experiments.methods import build, peft_methods
from hora.experiments.training.train import TrainConfig

# PEFT defaults that do not fit a 32-wide model (they fit MiniLM's 384 or Llama's 3072 where PEFT says so):
# these methods are built from a config file with smaller settings instead of by name
TINY_SETTINGS = {"c3a": {"block_size": 8}, "road": {"group_size": 8},
                 "vblora": {"vector_length": 8, "num_vectors": 16}, "waveft": {"n_frequency": 64}}


def _bert(folder):
    """The tiny BERT of the ``tiny_bert`` fixture with a fresh two-class head, seeded."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)


def _config_file(folder, name: str, **settings):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": name.upper(), **settings}))
    return folder


@pytest.mark.parametrize("name", list(peft_methods.supported()))
def test_every_supported_peft_method_adapts_hora_targets_and_trains_the_head(name, tiny_bert, tmp_path):
    model = _bert(tiny_bert)
    method = str(_config_file(tmp_path / name, name, **TINY_SETTINGS[name])) if name in TINY_SETTINGS else name
    peft_model, info = build.build_adapted_model(method, model, r=4, alpha=8.0, head_modules=["classifier"],
                                                   total_steps=10)
    adapted = sorted(n.removeprefix("base_model.model.") for n, m in peft_model.named_modules()
                     if isinstance(m, BaseTunerLayer) and not n.split(".")[-1].startswith(("lora_", name)))
    assert set(info["targets"]) <= set(adapted)
    assert all(any(n.startswith(t) for t in info["targets"]) for n in adapted)  # nothing but HoRA's modules
    assert info["targets"] == build.attention_targets(_bert(tiny_bert))
    head = [p for n, p in peft_model.named_parameters() if "classifier" in n and "modules_to_save" in n]
    assert head and all(p.requires_grad for p in head)
    out = peft_model(input_ids=torch.randint(0, model.config.vocab_size, (2, 6)), labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in peft_model.named_parameters()
               if p.requires_grad and "classifier" not in n)
    peft_model.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "adapter_config.json").read_text())["peft_type"] == name.upper()


def test_rank_alpha_and_dropout_go_where_the_config_has_them():
    from peft import AdaLoraConfig, IA3Config, LoHaConfig, OFTConfig

    assert peft_methods.mapped_settings(LoHaConfig, r=4, alpha=8.0, dropout=0.1) == {"r": 4, "alpha": 8.0}
    assert peft_methods.mapped_settings(IA3Config, r=4, alpha=8.0, dropout=0.1) == {}
    assert peft_methods.mapped_settings(AdaLoraConfig, r=4, alpha=8.0, dropout=0.1) == {
        "target_r": 4, "init_r": 6, "lora_alpha": 8.0, "lora_dropout": 0.1}
    assert peft_methods.mapped_settings(OFTConfig, r=4, alpha=8.0, dropout=0.0) == {"r": 4, "oft_block_size": 0}
    assert peft_methods.describe("loha", LoHaConfig) == "LoHaConfig: takes r, alpha; ignores dropout"
    assert "PEFT's defaults only; ignores r, alpha, dropout" in peft_methods.describe("ia3", IA3Config)


@pytest.mark.parametrize(("method", "message"), [
    ("prompt_tuning", "prompt-learning"), ("ln_tuning", "LayerNorms"), ("shadow", "ShadowCarrier"),
    ("fourierftt", "did you mean 'fourierft'"), ("no/such/folder", "no PEFT adapter config"),
])
def test_a_method_that_cannot_work_is_one_line(method, message):
    with pytest.raises(HoraError, match=message) as error:
        TrainConfig(method=method)
    assert "\n" not in str(error.value)


def test_a_config_file_without_peft_type_or_adalora_with_epochs_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"r": 4}))
    with pytest.raises(HoraError, match="no peft_type"):
        TrainConfig(method=str(bad))
    with pytest.raises(HoraError, match="needs --steps"):
        TrainConfig(method="adalora", epochs=1.0, steps=None)


def test_a_shape_peft_refuses_is_one_line(tiny_bert):
    with pytest.raises(HoraError, match="vector_length"):
        build.build_adapted_model("vblora", _bert(tiny_bert), r=4, head_modules=["classifier"])


def test_a_small_grid_of_peft_methods_and_a_config_folder_reports_every_one(tiny_bert, tiny_csv, tmp_path):
    folder = _config_file(tmp_path / "experiments" / "loha" / "my-loha-r2", "loha", r=2, alpha=4,
                          target_modules=["nothing_here"])  # the run's targets replace the file's
    base = TrainConfig(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                       steps=2, batch_size=8, max_length=16, progress=False)
    grid = ["lora", "loha", "lokr", "ia3", "hra", "adalora", str(folder)]
    df = sweep.run_compare(base, grid, [0.5], [0], tmp_path / "cmp", progress=False)
    table = pd.read_csv(tmp_path / "cmp" / "results.csv")
    names = ["lora", "loha", "lokr", "ia3", "hra", "adalora", "my-loha-r2"]
    assert sorted(df["method"]) == sorted(table["method"]) == sorted(names)
    params = table.set_index("method")["trainable_params"]
    assert params["my-loha-r2"] < params["loha"]  # rank 2 from the file, not the run's 8
    assert (tmp_path / "cmp" / "runs" / "my-loha-r2_f0.5_lr0.001_s0" / "metrics.json").is_file()
    summary = (tmp_path / "cmp" / "summary.md").read_text()
    assert all(name in summary for name in names)


def test_a_peft_experiment_folder_loads_as_it_is_with_the_runs_modules(tiny_bert, tmp_path):
    folder = _config_file(tmp_path / "ia3" / "llama-3.2-3B-all-attn", "ia3", target_modules=["k_proj", "v_proj",
                          "down_proj"], feedforward_modules=["down_proj"], init_ia3_weights=True)  # as PEFT's file
    peft_model, info = build.build_adapted_model(str(folder), _bert(tiny_bert), head_modules=["classifier"])
    assert build.method_label(str(folder)) == "llama-3.2-3B-all-attn"
    assert sorted(peft_model.peft_config["default"].target_modules) == sorted(info["targets"])
    assert not peft_model.peft_config["default"].feedforward_modules
