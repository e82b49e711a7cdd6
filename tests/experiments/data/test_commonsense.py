"""LLM-Adapters' commonsense format: the prompt to the character, and the answer-extraction rule on decoded
generations written as LLM-Adapters' evaluation sees them (prompt included, then the response)."""

from __future__ import annotations

import pytest

from hora.experiments.data import commonsense
from hora.experiments.errors import HoraError

OBQA = ("Please choose the correct answer to the question: A hemisphere experiences summer when\n\n"
        "Answer1: it's tilted towards Jupiter Answer2: it's angled towards the moon Answer3: it's angled towards "
        "the largest star in the solar system Answer4: it spins counter clockwise on Earth's axis\n\n"
        "Answer format: answer1/answer2/answer3/answer4")
BOOLQ = ("Please answer the following question with true or false, question: is the liver part of the excretory "
         "system?\n\nAnswer format: true/false")


def test_prompt_is_commonsense_evaluates_template_to_the_character():
    expected = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
                "request. \n\n                ### Instruction:\n                " + OBQA +
                "\n\n                ### Response:\n                ")
    assert commonsense.prompt(OBQA) == expected
    with_input = commonsense.prompt("Q", "context")
    assert with_input.startswith("Below is an instruction that describes a task, paired with an input")
    assert "### Input:\n                context\n\n                ### Response:" in with_input


def test_extraction_reads_the_response_not_the_answer_format_line_of_the_prompt():
    decoded = commonsense.prompt(OBQA) + " the correct answer is answer3"  # as batch_decode returns it
    assert commonsense.extract_answer("openbookqa", decoded) == "answer3"  # the prompt's "answer1/..." is skipped
    assert commonsense.extract_answer("openbookqa", "the correct answer is answer3") == "answer3"


@pytest.mark.parametrize("task, text, expected", [
    ("boolq", "the correct answer is false", "false"),
    ("boolq", "the correct answer is True", ""),  # case-sensitive, as the original regex
    ("boolq", "the correct answer is untrue", "true"),  # no word boundaries, as the original regex
    ("piqa", "the correct answer is solution2 not solution1", "solution2"),  # the first match wins
    ("social_i_qa", "the correct answer is answer3", "answer3"),
    ("hellaswag", "the correct answer is ending4", "ending4"),
    ("hellaswag", "the correct answer is ending5", ""),
    ("winogrande", "the correct answer is option1", "option1"),
    ("ARC-Easy", "answer5", "answer5"),
    ("ARC-Challenge", "I do not know", ""),
])
def test_extract_answer_per_task(task, text, expected):
    assert commonsense.extract_answer(task, text) == expected


def test_accuracy_per_task_and_for_a_mix_of_tasks():
    generated = [commonsense.prompt(BOOLQ) + " the correct answer is true",
                 "the correct answer is false", "the correct answer is solution1", "nothing"]
    golds = ["true", "true", "solution1", "option2"]
    assert commonsense.accuracy(generated[:2], golds[:2], task="boolq") == 0.5
    assert commonsense.accuracy(generated, golds) == 0.5  # each pattern found from the gold answer
    assert commonsense.task_of_answer("ending3") == "hellaswag"
    with pytest.raises(HoraError, match="not an answer of any commonsense task"):
        commonsense.task_of_answer("maybe")
    with pytest.raises(HoraError, match="unknown commonsense task 'siqa'"):
        commonsense.extract_answer("siqa", "answer1")


def test_gold_answers_from_the_answer_or_the_output_field():
    assert commonsense.gold_answer("the correct answer is solution2") == "solution2"
    assert commonsense.gold_answer("true") == "true"
    assert commonsense.accuracy(["the correct answer is option2"], ["the correct answer is option2"]) == 1.0
    with pytest.raises(HoraError, match="no commonsense answer word"):
        commonsense.gold_answer("the correct answer is")


def test_urls_are_pinned_to_the_commit_read():
    assert commonsense.test_url("ARC-Easy").endswith(f"{commonsense.SOURCE_COMMIT}/dataset/ARC-Easy/test.json")
    assert commonsense.TRAIN_URL.endswith("ft-training_set/commonsense_170k.json")
    assert len(commonsense.TASKS) == 8
