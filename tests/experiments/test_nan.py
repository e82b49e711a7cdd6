"""A NaN/inf training loss stops ``hora train`` with one line naming the step; the last good checkpoint
stays, and nothing else is written."""

from __future__ import annotations

from safetensors.torch import load_file
from typer.testing import CliRunner

from hora.cli import app

runner = CliRunner()


def _args(tiny_bert, tiny_csv, out, *extra):
    return ["train", "--model", str(tiny_bert), "--data", str(tiny_csv), "--text-column", "review",
            "--label-column", "sentiment", "--batch-size", "8", "--max-length", "16", "--no-progress",
            "--steps", "6", "--output", str(out), *extra]


def _one_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert err.startswith("hora: error: ") and "\n" not in err and "Traceback" not in result.output, err
    return err


def test_divergence_stops_with_step_and_keeps_last_good_checkpoint(tiny_bert, tiny_csv, tmp_path):
    out = tmp_path / "run"
    err = _one_line(runner.invoke(app, _args(tiny_bert, tiny_csv, out, "--lr", "1e30", "--save-every", "1")))
    assert "training loss is nan at step 2" in err and "checkpoint-1" in err, err
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith("."))
    assert ckpts == ["checkpoint-1"]
    tensors = load_file(out / "checkpoints" / "checkpoint-1" / "adapter_model.safetensors")
    assert tensors and all(t.isfinite().all() for t in tensors.values())
    assert not (out / "metrics.json").exists() and not (out / "adapter_model.safetensors").exists()


def test_injected_nan_without_checkpoints(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    import torch
    import transformers

    original = transformers.Trainer.training_step

    def nan_at_step_3(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        return loss * torch.nan if self.state.global_step == 2 else loss

    monkeypatch.setattr(transformers.Trainer, "training_step", nan_at_step_3)
    out = tmp_path / "run"
    err = _one_line(runner.invoke(app, _args(tiny_bert, tiny_csv, out)))
    assert "at step 3" in err and "no checkpoint was saved" in err, err
    assert not out.exists()
