"""Commonsense reasoning as LLM-Adapters (Hu et al., EMNLP 2023) and DoRA (Liu et al., ICML 2024) run it: the
data format, the prompt, and the rule that reads the answer out of a generated response.

Read from AGI-Edgerunners/LLM-Adapters @ 816657208af4db747803f87ba40a4c71383fed7a (``commonsense_evaluate.py``,
``finetune.py``, ``dataset/*/test.json``) and NVlabs/DoRA ``commonsense_reasoning/`` (the same two scripts);
docs/benchmarks.md says what differs here.

Data. Training: ``ft-training_set/commonsense_170k.json``, the training sets of the eight tasks below in one
JSON list. Test: ``dataset/<task>/test.json`` per task. Every record has four string fields:
``instruction`` (the question with its choices and an ``Answer format: ...`` line), ``input`` (empty in all
commonsense files), ``output`` (the text to generate, ``"the correct answer is <answer>"``) and ``answer``
(the gold answer word, e.g. ``true``, ``solution2``, ``answer3``, ``ending1``, ``option2``).

Prompt: :func:`prompt`, ``commonsense_evaluate.py``'s ``generate_prompt`` reproduced to the character (its
indentation is part of the string the model sees). Scoring: generate after the prompt, take the text after
``### Response:``, strip it, and take the FIRST match of the task's pattern (:data:`ANSWER_PATTERNS`, no word
boundaries, as in ``extract_answer``); the example counts as right when that match equals ``answer``, and an
answer with no match counts as wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hora.experiments.errors import HoraError

SOURCE_COMMIT = "816657208af4db747803f87ba40a4c71383fed7a"
RAW = f"https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/{SOURCE_COMMIT}"
TRAIN_URL = f"{RAW}/ft-training_set/commonsense_170k.json"

# task -> the alternatives ``extract_answer`` searches for (first match wins)
ANSWER_PATTERNS: dict[str, str] = {
    "boolq": "true|false",
    "piqa": "solution1|solution2",
    "social_i_qa": "answer1|answer2|answer3|answer4|answer5",
    "hellaswag": "ending1|ending2|ending3|ending4",
    "winogrande": "option1|option2",
    "ARC-Easy": "answer1|answer2|answer3|answer4|answer5",
    "ARC-Challenge": "answer1|answer2|answer3|answer4|answer5",
    "openbookqa": "answer1|answer2|answer3|answer4|answer5",
}
TASKS = tuple(ANSWER_PATTERNS)
ANY_ANSWER = re.compile(r"\b(?:" + "|".join(dict.fromkeys(ANSWER_PATTERNS.values())) + r")\b")
RESPONSE_MARK = "### Response:"


def test_url(task: str) -> str:
    """Where LLM-Adapters publishes ``task``'s test file (a JSON list of records)."""
    check_task(task)
    return f"{RAW}/dataset/{task}/test.json"


def check_task(task: str) -> str:
    if task not in ANSWER_PATTERNS:
        raise HoraError(f"unknown commonsense task '{task}': choose one of {', '.join(TASKS)}")
    return task


def prompt(instruction: str, input: str = "") -> str:  # noqa: A002  (the field's name in the data)
    """The evaluation prompt of LLM-Adapters' ``commonsense_evaluate.py`` (the model continues after it)."""
    if input:
        return ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n"
                f"                ### Instruction:\n                {instruction}\n\n"
                f"                ### Input:\n                {input}\n\n"
                "                ### Response:\n                ")
    return ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request. \n\n"
            f"                ### Instruction:\n                {instruction}\n\n"
            "                ### Response:\n                ")


def response(generated: str) -> str:
    """The response part of a decoded generation: the text after the first ``### Response:`` when the prompt
    is included (as LLM-Adapters decodes it), else the whole text; stripped."""
    parts = generated.split(RESPONSE_MARK)
    return (parts[1] if len(parts) > 1 else parts[0]).strip()


def task_of_answer(answer: str) -> str:
    """The task whose answer words include ``answer`` (for a mix of tasks such as a validation split of
    commonsense_170k: every task family has its own words, and the tasks sharing answer1..5 share the pattern)."""
    for task, pattern in ANSWER_PATTERNS.items():
        if re.fullmatch(pattern, answer.strip()):
            return task
    raise HoraError(f"'{answer}' is not an answer of any commonsense task (true/false, solutionN, answerN, "
                    "endingN, optionN)")


def extract_answer(task: str, generated: str) -> str:
    """The answer LLM-Adapters reads from ``generated``: the first match of ``task``'s pattern in its response,
    or "" when there is none."""
    found = re.findall(ANSWER_PATTERNS[check_task(task)], response(generated))
    return found[0] if found else ""


def gold_answer(text: str) -> str:
    """The answer word of a gold text: the record's ``answer`` itself, or the last answer word of its ``output``
    (``"the correct answer is option2"`` -> ``option2``)."""
    found = ANY_ANSWER.findall(text)
    if not found:
        raise HoraError(f"no commonsense answer word (true/false, solutionN, answerN, endingN, optionN) in '{text}'")
    return found[-1]


def accuracy(generated: Sequence[str], answers: Sequence[str], task: str | None = None) -> float:
    """Fraction of ``generated`` texts whose extracted answer equals the gold answer word of ``answers`` (the
    ``answer`` or ``output`` fields, :func:`gold_answer`); each example's pattern is ``task``'s, or (``task``
    None) the one its gold answer belongs to. NaN for no examples."""
    if len(generated) != len(answers):
        raise ValueError(f"{len(generated)} generations for {len(answers)} answers")
    if not answers:
        return float("nan")
    golds = [gold_answer(a) for a in answers]
    right = sum(extract_answer(task or task_of_answer(gold), text) == gold
                for text, gold in zip(generated, golds, strict=True))
    return right / len(answers)
