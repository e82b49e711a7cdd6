"""The one place that turns a data source into :class:`~hora.experiments.data.tasks.Splits`.

A source (:class:`DataSource`, built from a run's settings by ``TrainConfig.data_source()``) is
    a built-in task        ``--task rotten_tomatoes|mnist|fashion_mnist`` (:mod:`hora.experiments.data.tasks`);
    a local table file     ``--data`` or ``--dataset`` PATH.csv / .tsv / .jsonl (read by ``tasks.read_table``,
                           UTF-8 checked);
    a ``datasets`` dataset ``--dataset`` a Hub dataset ID (``--dataset-config`` its configuration; downloaded
                           and cached by ``datasets`` as usual, read from its cache when offline), a local
                           folder (data files, or a folder written by ``save_to_disk``) or a local
                           .parquet / .json / .arrow file.
Whatever the source, its columns play roles: ``--text-columns a`` or ``a,b`` (a sentence pair, tokenised as a
pair), ``--image-column`` (any image feature; the model's image processor reads it), ``--label-column`` (class
names from a ``ClassLabel`` feature, else the sorted distinct values; a float column is a regression target,
e.g. STS-B's similarity score: in a CSV/JSON Lines file, one with non-integer values), or for ``--objective
sft`` ``--prompt-column`` and ``--answer-column``. The result is one :class:`~hora.experiments.data.tasks.TaskData`
holding the examples of every split used, and the indices of each split into it. A row whose text (or prompt,
or answer) is empty or blank, or whose label is missing, is left out; the rows left out are counted by reason in
``TaskData.dropped`` (a run's metrics.json records it as ``dropped_rows``) and said in one warning.

The fixed split rule fills in the splits a source lacks. The source's ``--train-split`` (default ``train``) is
required; ``--validation-split`` (default ``validation``) and ``--test-split`` (default ``test``) are used when
the source has them (``none`` says: do not use it). From the train split the rule takes, stratified by class and
seeded by ``split_seed`` only, the missing test split (20 %) and then the missing validation split (10 % of the
rest): :func:`hora.experiments.data.tasks.split_indices`. A source of one table (a built-in task, a CSV file) is
thus split 72 / 8 / 20 exactly as before this module existed; a source with train and test gets its validation
split from train; a source with all three keeps them as published. A split whose every label is missing (GLUE's
test splits, labelled -1) is refused with the option that chooses another.

A run then takes from the splits what its settings ask (:func:`run_indices`): the data fraction of train
(stratified, seeded by the run seed) and optionally a fixed random subset of validation and test.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hora.experiments.data import commonsense, filelist, metamathqa, tasks
from hora.experiments.errors import HoraError, HoraWarning

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")  # read by tasks.read_table (UTF-8 checked)
DATASETS_BUILDERS = {".parquet": "parquet", ".json": "json", ".arrow": "arrow"}  # read by datasets
NO_SPLIT = ("", "none")
# --prompt-template: name -> the prompt built from the prompt column's text
PROMPT_TEMPLATES = {"llm-adapters": commonsense.prompt, "peft-metamathqa": metamathqa.prompt}


@dataclass(frozen=True)
class DataSource:
    """Where a run's examples come from and which column plays which role (see the module docstring)."""

    task: str = "rotten_tomatoes"
    dataset: str | None = None
    config: str | None = None
    text_columns: tuple[str, ...] = ("text",)
    label_column: str = "label"
    image_column: str | None = None
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    objective: str = "classify"
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    split_seed: int = 0
    prompt_template: str | None = None
    test_from_train: bool = True  # a missing test split is taken from train (False: further test sets score)

    @property
    def name(self) -> str:
        """The data's name in reports: the task, the file's stem, or the dataset ID (with its config)."""
        if self.dataset is None:
            return self.task
        path = Path(self.dataset).expanduser()
        name = path.stem if path.is_file() else path.name if path.is_dir() else self.dataset
        return f"{name}:{self.config}" if self.config else name

    @property
    def kind(self) -> str:
        """"image" when the examples are images (a built-in image task or ``--image-column``), else "text"."""
        if self.dataset is None:
            return "image" if self.task in tasks.IMAGE_TASKS else "text"
        return "image" if self.image_column else "text"


def parse_columns(text: str) -> tuple[str, ...]:
    """'premise,hypothesis' -> ('premise', 'hypothesis'): one text column, or two for sentence pairs."""
    columns = tuple(c.strip() for c in str(text).split(",") if c.strip())
    if not 1 <= len(columns) <= 2:
        raise HoraError(f"--text-columns takes one column or two (a sentence pair) separated by a comma, got '{text}'")
    return columns


