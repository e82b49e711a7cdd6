"""Generative fine-tuning (``--objective sft``) through TRL's ``SFTTrainer``: a decoder learns to generate the
answer after a prompt ("Review: ... Sentiment:" -> " positive"), with the loss on the answer only.

The data go to TRL tokenised (``input_ids`` and ``completion_mask``, TRL's pre-tokenised format, :func:`encode`):
the prompt's tokens exactly as evaluation tokenises the prompt before generating, then the answer's tokens and EOS,
with the loss on the answer and EOS only (``completion_only_loss``). TRL tokenising prompt + answer as one text would
let the end of the prompt merge with the answer: LLM-Adapters' prompt ends on a newline and 16 spaces, one token
for SmolLM2 and Qwen2 alone, but a newline and 15 spaces then " the" before its answer, so the model would never be
trained on the context it continues at test time. TRL's own defaults that would make the run a different
experiment from a classification run are not used: precision (float32 unless ``--bf16`` / ``--fp16``) and gradient
checkpointing (off unless ``--gradient-checkpointing``) come from the run's settings like everything else in its
``TrainingArguments`` (batch, accumulation, schedule, steps, seeds, checkpoints), which :func:`arguments` turns
into an ``SFTConfig``; packing is off.

:class:`HoraSFTTrainer` is ``SFTTrainer`` with :class:`~hora.experiments.training.checkpoints.HoraTrainerMixin`, the
same mixin as the classification runs' trainer: AdamW over :func:`hora.param_groups` (HoRA's generator at
``lr * generator_lr_ratio``), atomic checkpoints that ``--resume`` continues, an exact running loss, and a
stop at the first NaN/inf loss.

A prompt whose tokens, with its answer and EOS, exceed ``--max-length`` loses its start (:func:`prepare`), the
same for training and scoring, so no answer is ever cut. Scoring is
:func:`hora.experiments.scoring.evaluation.exact_match`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from trl import SFTConfig, SFTTrainer

from hora.experiments.data.tasks import PromptData
from hora.experiments.errors import HoraError, TruncationWarning
from hora.experiments.training.checkpoints import HoraTrainerMixin


@dataclass
class Prompts:
    """Prompts and answers of one split: their texts for scoring, their tokens for TRL (``dataset``)."""

    prompts: list[str]
    answers: list[str]
    sequences: list[list[int]]  # each prompt's tokens, then its answer's and EOS (:func:`encode`)
    prompt_lengths: list[int]  # how many of them are the prompt's
    truncated: int = 0  # prompts that lost their start to fit --max-length
    longest: int = 0  # tokens of the longest prompt + answer + EOS before that

    def __len__(self) -> int:
        return len(self.prompts)

    def dataset(self):
        """A ``datasets.Dataset`` in TRL's pre-tokenised format: ``input_ids`` and ``completion_mask`` (1 on the
        answer and EOS, the tokens the loss is on)."""
        import datasets

        masks = [[0] * n + [1] * (len(ids) - n) for ids, n in zip(self.sequences, self.prompt_lengths, strict=True)]
        return datasets.Dataset.from_dict({"input_ids": self.sequences, "completion_mask": masks})


def encode(tokenizer, prompts: Sequence[str], answers: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """(prompt tokens, answer and EOS tokens) of each prompt and answer, the sequence trained on.

    The prompt's tokens are those evaluation generates after: the prompt tokenised alone (with the special tokens
    the tokenizer adds, as :func:`hora.experiments.scoring.evaluation.generate` tokenises it). The answer's are those
    that follow them in prompt + answer tokenised as one text when that starts with them (the usual case: the answer as
    it reads in context), else the answer tokenised alone: the prompt's last token merges with the answer's first (a
    prompt ending in spaces: "...:" + newline + 16 spaces, then "the", tokenises as a newline + 15 spaces and " the").
    EOS as TRL appends it to a completion, when the tokenizer has one."""
    if not prompts:
        return []
    alone = tokenizer(list(prompts))["input_ids"]
    whole = tokenizer([p + a for p, a in zip(prompts, answers, strict=True)])["input_ids"]
    answer_alone = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token is not None else []
    return [(p, (w[len(p):] if w[:len(p)] == p else a) + eos) for p, w, a in zip(alone, whole, answer_alone,
                                                                                   strict=True)]


def prepare(data: PromptData, indices: Sequence[int] | np.ndarray, tokenizer, max_length: int) -> Prompts:
    """The prompts and answers of ``indices`` with their tokens (:func:`encode`); a prompt whose tokens with its
    answer and EOS exceed ``max_length`` is cut at its start until they fit."""
    prompts = [data.inputs[i] for i in indices]
    answers = [data.answers[i] for i in indices]
    encoded = encode(tokenizer, prompts, answers)
    truncated, longest = 0, 0
    for j, (prompt_ids, answer_ids) in enumerate(encoded):
        n = len(prompt_ids) + len(answer_ids)
        if n > max_length:
            truncated, longest = truncated + 1, max(longest, n)
            prompts[j], encoded[j] = _cut_start(prompts[j], answers[j], n - max_length, tokenizer, max_length)
    return Prompts(prompts, answers, [p + a for p, a in encoded], [len(p) for p, _ in encoded], truncated, longest)


def warn_cut(splits: Sequence[Prompts], max_length: int, name: str) -> None:
    """One TruncationWarning when any prompt of ``splits`` lost its start to fit ``max_length``."""
    cut = sum(p.truncated for p in splits)
    if cut:
        total, longest = sum(len(p) for p in splits), max(p.longest for p in splits)
        warnings.warn(f"{cut} of {total} prompts of {name} with their answers are longer than {max_length} tokens "
                      f"(longest {longest}): their start was cut so that the answer fits; raise --max-length to keep "
                      "more", TruncationWarning, stacklevel=2)


def _cut_start(prompt: str, answer: str, drop: int, tokenizer,
               max_length: int) -> tuple[str, tuple[list[int], list[int]]]:
    """``prompt`` without its first ``drop`` or more tokens, and the tokens of it and ``answer``
    (:func:`encode`), which take at most ``max_length``."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    while drop < len(ids):  # decoding and tokenising again can merge tokens differently: check, then cut more
        short = tokenizer.decode(ids[drop:])
        (encoded,) = encode(tokenizer, [short], [answer])
        if sum(map(len, encoded)) <= max_length:
            return short, encoded
        drop += 1
    raise HoraError(f"--max-length {max_length} leaves no room for a prompt before the answer {answer!r} and EOS; "
                    "raise --max-length")


def arguments(common: dict, max_length: int) -> SFTConfig:
    """TRL's ``SFTConfig`` from the run's ``TrainingArguments`` keywords (which set precision and checkpointing
    explicitly, so TRL's defaults for them never act), no packing, the loss on the completion (the answer and EOS
    of :meth:`Prompts.dataset`). Prompts are already cut to fit (:func:`prepare`), so TRL's truncation never
    acts."""
    return SFTConfig(**common, max_length=max_length, completion_only_loss=True, packing=False, padding_free=False)


class HoraSFTTrainer(HoraTrainerMixin, SFTTrainer):
    """TRL's ``SFTTrainer`` with :class:`~hora.experiments.training.checkpoints.HoraTrainerMixin`."""

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
