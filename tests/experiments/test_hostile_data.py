"""Hostile data files: each is one clear line on stderr, exit status 2, and no output folder; texts longer
than --max-length (or the model) are truncated with a one-line warning."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from hora.cli import app
from hora.experiments.data import tasks
from hora.experiments.errors import HoraError

runner = CliRunner()


def _train(tiny_bert, data, out, *extra):
    return runner.invoke(app, ["train", "--model", str(tiny_bert), "--data", str(data), "--text-column", "review",
                               "--label-column", "sentiment", "--batch-size", "8", "--max-length", "16",
                               "--no-progress", "--steps", "1", "--no-save", "--output", str(out), *extra])


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.output)
    err = result.stderr.strip()
    assert err.startswith("hora: error: ") and "\n" not in err and "Traceback" not in result.output, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.csv", b"", "is empty"),
    ("blank.jsonl", b"\n  \n", "is empty"),
    ("header.csv", b"review,sentiment\n", "has no data rows"),
    ("latin1.csv", "review,sentiment\ngood film,pos\nbad café film,neg\n".encode("latin-1"),
     "is not UTF-8 text: byte 0xe9 at line 3, column 8 (byte offset 38)"),
    ("utf16.jsonl", '{"review": "good", "sentiment": "pos"}\n'.encode("utf-16"),
     "is not UTF-8 text: byte 0xff at line 1"),
    ("few.csv", b"review,sentiment\ngood,pos\nbad,neg\nfine,pos\ndull,neg\n", "too few to split"),
])
def test_bad_data_files_fail_with_one_line(tiny_bert, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    _one_line_error(_train(tiny_bert, path, out), message)
    assert not out.exists()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 64])
def test_utf8_check_locates_the_bad_byte_across_chunks(tmp_path, chunk_size):
    good = "naïve,😀 ünïcode\nline two ✓\n".encode()
    path = tmp_path / "x.csv"
    path.write_bytes(good + b"third \xc3\x28 line\n")
    with pytest.raises(HoraError, match=rf"line 3, column 7 \(byte offset {len(good) + 6}\)"):
        tasks.check_utf8(path, chunk_size=chunk_size)
    path.write_bytes(good)
    tasks.check_utf8(path, chunk_size=chunk_size)  # valid multi-byte text split across chunks passes


def test_long_texts_are_truncated_with_a_warning(tiny_bert, tiny_csv, tmp_path):
    rows = pd.read_csv(tiny_csv).head(60)
    rows.loc[:4, "review"] = [" ".join([text] * 40) for text in rows["review"][:5]]  # 200 words
    path = tmp_path / "long.csv"
    rows.to_csv(path, index=False)
    result = _train(tiny_bert, path, tmp_path / "a")
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.startswith("hora: warning:")]
    assert len(warning) == 1 and "5 of 60 texts" in warning[0] and "truncated to 16" in warning[0], result.stderr
    assert "longest 202" in warning[0]  # 200 words + [CLS] + [SEP]

    # above the model's own limit (the tiny BERT has 64 positions): capped, not a crash
    result = _train(tiny_bert, path, tmp_path / "b", "--max-length", "100000")
    assert result.exit_code == 0, result.output
    assert "above the model's limit of 64 tokens; using 64" in result.stderr
    assert "truncated to 64" in result.stderr
