"""Tasks: data, fixed seeded splits, data fractions, and encoding them for the Trainer.

Built-in tasks
    ``rotten_tomatoes``  sentiment of Rotten Tomatoes snippets (fresh / rotten), 12,808 texts. Default.
    ``mnist``            MNIST digits, 5,000 images (500 per class), 28x28 grayscale.
    ``fashion_mnist``    Fashion-MNIST train set (60,000 images); used to pre-train the small ViT.
Generative (``--objective sft``, :func:`load_prompt_task`): prompts and the answers to generate after them
    ``rotten_tomatoes``  prompt ``"Review: {text}\nSentiment:"``, answer ``" positive"`` / ``" negative"``; the
                         same examples, split and subsamples as the classification task.
Users' data (``--dataset``, ``--data``: files, folders, Hub datasets) is read by
:mod:`hora.experiments.data.datasource`, the one place that turns any source into :class:`Splits`; this module gives it
the readers of the built-in tasks and of table files, the split rule and the encoding for the Trainer.

Splits are stratified, seeded with ``split_seed`` only, and computed from the labels alone: test 20 %,
then validation 10 % of the rest, the remainder is train. They never depend on the method, the run seed
or the data fraction, so every run of a comparison is scored on the very same test examples. The data
fraction subsamples the train split only (stratified, seeded by the run seed; for one seed a smaller
fraction's subset is contained in a larger one's). The test split is never used for any choice; the
validation split is there for choices such as the learning rate.

For generative data the split is stratified by the answer when answers repeat (every distinct answer at least
``MIN_PER_ANSWER`` times, e.g. a label word or a choice letter), else it is a plain seeded split.

The base models the tasks are adapted from (``--model``) are :mod:`hora.experiments.models.catalogue`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hora.experiments import assets
from hora.experiments.errors import HoraError, TruncationWarning

if TYPE_CHECKING:
    import pandas as pd

TEXT_TASKS = ("rotten_tomatoes",)
IMAGE_TASKS = ("mnist", "fashion_mnist")
TASKS = TEXT_TASKS + IMAGE_TASKS
TEST_SIZE = 0.2
VAL_SIZE = 0.1
RT_PROMPT = "Review: {text}\nSentiment:"
RT_ANSWERS = {"fresh": " positive", "rotten": " negative"}
MIN_PER_ANSWER = 3  # answers that all repeat this often stratify the split (see the module docstring)


@dataclass
class TaskData:
    """A data set of examples with one target each, in columns.

    ``inputs``: texts, or images (uint8 N x 28 x 28 for the built-in tasks; any image a model's processor
    reads, e.g. the PIL images of a ``datasets`` image column, indexed lazily). ``pairs``: the second text of
    each example for sentence-pair tasks (tokenised as a pair with ``inputs``), else None. ``labels``: class
    indices into ``label_names`` (int64), or for a regression task (``regression``, e.g. STS-B) float targets
    with ``label_names`` empty.
    """

    name: str
    kind: str  # "text" or "image"
    inputs: Sequence
    labels: np.ndarray
    label_names: list[str]
    source: str = ""
    pairs: list[str] | None = None
    regression: bool = False
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out of the source, by reason ("empty text")

    @property
    def num_labels(self) -> int:
        """Outputs of the model's head: one per class, one for a regression."""
        return 1 if self.regression else len(self.label_names)

    @property
    def strata(self) -> np.ndarray:
        """What the split and the data fraction are stratified by: the classes, or nothing (one stratum)
        for a regression."""
        return np.zeros(len(self.labels), dtype=np.int64) if self.regression else self.labels

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class PromptData(TaskData):
    """A generative data set (``--objective sft``): ``inputs`` are prompts, ``answers`` the text to generate
    after each; ``labels`` / ``label_names`` only stratify the split and the data fraction (see the module
    docstring)."""

    answers: list[str] = field(default_factory=list)


