"""Update norms of the first steps, per parameter group, on a tiny random BERT."""

from __future__ import annotations

import json

from hora.experiments.training import dynamics
from hora.experiments.training.train import TrainConfig


def test_group_names_cover_every_adapter_parameter():
    assert dynamics.group_of("base_model.hora_bank.default.head_out.q") == "output W2B"
    assert dynamics.group_of("base_model.hora_bank.default.output_heads.v") == "output W2"
    assert dynamics.group_of("base_model.hora_bank.default.seeds.q") == "seeds S"
    assert dynamics.group_of("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.default.weight") \
        == "LoRA A"
    assert dynamics.group_of("base_model.model.bert.encoder.layer.0.attention.self.query.hora_A.default") \
        == "free factor"
    assert dynamics.group_of("base_model.model.classifier.modules_to_save.default.weight") is None


def test_records_every_group_at_every_step_and_plots(tiny_bert, tiny_csv, tmp_path):
    base = TrainConfig(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                       steps=4, batch_size=8, max_length=16, warmup_ratio=0.0, progress=False, lr=1e-2)
    plot = dynamics.run(["hora-jointgen", "hora", "lora"], base, tmp_path / "dyn")
    assert plot.is_file() and plot.stat().st_size > 0
    results = json.loads((tmp_path / "dyn" / "dynamics.json").read_text())
    joint, residual, lora = (results[m]["norms"] for m in ("hora-jointgen", "hora", "lora"))
    assert {"seeds B_h", "free seed Abar", "body W1B", "output W2B", "body W1A", "output W2A",
            "factor A", "factor B"} <= set(joint)
    assert {"LoRA A", "LoRA B", "factor A", "factor B"} <= set(lora) and dynamics.SHARE not in lora
    assert joint[dynamics.SHARE] == [1.0] * 4 and max(residual[dynamics.SHARE]) < 0.5
    assert all(len(values) == 4 for values in (*joint.values(), *lora.values(), *residual.values()))
    # the joint form: W2B moves at step 1 and the head seeds and body from step 2 on (they sit behind W2B = 0);
    # the residual default: seeds and W2 both start at zero, so W2's first gradient is exactly zero
    assert joint["output W2B"][0] > 0 and joint["seeds B_h"][0] == 0 and joint["seeds B_h"][1] > 0
    assert joint["factor B"][0] > 0 and lora["factor B"][0] > 0
    assert residual["output W2"][0] == 0 and residual["seeds S"][0] > 0
    summary = dynamics.summary(tmp_path / "dyn" / "dynamics.json")
    assert set(summary) == {"hora-jointgen", "hora", "lora"}
