"""Fixtures for the experiment harness: a tiny random BERT with a real tokenizer, tiny text data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

POSITIVE = ["good", "great", "fine", "lovely", "superb", "moving", "funny", "smart"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring", "weak", "silly", "tedious"]
NEUTRAL = ["the", "film", "movie", "plot", "was", "very", "a", "and", "acting", "story"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never write into the user's ~/.cache/hora from tests."""
    monkeypatch.setenv("HORA_CACHE", str(tmp_path / "hora-cache"))


@pytest.fixture
def trained_configs(monkeypatch) -> list:
    """The TrainConfig of every run that ``run_compare`` trains in this process (rather than resumes or copies),
    in order."""
    from hora.experiments.grid import executors

    configs: list = []
    real_train = executors.train
    monkeypatch.setattr(executors, "train", lambda cfg, **kwargs: configs.append(cfg) or real_train(cfg, **kwargs))
    return configs


def save_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    """A randomly initialised 2-layer BERT (4 heads, hidden 32, hidden and attention ``dropout``) with a
    word-level tokenizer over this file's words, saved to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + NEUTRAL
    BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
    BertModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """The tiny BERT with BERT's usual dropout 0.1."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_without_dropout(tmp_path_factory) -> Path:
    """The tiny BERT without dropout: its training is a deterministic function of the batches."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-no-dropout"), dropout=0.0)


def make_rows(n: int = 120, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        words = rng.sample(POSITIVE if pos else NEGATIVE, 2) + rng.sample(NEUTRAL, 3)
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "sentiment": "pos" if pos else "neg", "id": i})
    return rows


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    import pandas as pd

    path = tmp_path / "reviews.csv"
    pd.DataFrame(make_rows()).to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_jsonl(tmp_path) -> Path:
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))
    return path


@pytest.fixture
def one_thread():
    """The simulation's small batched ops run fastest on one thread (see run_simulation)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def problem():
    """A small simulated regression problem (simulate_helpers.make_problem)."""
    from simulate_helpers import make_problem

    return make_problem()


SFT_WORDS = ["<pad>", "<s>", "</s>", "<unk>", "Review:", "Sentiment:", "positive", "negative"]


def save_tiny_llama(folder: Path, hidden_size: int = 32, intermediate_size: int = 40) -> Path:
    """A randomly initialised 2-layer Llama with grouped-query attention (4 query / 2 KV heads, hidden 32 unless
    told) and a word-level tokenizer (pad, BOS, EOS, the prompt words and this file's words), saved to ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = SFT_WORDS + POSITIVE + NEGATIVE + NEUTRAL
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=intermediate_size, max_position_embeddings=64,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """The tiny random GQA Llama (a causal LM folder for --objective sft)."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_llama64(tmp_path_factory) -> Path:
    """The tiny Llama at hidden 64: bitsandbytes' CPU 4-bit kernel needs in_features >= its block size 64."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama-64"), hidden_size=64, intermediate_size=128)


def make_prompt_rows(n: int = 120, seed: int = 0) -> list[dict]:
    """make_rows' reviews as prompts, with the answer " positive" / " negative" to generate after them."""
    answers = {"pos": " positive", "neg": " negative"}
    return [{"prompt": f"Review: {row['review']}\nSentiment:", "answer": answers[row["sentiment"]], "id": row["id"]}
            for row in make_rows(n, seed)]


@pytest.fixture
def tiny_qa_csv(tmp_path) -> Path:
    import pandas as pd

    path = tmp_path / "qa.csv"
    pd.DataFrame(make_prompt_rows()).to_csv(path, index=False)
    return path