@dataclass
class Splits:
    """Train / validation / test indices; with ``data``, the examples they index (one table of every split,
    as :func:`hora.experiments.data.datasource.load_splits` makes it)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    meta: dict = field(default_factory=dict)
    data: TaskData | None = None


# --------------------------------------------------------------------------- data


def encode_labels(raw: list) -> tuple[np.ndarray, list[str]]:
    names = sorted({str(x) for x in raw})
    index = {n: i for i, n in enumerate(names)}
    return np.array([index[str(x)] for x in raw], dtype=np.int64), names


def check_utf8(path: str | Path, chunk_size: int = 1 << 20) -> None:
    """Raise HoraError naming the line and byte of the first invalid UTF-8 sequence; also reject empty files.

    Streams the file (constant memory) with an incremental decoder.
    """
    import codecs

    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, line, nonblank = 0, 1, False
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_size)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.start is relative to the bytes the decoder held over plus this chunk
                held = len(exc.object) - len(chunk)
                bad = offset - held + exc.start
                with open(path, "rb") as again:
                    head = again.read(bad + 1)
                line = head.count(b"\n") + 1
                column = bad - (head.rfind(b"\n", 0, bad) + 1) + 1
                raise HoraError(
                    f"{path} is not UTF-8 text: byte 0x{head[bad]:02x} at line {line}, column {column} (byte offset "
                    f"{bad}) cannot be decoded ({exc.reason}); re-encode it as UTF-8, e.g. "
                    f"iconv -f latin1 -t utf-8 {path.name} > utf8_{path.name}"
                ) from None
            nonblank = nonblank or bool(text.strip())
            if not chunk:
                break
            offset += len(chunk)
    if not nonblank:
        raise HoraError(f"data file {path} is empty")


def read_table(path: str | Path, columns: dict[str, str], as_written: bool = False) -> pd.DataFrame:
    """The rows of a CSV / TSV / JSON Lines file that has every column of ``columns`` (role -> column name),
    e.g. ``{"text": "review", "label": "sentiment"}``; a one-line HoraError naming what is wrong otherwise.
    ``as_written``: a CSV / TSV's cells of these columns are read as strings as written (" 3" stays " 3"). An
    empty cell is kept as a missing value: :mod:`hora.experiments.data.datasource` drops its row and counts it.

    UTF-8 only: another encoding is reported with the line and byte where decoding fails.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise HoraError(f"data file not found: {path}")
    check_utf8(path)
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if ".jsonl" in suffixes or ".ndjson" in suffixes:
            df = pd.read_json(path, lines=True)
        elif ".csv" in suffixes or ".tsv" in suffixes:
            dtype = dict.fromkeys(columns.values(), str) if as_written else None
            df = pd.read_csv(path, sep="\t" if ".tsv" in suffixes else ",", dtype=dtype)
        else:
            raise HoraError(f"unsupported data file type '{path.suffix}': use .csv, .tsv or .jsonl")
    except HoraError:
        raise
    except Exception as exc:  # pandas raises many kinds; report one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HoraError(f"could not read {path}: {first}") from None
    for kind, col in columns.items():
        if col not in df.columns:
            raise HoraError(
                f"{kind} column '{col}' not in {path.name}; columns are: {', '.join(map(str, df.columns))}"
            )
    if len(df) == 0:
        raise HoraError(f"data file {path} has no data rows")
    return df


def answer_strata(answers: list[str]) -> tuple[np.ndarray, list[str]]:
    """What a generative data set is stratified by: its stripped answers when every distinct one occurs at
    least ``MIN_PER_ANSWER`` times (a label word, a choice letter), else one stratum (free-form answers)."""
    labels, names = encode_labels([a.strip() for a in answers])
    if len(labels) == 0 or np.bincount(labels).min() < MIN_PER_ANSWER:
        return np.zeros(len(answers), dtype=np.int64), ["(all answers)"]
    return labels, names


