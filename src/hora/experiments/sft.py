"""Generative fine-tuning (``--objective sft``) through TRL's ``SFTTrainer``: a decoder learns to generate the
answer after a prompt ("Review: ... Sentiment:" -> " positive"), with the loss on the answer only.

The data go to TRL in its prompt-completion format (columns ``prompt`` and ``completion``); TRL tokenises
them, appends EOS to the completion and masks the prompt out of the loss (``completion_only_loss``). TRL's
own defaults that would make the run a different experiment from a classification run are not used: precision
(float32 unless ``--bf16`` / ``--fp16``) and gradient checkpointing (off unless ``--gradient-checkpointing``) come
from the run's settings like everything else in its ``TrainingArguments`` (batch, accumulation, schedule, steps,
seeds, checkpoints), which :func:`arguments` turns into an ``SFTConfig``; packing is off.

:class:`HoraSFTTrainer` is ``SFTTrainer`` with :class:`~hora.experiments.checkpoints.HoraTrainerMixin`, the
same mixin as the classification runs' trainer: AdamW over :func:`hora.param_groups` (HoRA's generator at
``lr * generator_lr_ratio``), atomic checkpoints that ``--resume`` continues, an exact running loss, and a
stop at the first NaN/inf loss.

A prompt whose tokens, with its answer and EOS, exceed ``--max-length`` loses its start (:func:`prepare`), the
same for training and scoring, so no answer is ever cut. Scoring is
:func:`hora.experiments.evaluation.exact_match`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from trl import SFTConfig, SFTTrainer

from hora.experiments.checkpoints import HoraTrainerMixin
from hora.experiments.errors import HoraError, TruncationWarning
from hora.experiments.tasks import PromptData


@dataclass
class Prompts:
    """Prompts and answers of one split, ready for TRL (``dataset``) and for scoring."""

    prompts: list[str]
    answers: list[str]
    truncated: int = 0  # prompts that lost their start to fit --max-length
    longest: int = 0  # tokens of the longest prompt + answer + EOS before that

    def __len__(self) -> int:
        return len(self.prompts)

    def dataset(self):
        """A ``datasets.Dataset`` in TRL's prompt-completion format."""
        import datasets

        return datasets.Dataset.from_dict({"prompt": self.prompts, "completion": self.answers})


def prepare(data: PromptData, indices: Sequence[int] | np.ndarray, tokenizer, max_length: int) -> Prompts:
    """The prompts and answers of ``indices``; a prompt whose tokens with its answer and EOS (as TRL tokenises
    them) exceed ``max_length`` is cut at its start until they fit."""
    prompts = [data.inputs[i] for i in indices]
    answers = [data.answers[i] for i in indices]
    eos = 1 if tokenizer.eos_token is not None else 0  # TRL appends EOS to each completion
    whole = tokenizer([p + a for p, a in zip(prompts, answers, strict=True)])["input_ids"] if prompts else []
    truncated, longest = 0, 0
    for j, ids in enumerate(whole):
        n = len(ids) + eos
        if n > max_length:
            truncated, longest = truncated + 1, max(longest, n)
            prompts[j] = _cut_start(prompts[j], answers[j], n - max_length, tokenizer, max_length, eos)
    return Prompts(prompts, answers, truncated, longest)


def warn_cut(splits: Sequence[Prompts], max_length: int, name: str) -> None:
    """One TruncationWarning when any prompt of ``splits`` lost its start to fit ``max_length``."""
    cut = sum(p.truncated for p in splits)
    if cut:
        total, longest = sum(len(p) for p in splits), max(p.longest for p in splits)
        warnings.warn(f"{cut} of {total} prompts of {name} with their answers are longer than {max_length} tokens "
                      f"(longest {longest}): their start was cut so that the answer fits; raise --max-length to keep "
                      "more", TruncationWarning, stacklevel=2)


def _cut_start(prompt: str, answer: str, drop: int, tokenizer, max_length: int, eos: int) -> str:
    """``prompt`` without its first ``drop`` or more tokens, so that prompt + answer + ``eos`` tokens take at
    most ``max_length``."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    while drop < len(ids):  # decoding and tokenising again can merge tokens differently: check, then cut more
        short = tokenizer.decode(ids[drop:])
        if len(tokenizer(short + answer)["input_ids"]) + eos <= max_length:
            return short
        drop += 1
    raise HoraError(f"--max-length {max_length} leaves no room for a prompt before the answer {answer!r} and EOS; "
                    "raise --max-length")


def arguments(common: dict, max_length: int) -> SFTConfig:
    """TRL's ``SFTConfig`` from the run's ``TrainingArguments`` keywords (which set precision and checkpointing
    explicitly, so TRL's defaults for them never act), no packing. Prompts are already cut to fit
    (:func:`prepare`), so TRL's truncation never acts."""
    return SFTConfig(**common, max_length=max_length, completion_only_loss=True, packing=False, padding_free=False)


class HoraSFTTrainer(HoraTrainerMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` with :class:`~hora.experiments.checkpoints.HoraTrainerMixin`."""

    def __init__(self, *args, **kwargs):
        from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

        shown = is_progress_bar_enabled()
        disable_progress_bars()  # TRL's tokenising passes over a few thousand short texts take well under a second
        try:
            super().__init__(*args, **kwargs)
        finally:
            if shown:
                enable_progress_bars()

    def create_model_card(self, *args, **kwargs) -> None:
        """None: TRL would write a README.md into the checkpoints folder at every save (not atomically);
        a run's record is its metrics.json."""
