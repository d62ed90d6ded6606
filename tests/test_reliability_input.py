"""Bad input ends in one line on stderr and exit code 1 (2 for usage errors), never a
traceback, and nothing starts before the input is known good."""

from __future__ import annotations

import gzip
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pyro_cvae.cli.main import cli

from .conftest import idx_bytes, write_dataset, write_idx


def fails(*args, code: int = 1, match: str = "", alone: bool = True):
    """Run the CLI, expecting exit `code` and an `Error: ...` line matching `match` last on
    stderr (the only line there when `alone`), with no traceback anywhere."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output and lines, result.output
    if alone:
        assert len(lines) == 1, result.stderr
    assert lines[-1].startswith("Error: ") and re.search(match, lines[-1]), lines[-1]
    return result


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("clean") / "mnist", 300, 100)


@pytest.fixture
def data(clean_data, tmp_path):
    """A fresh copy of a small, valid dataset folder, for one test to damage."""
    return shutil.copytree(clean_data, tmp_path / "mnist")


def train(data_dir, tmp_path, *more):
    return (
        "train",
        "--data-dir",
        data_dir,
        "--epochs",
        1,
        "--hidden",
        "32,16",
        "--out",
        tmp_path / "run",
        "--device",
        "cpu",
        *more,
    )


def test_missing_data_folder_is_refused_before_anything_starts(tmp_path):
    fails(*train(tmp_path / "nowhere", tmp_path), code=2, match="does not exist")
    assert not (tmp_path / "run").exists()


def test_wrong_data_folder_names_the_missing_files_and_the_fix(tmp_path):
    (tmp_path / "photos").mkdir()
    fails(*train(tmp_path / "photos", tmp_path), match="missing train-images.*pyro-cvae download")
    assert not (tmp_path / "run").exists()


def test_missing_data_file_is_named(data, tmp_path):
    (data / "t10k-images-idx3-ubyte.gz").unlink()
    fails(*train(data, tmp_path), match="missing t10k-images-idx3-ubyte.gz")


IMAGES = np.zeros((300, 28, 28), np.uint8)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x08\x03\x00\x00" + bytes(100), "not an IDX file \\(bad magic"),
        (b"%PDF-1.4 not data at all", "not an IDX file"),
        (bytes([0, 0, 8, 7]) + bytes(40), "not an IDX file \\(7 dimensions"),
        (gzip.compress(idx_bytes(IMAGES.reshape(300, 784))), "expected grey images of shape"),
        (gzip.compress(idx_bytes(IMAGES)[:-100]), "truncated IDX file"),
        (gzip.compress(idx_bytes(IMAGES) + b"xx"), "2 unexpected bytes"),
        (gzip.compress(idx_bytes(IMAGES)) + b"garbage!", "corrupt gzip"),
        (gzip.compress(idx_bytes(IMAGES))[:-30], "corrupt gzip"),
        (b"\x1f\x8b" + bytes(50), "corrupt gzip"),
        (b"", "the file is empty"),
    ],
    ids=[
        "bad-magic",
        "not-idx",
        "dimensions",
        "image-shape",
        "truncated",
        "trailing-bytes",
        "garbage-after-gzip",
        "truncated-gzip",
        "corrupt-gzip",
        "empty",
    ],
)
def test_a_file_that_is_not_idx_is_refused_with_the_reason(data, tmp_path, content, match):
    (data / "train-images-idx3-ubyte.gz").write_bytes(content)
    fails(*train(data, tmp_path), match="train-images-idx3-ubyte.gz: " + match)
    assert not (tmp_path / "run").exists()


def test_image_and_label_counts_must_agree(data, tmp_path):
    write_idx(data / "train-labels-idx1-ubyte.gz", np.zeros(299, np.uint8))
    fails(*train(data, tmp_path), match="300 images but train-labels-idx1-ubyte.gz has 299")


def test_labels_outside_0_to_9_are_refused(data, tmp_path):
    labels = np.zeros(100, np.uint8)
    labels[7] = 10
    write_idx(data / "t10k-labels-idx1-ubyte.gz", labels)
    fails(*train(data, tmp_path), match="label 10 is outside 0..9")


def test_labels_that_are_not_whole_numbers_are_refused(data, tmp_path):
    write_idx(data / "train-labels-idx1-ubyte.gz", np.full(300, 0.5, np.float32))
    fails(*train(data, tmp_path), match="expected a 1-D array of integer labels")


def test_an_empty_split_is_refused(data, tmp_path):
    write_idx(data / "t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(data / "t10k-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    fails(*train(data, tmp_path), match="holds no images")


def test_a_label_option_that_is_not_a_number_is_a_usage_error(small_run, tmp_path):
    fails(
        "sample",
        small_run,
        "--label",
        "seven",
        "--out",
        tmp_path / "s",
        code=2,
        match="label .seven. is not a class of this run; its classes are 0, 1, 2",
    )
    fails(
        "sample",
        small_run,
        "--label",
        "12",
        "--out",
        tmp_path / "s",
        code=2,
        match="label .12. is not a class of this run",
    )


@pytest.mark.parametrize(
    "args, match",
    [
        (
            ("sample", "RUN", "--label", "1", "--n", "0", "--out", "OUT"),
            "--n.*0 is not in the range",
        ),
        (("train", "--epochs", "0", "--out", "OUT"), "--epochs.*0 is not in the range"),
        (("train", "--epochs", "-3", "--out", "OUT"), "--epochs"),
        (("train", "--hidden", "32,x", "--out", "OUT"), "--hidden"),
        (("train", "--lr", "0", "--out", "OUT"), "--lr"),
        (("train", "--condition", "pixel", "--out", "OUT"), "--condition"),
        (
            ("classify", "RUN", "--input", "RUN/model.pt", "--rounds", "0", "--out", "OUT"),
            "--rounds.*0 is not in the range",
        ),
    ],
)
def test_options_out_of_range_are_usage_errors(small_run, tmp_path, args, match):
    paths = {"RUN": small_run, "RUN/model.pt": small_run / "model.pt", "OUT": tmp_path / "out"}
    args = [paths.get(a, a) for a in args]
    fails(*args, code=2, match=match)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.npy").exists()


def test_an_unwritable_output_path_is_refused_before_work_starts(small_run, tmp_path):
    fails(
        "sample",
        small_run,
        "--label",
        "1",
        "--out",
        tmp_path / "no" / "such" / "s",
        code=2,
        match="folder .* does not exist",
    )
    fails("sample", small_run, "--label", "1", "--out", tmp_path, code=2, match="is a directory")


def png(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def inpaint(run_dir, tmp_path, *, mask="top-half", input=None, labels=None):
    args = ["inpaint", run_dir, "--mask", mask, "--out", tmp_path / "out"]
    args += [
        "--input",
        input if input is not None else png(tmp_path / "in.png", np.zeros((28, 28), np.uint8)),
    ]
    return args + (["--labels", labels] if labels is not None else [])


def test_an_unknown_mask_name_is_refused(small_run, tmp_path):
    fails(*inpaint(small_run, tmp_path, mask="top-halve"), match="unknown mask 'top-halve'")


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda p: png(p, np.full((30, 30), 255, np.uint8)),
            "must be 28x28 like the images, got 30x30",
        ),
        (lambda p: png(p, np.zeros((28, 28), np.uint8)), "no white \\(hole\\) pixels"),
        (lambda p: p.write_bytes(b""), "not a readable PNG or JPEG image"),
        (lambda p: p.write_text("not an image"), "not a readable PNG or JPEG image"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["30x30", "no-hole", "empty-file", "text", "folder"],
)
def test_a_bad_mask_image_is_refused(small_run, tmp_path, make, match):
    make(tmp_path / "mask.png")
    fails(*inpaint(small_run, tmp_path, mask=tmp_path / "mask.png"), match=match)


def save_npy(path, array):
    np.save(path, array)
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda p: png(p.with_suffix(".png"), np.zeros((30, 30), np.uint8)),
            "the images are 30x30 grey but the run was trained on 28x28 grey",
        ),
        (
            lambda p: png(p.with_suffix(".png"), np.zeros((28, 30, 3), np.uint8)),
            "the images are 30x28 grey but the run was trained on 28x28 grey",
        ),
        (lambda p: p.with_suffix(".png").write_bytes(b"\x89PNG\r\n\x1a\n"), "not a readable PNG"),
        (lambda p: p.with_suffix(".png").write_text("hello"), "not a readable PNG"),
        (
            lambda p: save_npy(p.with_suffix(".npy"), np.zeros((3, 28, 27))),
            "the images are 27x28 grey but the run was trained on 28x28 grey",
        ),
        (lambda p: save_npy(p.with_suffix(".npy"), np.zeros((0, 28, 28))), "got \\[0, 28, 28\\]"),
        (
            lambda p: save_npy(p.with_suffix(".npy"), np.zeros((28, 28), bool)),
            "expected numbers, got dtype bool",
        ),
        (lambda p: save_npy(p.with_suffix(".npy"), np.full((28, 28), "x")), "expected numbers"),
        (lambda p: save_npy(p.with_suffix(".npy"), np.full((28, 28), np.nan)), "NaN"),
        (lambda p: save_npy(p.with_suffix(".npy"), np.full((28, 28), 300.0)), "0..255"),
        (
            lambda p: (
                np.savez(p.with_suffix(".npz"), x=1)
                or p.with_suffix(".npz").rename(p.with_suffix(".npy"))
            ),
            "not an .npy file",
        ),
        (
            lambda p: p.with_suffix(".npy").write_bytes(b"\x93NUMPY\x01\x00garbage"),
            "not a readable .npy file",
        ),
        (
            lambda p: write_idx(p.with_suffix(".gz"), np.zeros((2, 30, 30), np.uint8)),
            "the images are 30x30 grey but the run was trained on 28x28 grey",
        ),
    ],
    ids=[
        "png-30x30",
        "png-colour-30x28",
        "png-truncated",
        "png-text",
        "npy-shape",
        "npy-empty",
        "npy-bool",
        "npy-strings",
        "npy-nan",
        "npy-range",
        "npz",
        "npy-garbage",
        "idx-shape",
    ],
)
def test_a_bad_input_image_file_is_refused(small_run, tmp_path, make, match):
    make(tmp_path / "input")
    (path,) = tmp_path.glob("input.*")
    fails(*inpaint(small_run, tmp_path, input=path), match=match)


def test_missing_input_file_is_refused(small_run, tmp_path):
    result = CliRunner().invoke(
        cli, [str(a) for a in inpaint(small_run, tmp_path, input=tmp_path / "nope.png")]
    )
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert result.stderr.startswith("Error: ") and "nope.png" in result.stderr


@pytest.mark.parametrize(
    "array, match",
    [
        (np.array(["1", "x"]), "expected a 1-D array of integer labels"),
        (np.array([1.0, 2.0]), "expected a 1-D array of integer labels"),
        (np.array([3, 11]), "label 11 is outside 0..9"),
        (np.array([[1, 2]]), "expected a 1-D array"),
    ],
)
def test_bad_label_files_are_refused(small_run, tmp_path, array, match):
    images = save_npy(tmp_path / "in.npy", np.zeros((2, 28, 28), np.float32))
    labels = save_npy(tmp_path / "labels.npy", array)
    fails(*inpaint(small_run, tmp_path, input=images, labels=labels), match=match)