def save_tiny_vit(folder: Path) -> Path:
    """A randomly initialised 2-layer HF ViT (4 heads, hidden 32, 8x8 RGB images, patch 4) with its image
    processor (resize to 8x8, normalise), saved to ``folder``."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=40, image_size=8, patch_size=4, num_channels=3,
                                        num_labels=3)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 8, "width": 8}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> Path:
    """The tiny random HF ViT with an image processor."""
    return save_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def add_to_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str = HUB_COMMIT,
                     refs: tuple[str, ...] = ("main",)) -> None:
    """Put the model files of ``folder`` into a Hugging Face hub cache as ``huggingface_hub`` lays one out:
    ``models--ORG--NAME/blobs/<sha256>`` (the contents), ``snapshots/<commit>/<file>`` (relative symlinks to the
    blobs) and ``refs/<ref>`` (the commit each ref names)."""
    import hashlib
    import os

    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(path.read_bytes())
        link = snapshot / path.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, tiny_bert, tiny_llama, tiny_vit) -> Path:
    """An offline Hugging Face hub cache (HF_HUB_CACHE, HF_HUB_OFFLINE=1) holding the tiny random models by Hub ID:
    ``hora-test/tiny-bert`` (refs main and v1), ``hora-test/tiny-llama``, ``hora-test/tiny-vit``."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    add_to_hub_cache(cache, "hora-test/tiny-bert", tiny_bert, refs=("main", "v1"))
    add_to_hub_cache(cache, "hora-test/tiny-llama", tiny_llama)
    add_to_hub_cache(cache, "hora-test/tiny-vit", tiny_vit)
    for name, value in (("HF_HUB_CACHE", str(cache)), ("HF_HUB_OFFLINE", "1")):
        monkeypatch.setenv(name, value)
    # huggingface_hub reads both when imported: set them where it looks
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def write_pairs(folder: Path, n: int = 90, regression: bool = False) -> Path:
    """A sentence-pair data set as a folder of parquet files (``train.parquet``, ``test.parquet``; no validation
    split) with columns sentence1, sentence2 and label: ClassLabel entailment / not_entailment (the second
    sentence repeats the first's sentiment or not), or for ``regression`` a float similarity score in [0, 5]."""
    import datasets

    rows = make_rows(n)
    rng = random.Random(1)
    first, second, labels = [], [], []
    for i, row in enumerate(rows):
        same = i % 3 != 0
        other = rows[(i + 2) % n] if same else rows[(i + 1) % n]
        first.append(row["review"])
        second.append(other["review"])
        labels.append(round(rng.uniform(3, 5), 2) if same else round(rng.uniform(0, 2), 2))
    features = datasets.Features({
        "sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
        "label": datasets.Value("float32") if regression else datasets.ClassLabel(names=["entailment",
                                                                                         "not_entailment"])})
    values = labels if regression else [0 if y >= 2.5 else 1 for y in labels]
    table = datasets.Dataset.from_dict({"sentence1": first, "sentence2": second, "label": values}, features=features)
    folder.mkdir(parents=True, exist_ok=True)
    cut = int(0.8 * n)
    table.select(range(cut)).to_parquet(folder / "train.parquet")
    table.select(range(cut, n)).to_parquet(folder / "test.parquet")
    return folder


def write_images(folder: Path, n: int = 60) -> Path:
    """An image classification data set saved by ``datasets``' ``save_to_disk`` (a DatasetDict with train,
    validation and test): 10x12 RGB images of three colours (ClassLabel red / green / blue), column ``img``."""
    import datasets
    import numpy as np
    from PIL import Image

    names = ["red", "green", "blue"]
    images, labels = [], []
    for i in range(n):
        pixels = np.zeros((10, 12, 3), dtype=np.uint8)
        pixels[..., i % 3] = 200 + i % 50
        images.append(Image.fromarray(pixels))
        labels.append(i % 3)
    features = datasets.Features({"img": datasets.Image(), "colour": datasets.ClassLabel(names=names)})
    table = datasets.Dataset.from_dict({"img": images, "colour": labels}, features=features)
    datasets.DatasetDict({"train": table.select(range(0, 36)), "validation": table.select(range(36, 48)),
                          "test": table.select(range(48, n))}).save_to_disk(str(folder))
    return folder
