"""A quiet run (hora.experiments.console.quiet): our own progress and the warnings that ask something of the user."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from hora.experiments.console import quiet
from hora.experiments.models import loaders
from hora.kernel_lookup import DropMessage

SRC = Path(__file__).resolve().parents[3] / "src"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_only_the_known_future_warning_is_filtered():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet.quiet_libraries()
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning,
                      stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]


def test_only_the_kernel_lookup_messages_of_bitsandbytes_are_dropped(caplog):
    quiet.quiet_libraries()
    quiet.quiet_libraries()  # idempotent: one filter per logger
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert sum(isinstance(f, DropMessage) for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please ...", "offline")
        logger.warning("a 4-bit layer could not be quantised")
        logging.getLogger("kernels._internals.hf_hub").warning(
            "Skipping publisher trust check for 'kernels-community/quantization-bitsandbytes' because ...")
    assert [r.getMessage() for r in caplog.records] == ["a 4-bit layer could not be quantised"]


def test_transformers_verbosity_follows_its_environment_switch(monkeypatch):
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    try:
        monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
        quiet.quiet_libraries()
        assert hf_logging.get_verbosity() == logging.ERROR
        monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "warning")  # the user asks to see its messages
        quiet.quiet_libraries()
        assert hf_logging.get_verbosity() == logging.WARNING
    finally:
        hf_logging.set_verbosity(before)


def test_loading_a_new_head_is_quiet_and_restores_transformers_settings():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()
    try:
        with quiet.loading_new_head():
            assert hf_logging.get_verbosity() == logging.ERROR and not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == logging.WARNING and hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        with quiet.no_progress_bars():
            pass
        assert not hf_logging.is_progress_bar_enabled()  # not switched on where it was off
    finally:
        hf_logging.set_verbosity(before)
        hf_logging.enable_progress_bar()


def _callbacks(stream, enabled: bool, folder: Path) -> list[str]:
    import torch
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(folder), report_to="none", use_cpu=True, disable_tqdm=not enabled)
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=args)
    quiet.configure_progress(trainer, enabled, stream=stream)
    return [type(c).__name__ for c in trainer.callback_handler.callbacks]


@pytest.mark.parametrize(("stream", "enabled", "shown", "hidden"), [
    (Terminal(), True, "BarWithLines", {"LogLines", "PrinterCallback"}),  # a terminal: the bar, lines above
    (io.StringIO(), True, "LogLines", {"ProgressCallback", "PrinterCallback"}),  # a file: one line per log
    (Terminal(), False, None, {"LogLines", "ProgressCallback", "PrinterCallback"}),  # off
])
def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere(stream, enabled, shown, hidden, tmp_path):
    names = _callbacks(stream, enabled, tmp_path)
    assert shown is None or shown in names
    assert not hidden & set(names) and "ProgressCallback" not in names, names


def test_a_run_off_a_terminal_prints_only_our_own_lines(tiny_bert, tiny_csv, tmp_path):
    """`hora train` then `hora export` (which loads the trained adapter with its head) as a log file sees them:
    no library warning, no load report, no carriage return; progress as one line per logging interval."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "HORA_CACHE": str(tmp_path / "cache")}
    env.pop("TRANSFORMERS_VERBOSITY", None)
    run = tmp_path / "run"
    options = ["--model", str(tiny_bert), "--data", str(tiny_csv), "--text-column", "review", "--label-column",
               "sentiment", "--batch-size", "8", "--max-length", "16", "--steps", "4", "--output", str(run)]
    outputs = []
    for command in (["train", *options], ["export", str(run), str(tmp_path / "lora")]):
        result = subprocess.run([sys.executable, "-m", "hora", *command], capture_output=True, text=True, env=env,
                                timeout=600)
        assert result.returncode == 0, result.stderr
        outputs.append(result)
    train, export = outputs
    for text in (train.stdout + train.stderr, export.stdout + export.stderr):
        assert "\r" not in text
        for noise in ("MISSING", "Consider training", "is_gradient_checkpointing", "Warning", "{'loss'",
                      "Loading weights", "it/s]"):
            assert noise not in text, (noise, text)
    assert [line.split("  ")[0] for line in train.stderr.splitlines()] == [f"hora: step {i}/4" for i in (1, 2, 3, 4)]
    assert export.stderr == "" and export.stdout.startswith("exported LoRA adapter to")
    assert "wall time" in train.stdout and "since the process started" in train.stdout


def test_a_tokenizer_the_harness_loads_gives_no_token_length_note(tiny_bert):
    """transformers notes "Token indices sequence length is longer than ..." when a text is tokenised whole; the
    harness counts the texts it cuts that way and says so itself."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging


    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = hf_logging.get_logger("transformers")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    logger.addHandler(handler)
    try:
        for tokenizer in (AutoTokenizer.from_pretrained(tiny_bert), loaders.load_tokenizer(tiny_bert)):
            tokenizer.model_max_length = 4
            tokenizer("a text of more than four tokens, tokenised whole")
    finally:
        logger.removeHandler(handler)
        hf_logging.set_verbosity(verbosity)
    notes = [r for r in records if "sequence length is longer than" in r.getMessage()]
    assert len(notes) == 1  # the plain tokenizer's; none from the harness's


def test_import_hora_drops_the_kernel_lookup_message_of_bitsandbytes():
    pytest.importorskip("bitsandbytes")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    bare = subprocess.run([sys.executable, "-c", "import bitsandbytes"], capture_output=True, text=True, env=env,
                          timeout=300)
    if "kernels-community" not in bare.stdout + bare.stderr:
        pytest.skip("this bitsandbytes logs no kernel lookup at import")
    result = subprocess.run([sys.executable, "-c", "import hora, bitsandbytes, peft"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "kernels-community" not in result.stdout + result.stderr