def check_template(name: str) -> str:
    """``name`` if it is a prompt template (:data:`PROMPT_TEMPLATES`), else a one-line error naming them."""
    if name not in PROMPT_TEMPLATES:
        raise HoraError(f"unknown prompt template '{name}': choose one of {', '.join(PROMPT_TEMPLATES)}")
    return name


def parse_test_sets(text: str) -> dict[str, str]:
    """'boolq=a.json,piqa=b.json' -> {'boolq': 'a.json', 'piqa': 'b.json'}, with a one-line error on a bad item."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    pairs = [item.partition("=") for item in items]
    bad = [item for item, (name, eq, where) in zip(items, pairs, strict=True) if not (name.strip() and eq and where)]
    if not items or bad:
        raise HoraError(f"--test-sets takes a comma list of NAME=SOURCE, got '{bad[0] if bad else text}'")
    names = [name.strip() for name, _, _ in pairs]
    if len(set(names)) != len(names):
        raise HoraError(f"--test-sets names a test set twice: {text}")
    return {name.strip(): where.strip() for name, _, where in pairs}


def load_test_set(source: DataSource, where: str) -> tasks.TaskData:
    """The examples of a further test set at ``where`` (a file, folder or Hub ID with ``source``'s columns): its
    ``source.test_split`` when it has one, else its only split. Classes must be the run's (checked by the caller)."""
    tested = replace(source, dataset=where, config=None)
    tables = _read_tables(tested)
    if source.test_split in tables:
        table = tables[source.test_split]
    elif len(tables) == 1:
        table = next(iter(tables.values()))
    else:
        raise HoraError(f"test set {where} has splits {', '.join(tables)} and no '{source.test_split}': give a "
                        "file or a dataset with one split")
    data, _ = _examples({"test": table}, _roles(tested), tested, {"test": source.test_split})
    return data


def load_splits(source: DataSource) -> tasks.Splits:
    """The examples of ``source`` and their train / validation / test indices (the fixed split rule fills in
    missing splits; see the module docstring)."""
    data, given = _read(source)
    return _split(data, given, source)


def run_indices(splits: tasks.Splits, fraction: float, seed: int,
                max_eval_samples: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) indices of one run: ``fraction`` of train (stratified, seeded by ``seed``),
    and at most ``max_eval_samples`` random but fixed examples of validation and test."""
    data, split_seed = splits.data, splits.meta["split_seed"]
    train = tasks.subsample(splits.train, data.strata, fraction, seed, data.label_names)
    val, test = (tasks.eval_subset(idx, max_eval_samples, split_seed) for idx in (splits.val, splits.test))
    return train, val, test


# --------------------------------------------------------------------------- the fixed split rule


def _split(data: tasks.TaskData, given: dict[str, np.ndarray], source: DataSource) -> tasks.Splits:
    """Train / validation / test indices: the given ones, the missing ones taken from train by the rule."""
    pool = given["train"]
    has_val, has_test = "validation" in given, "test" in given
    inner = tasks.split_indices(data.strata[pool], source.split_seed,
                                test_size=0.0 if has_test else tasks.TEST_SIZE,
                                val_size=0.0 if has_val else tasks.VAL_SIZE)
    if not has_test and not source.test_from_train:  # further test sets score the run: train keeps these
        inner = tasks.split_indices(data.strata[pool], source.split_seed, test_size=0.0,
                                    val_size=0.0 if has_val else tasks.VAL_SIZE)
    train = pool[inner.train]
    val = given["validation"] if has_val else pool[inner.val]
    test = given["test"] if has_test else pool[inner.test]
    if len(train) == 0 or (len(test) == 0 and source.test_from_train):
        raise HoraError(f"{len(data)} examples are too few to split into train / validation / test; "
                        "give at least 3 examples of every class")
    meta = {"split_seed": source.split_seed, "given": sorted(given), "test_size": tasks.TEST_SIZE,
            "val_size": tasks.VAL_SIZE}
    return tasks.Splits(train, val, test, meta=meta, data=data)


# --------------------------------------------------------------------------- reading a source


def _read(source: DataSource) -> tuple[tasks.TaskData, dict[str, np.ndarray]]:
    """The examples of every split used, in one TaskData, and each split's indices into it (keys among
    train / validation / test)."""
    if source.dataset is None:
        data = tasks.load_prompt_task(source.task) if source.objective == "sft" else tasks.load_task(source.task)
        return data, {"train": np.arange(len(data))}
    tables = _read_tables(source)
    roles = _roles(source)
    names = {"train": source.train_split, "validation": source.validation_split, "test": source.test_split}
    if source.train_split not in tables:
        raise HoraError(f"{source.name} has no split '{source.train_split}'; its splits are: "
                        f"{', '.join(tables)} (choose one with --train-split)")
    used = {role: tables[name] for role, name in names.items() if name.lower() not in NO_SPLIT and name in tables}
    for role, table in used.items():
        missing = [c for c in roles.values() if c not in table.column_names]
        if missing:
            raise HoraError(f"column '{missing[0]}' not in split '{names[role]}' of {source.name}; columns are: "
                            f"{', '.join(table.column_names)}")
    return _examples(used, roles, source, names)


def _roles(source: DataSource) -> dict[str, str]:
    """Role -> column name, for the objective and kind of ``source``."""
    if source.objective == "sft":
        return {"prompt": source.prompt_column, "answer": source.answer_column}
    if source.image_column:
        return {"image": source.image_column, "label": source.label_column}
    roles = {"text": source.text_columns[0], "label": source.label_column}
    if len(source.text_columns) == 2:
        roles["pair"] = source.text_columns[1]
    return roles


def _read_tables(source: DataSource) -> dict:
    """Split name -> ``datasets.Dataset`` of the source (a local table file is one split, ``train``)."""
    import datasets
    from datasets.utils import disable_progress_bars, enable_progress_bars, is_progress_bar_enabled

    path = Path(source.dataset).expanduser()
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        return {"train": _table_file(path, source)}
    if filelist.is_filelist_folder(path, source.train_split):  # images listed in <split>.txt files (VTAB-1k)
        return filelist.read_filelist_folder(path)
    if metamathqa.is_folder(path):  # MetaMathQA and GSM8K as PEFT's method comparison splits them
        return metamathqa.read_folder(path)
    shown = is_progress_bar_enabled()
    if path.exists():  # a local source is read in a moment: no "Generating train split" bars (a download keeps them)
        disable_progress_bars()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
        elif path.is_file():
            builder = DATASETS_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise HoraError(f"unsupported data file type '{path.suffix}': use .csv, .tsv, .jsonl, .json, "
                                ".parquet or .arrow, or a dataset folder or Hub ID")
            loaded = datasets.load_dataset(builder, data_files=str(path))
        else:
            loaded = datasets.load_dataset(str(path) if path.is_dir() else source.dataset, name=source.config)
    except HoraError:
        raise
    except Exception as exc:  # datasets raises many kinds (not found, offline, bad config): report one line
        raise HoraError(_load_failure(source, exc)) from None
    finally:
        if shown:
            enable_progress_bars()
    return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}


def _load_failure(source: DataSource, exc: Exception) -> str:
    """One line for a dataset that ``datasets`` could not load, with what to do when offline."""
    from datasets import config

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    message = f"could not load dataset '{source.dataset}'" + (f" (config '{source.config}')" if source.config else "")
    if config.HF_HUB_OFFLINE and not Path(source.dataset).expanduser().exists():  # HF_(HUB|DATASETS)_OFFLINE
        return (f"{message}: it is not in the datasets cache and HF_HUB_OFFLINE=1 is set; fetch it once with network "
                f"(python -c \"import datasets; datasets.load_dataset('{source.dataset}'"
                + (f", '{source.config}'" if source.config else "") + ")\") or pass a local folder or file")
    return f"{message}: {first}"


def _table_file(path: Path, source: DataSource):
    """A CSV / TSV / JSON Lines file as a ``datasets.Dataset`` of its used columns: texts, prompts and answers
    as strings; the label as floats when it holds non-integer numbers (a regression), else as strings."""
    import datasets

    roles = _roles(source)
    df = tasks.read_table(path, roles, as_written=source.objective == "sft")
    columns = {}
    for role, column in roles.items():
        values = df[column]
        given = values.dropna().to_numpy()
        numeric = role == "label" and values.dtype.kind == "f" and not np.all(np.mod(given, 1) == 0)
        columns[column] = (values.astype(float).tolist() if numeric  # an empty cell: NaN, a missing target
                           else [None if missing else str(v) for v, missing in zip(values, values.isna(), strict=True)])
    return datasets.Dataset.from_dict(columns)


def _examples(tables: dict, roles: dict[str, str], source: DataSource,
              names: dict[str, str]) -> tuple[tasks.TaskData, dict[str, np.ndarray]]:
    """One TaskData of the ``tables`` (split role -> ``datasets.Dataset``) and each split's indices into it;
    rows with an empty text, prompt or answer or without a label are left out and counted (:func:`_dropped`;
    a split with no label at all is refused)."""
    import datasets

    order = list(tables)
    table = datasets.concatenate_datasets([tables[r].select_columns(list(dict.fromkeys(roles.values())))
                                           for r in order])
    bounds = np.cumsum([0] + [len(tables[r]) for r in order])
    given = {role: np.arange(bounds[i], bounds[i + 1]) for i, role in enumerate(order)}
    labels = label_names = regression = None
    labelled = np.ones(len(table), dtype=bool)
    if source.objective != "sft":
        labels, label_names, regression = _labels(table, roles["label"], source)
        labelled = np.isfinite(labels) if regression else labels >= 0
    for role, rows in given.items():
        if len(rows) and not labelled[rows].any():
            option = {"train": "--train-split", "validation": "--validation-split", "test": "--test-split"}[role]
            raise HoraError(f"split '{names[role]}' of {source.name} has no labels in column "
                            f"'{source.label_column}' (as GLUE's test splits): choose another with {option} "
                            f"(or {option} none to take it from the train split)")
    keep, dropped = _dropped(table, roles, labelled, source.name)
    if not keep.all():  # leave the dropped rows out and renumber the splits' indices
        position = np.cumsum(keep) - 1
        given = {role: position[rows[keep[rows]]] for role, rows in given.items()}
        table = table.select(np.flatnonzero(keep))
        labels = labels[keep] if labels is not None else None
    if source.objective == "sft":
        return replace(_prompt_data(table, roles, source), dropped=dropped), given
    if "image" in roles:  # a lazy column: each image is decoded when the Trainer asks for it
        data = tasks.TaskData(source.name, "image", table[roles["image"]], labels, label_names,
                              source=source.dataset, regression=regression, dropped=dropped)
    else:
        texts = [str(t) for t in table[roles["text"]]]
        pairs = [str(t) for t in table[roles["pair"]]] if "pair" in roles else None
        data = tasks.TaskData(source.name, "text", texts, labels, label_names, source=source.dataset, pairs=pairs,
                              regression=regression, dropped=dropped)
    return data, given


# role -> what a row whose cell of that role is empty lacks
EMPTY_CELL = {"text": "text", "pair": "text", "prompt": "prompt", "answer": "answer"}


def _dropped(table, roles: dict[str, str], labelled: np.ndarray, name: str) -> tuple[np.ndarray, dict[str, int]]:
    """(rows kept, rows dropped by reason): a row is dropped for an empty or blank text (either text of a pair),
    prompt or answer, or for a missing label (``labelled`` False); each dropped row is counted once, under its
    first reason, and one warning says how many were dropped ("3 rows with an empty text were dropped from
    NAME (of 696)"). A source left with no row is a one-line error."""
    counted = np.zeros(len(table), dtype=bool)
    dropped: dict[str, int] = {}
    reasons = [(f"empty {what}", np.array([v is None or not str(v).strip() for v in table[roles[role]]], dtype=bool))
               for role, what in EMPTY_CELL.items() if role in roles]
    for reason, mask in [*reasons, ("empty label", ~labelled)]:
        new = mask & ~counted
        if new.any():
            dropped[reason] = dropped.get(reason, 0) + int(new.sum())
        counted |= mask
    if dropped:
        parts = " and ".join(f"{n} row{'s' if n > 1 else ''} with an {reason}" for reason, n in dropped.items())
        if counted.all():
            raise HoraError(f"every row of {name} was dropped: {parts}; check --text-columns and --label-column")
        verb = "were" if sum(dropped.values()) > 1 else "was"
        warnings.warn(f"{parts} {verb} dropped from {name} (of {len(table)} rows)", HoraWarning, stacklevel=3)
    return ~counted, dropped


def _labels(table, column: str, source: DataSource) -> tuple[np.ndarray, list[str], bool]:
    """(labels, class names, regression): class indices from a ``ClassLabel`` feature or from the sorted distinct
    values (-1 where missing), or float targets of a float column (NaN where missing, no class names)."""
    from datasets import ClassLabel, Value

    feature, raw = table.features[column], table[column]
    if isinstance(feature, Value) and feature.dtype.startswith("float"):
        return np.array([math.nan if y is None else y for y in raw], dtype=np.float32), [], True
    if isinstance(feature, ClassLabel):
        labels, names = np.array([-1 if y is None else y for y in raw], dtype=np.int64), list(feature.names)
    else:
        values = list(raw)
        _, names = tasks.encode_labels([y for y in values if y is not None])
        index = {n: i for i, n in enumerate(names)}
        labels = np.array([-1 if y is None else index[str(y)] for y in values], dtype=np.int64)
    if len(names) < 2:
        raise HoraError(f"label column '{column}' of {source.name} has a single class ({', '.join(names) or 'none'}); "
                        "need at least 2")
    return labels, names, False


def _prompt_data(table, roles: dict[str, str], source: DataSource) -> tasks.PromptData:
    """Prompts and the answers to generate after them, as written; stratified as :func:`tasks.answer_strata`."""
    prompts = [str(p) for p in table[roles["prompt"]]]
    if source.prompt_template is not None:
        prompts = [PROMPT_TEMPLATES[source.prompt_template](p) for p in prompts]
    answers = [str(a) for a in table[roles["answer"]]]
    labels, names = tasks.answer_strata(answers)
    return tasks.PromptData(source.name, "text", prompts, labels, names, source=source.dataset, answers=answers)
