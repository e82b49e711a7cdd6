"""What a finished run leaves (hora.experiments.training.outputs): the adapter diagnostics raise what they do not
expect (a failing optional step during a run: tests/experiments/training/test_train.py)."""

from __future__ import annotations

import pytest

from hora.experiments.training import outputs


def test_diagnostics_errors_other_than_the_expected_ones_are_raised(tiny_bert):
    import peft
    from transformers import AutoModelForSequenceClassification

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["query"], task_type="SEQ_CLS"))
    assert set(outputs.adapter_diagnostics(lora, "lora")) == {"diag_stable_rank", "diag_head_shared_energy"}
    with pytest.raises(TypeError, match="Expected a HoRA PeftModel"):
        outputs.adapter_diagnostics(lora, "hora")