def load_prompt_task(task: str = "rotten_tomatoes") -> PromptData:
    """A built-in text task as prompts and answers (``--objective sft``): same examples and labels, so the same
    split and subsamples as the classification task."""
    if task not in TEXT_TASKS:
        raise HoraError(f"--objective sft generates text: choose one of {', '.join(TEXT_TASKS)} or pass --dataset")
    base = load_task(task)
    prompts = [RT_PROMPT.format(text=t) for t in base.inputs]
    answers = [RT_ANSWERS[base.label_names[y]] for y in base.labels]
    return PromptData(task, "text", prompts, base.labels, base.label_names, base.source, answers=answers)


def load_task(task: str = "rotten_tomatoes") -> TaskData:
    """The data of a built-in task (a user's data is read by :mod:`hora.experiments.data.datasource`)."""
    if task == "rotten_tomatoes":
        texts, raw = assets.load_rotten_tomatoes()
        labels, names = encode_labels(raw)
        return TaskData(task, "text", texts, labels, names, source=str(assets.rotten_tomatoes_file()))
    if task == "mnist":
        images, labels = assets.load_mnist5k()
        return TaskData(task, "image", images, labels, [str(i) for i in range(10)],
                        source=str(assets.mnist5k_file()))
    if task == "fashion_mnist":
        images, labels = assets.load_fashion_mnist("train")
        return TaskData(task, "image", images, labels, list(assets.FASHION_MNIST_CLASSES),
                        source=str(assets.fashion_mnist_dir()))
    raise HoraError(f"unknown task '{task}'; choose one of: {', '.join(TASKS)} (or pass --dataset)")


# --------------------------------------------------------------------------- splits


def check_fraction(fraction: float) -> float:
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0) or math.isnan(fraction):
        raise HoraError(f"fraction must be in (0, 1], got {fraction:g}")
    return fraction


def split_indices(labels: np.ndarray, split_seed: int = 0, test_size: float = TEST_SIZE,
                  val_size: float = VAL_SIZE) -> Splits:
    """Fixed stratified train / validation / test indices, a function of the labels and ``split_seed`` only.

    Per class: a seeded permutation; the first round(n * test_size) go to test, the next
    round((n - n_test) * val_size) to validation, the rest to train.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(split_seed), 20251004])
    train, val, test = [], [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_size))
        n_val = int(round((len(idx) - n_test) * val_size))
        test.append(idx[:n_test])
        val.append(idx[n_test:n_test + n_val])
        train.append(idx[n_test + n_val:])
    return Splits(np.sort(np.concatenate(train)), np.sort(np.concatenate(val)), np.sort(np.concatenate(test)),
                  meta={"split_seed": split_seed, "test_size": test_size, "val_size": val_size})


def eval_subset(idx: np.ndarray, n: int | None, split_seed: int = 0) -> np.ndarray:
    """``n`` of the evaluation indices ``idx``, drawn at random (fixed by ``split_seed``), in sorted order.

    Not the first ``n``: datasets are often ordered by label, and a prefix would be a few classes only.
    """
    idx = np.asarray(idx)
    if n is None or n >= len(idx):
        return idx
    rng = np.random.default_rng([int(split_seed), 20251005])
    return np.sort(rng.choice(idx, size=n, replace=False))


def subsample(train_idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int,
              label_names: list[str] | None = None) -> np.ndarray:
    """A stratified, seeded ``fraction`` of the train indices (round(fraction * n_c) per class); ``fraction``
    is in (0, 1], as :func:`check_fraction` (called by TrainConfig) makes sure.

    For one seed the subsets are nested: a smaller fraction's subset lies inside a larger one's.
    Raises :class:`HoraError` when the fraction leaves some class with no training example.
    """
    fraction = float(fraction)
    train_idx = np.asarray(train_idx)
    if fraction == 1.0:
        return np.sort(train_idx)
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 7])
    chosen = []
    for c in np.unique(labels[train_idx]):
        idx = rng.permutation(train_idx[labels[train_idx] == c])
        n = int(math.floor(fraction * len(idx) + 0.5))
        if n == 0:
            name = label_names[c] if label_names is not None and c < len(label_names) else str(c)
            raise HoraError(
                f"fraction {fraction:g} leaves class '{name}' with no training examples "
                f"({len(idx)} in the train split); use a fraction of at least {0.5 / len(idx):.3g}"
            )
        chosen.append(idx[:n])
    return np.sort(np.concatenate(chosen))


# --------------------------------------------------------------------------- torch data sets


class EncodedDataset:
    """A list of feature dicts, as ``torch.utils.data.Dataset`` (map style) for the Trainer."""

    def __init__(self, items: list[dict], truncated: int = 0, longest: int = 0):
        self.items = items
        self.truncated = truncated  # texts cut to max_length tokens
        self.longest = longest  # tokens of the longest text before truncation

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class ImageDataset:
    """Images encoded on access, as ``torch.utils.data.Dataset`` (map style): ``pixel_values`` from
    ``transform(image)`` (C x H x W float32) and ``labels``; no copy of every decoded image is kept."""

    def __init__(self, images: Sequence, indices: np.ndarray, labels: np.ndarray, transform: Callable):
        self.images, self.indices, self.labels, self.transform = images, indices, labels, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        import torch

        return {"pixel_values": self.transform(self.images[int(self.indices[i])]),
                "labels": torch.tensor(self.labels[i].item())}


def image_tensor(images: np.ndarray):
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) scaled to [-1, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).sub_(0.5).div_(0.5)
    return x.unsqueeze(1)


def grayscale_tensor(image: np.ndarray):
    """One built-in uint8 image (28, 28) -> float32 (1, 28, 28), as :func:`image_tensor`."""
    return image_tensor(image[None])[0]


def encode(data: TaskData, indices: np.ndarray, tokenizer=None, max_length: int = 64,
           image_transform: Callable | None = None) -> EncodedDataset | ImageDataset:
    """Features for the Trainer: tokenised texts or text pairs (padding left to the collator), or images
    through ``image_transform`` (default :func:`grayscale_tensor`, the built-in tasks' uint8 images).

    ``labels`` are class indices (int) or, for a regression, float targets.
    """
    indices = np.asarray(indices)
    labels = data.labels[indices]
    if data.kind == "image":
        return ImageDataset(data.inputs, indices, labels, image_transform or grayscale_tensor)
    texts = [data.inputs[i] for i in indices]
    pairs = [data.pairs[i] for i in indices] if data.pairs is not None else None
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    cut = _truncated_lengths(tokenizer, texts, pairs, enc["input_ids"], max_length)
    keys = list(enc.keys())
    items = [{**{k: enc[k][j] for k in keys}, "labels": labels[j].item()} for j in range(len(texts))]
    return EncodedDataset(items, truncated=len(cut), longest=max(cut, default=0))


def _truncated_lengths(tokenizer, texts: list[str], pairs: list[str] | None, ids: list[list[int]],
                       max_length: int) -> list[int]:
    """Full token counts of the texts (or text pairs) that truncation cut. Only those that fill ``max_length``
    after truncation are tokenised again, in full."""
    full = [i for i, row in enumerate(ids) if len(row) >= max_length]
    if not full:
        return []
    second = [pairs[i] for i in full] if pairs is not None else None
    lengths = [len(row) for row in tokenizer([texts[i] for i in full], second, truncation=False)["input_ids"]]
    return [n for n in lengths if n > max_length]


def warn_truncated(datasets: list[EncodedDataset], max_length: int, name: str) -> None:
    """One HoraWarning when any text of ``datasets`` was cut to ``max_length`` tokens."""
    cut = sum(ds.truncated for ds in datasets)
    if cut:
        total = sum(len(ds) for ds in datasets)
        longest = max(ds.longest for ds in datasets)
        warnings.warn(f"{cut} of {total} texts of {name} are longer than {max_length} tokens (longest {longest}) "
                      f"and were truncated to {max_length}; raise --max-length to keep more", TruncationWarning,
                      stacklevel=2)
