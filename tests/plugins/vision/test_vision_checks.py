"""The image formats' cheap ``check`` (``ft validate``): each data mistake is a
DataError naming the file and line with what to do, the repo's recipe data is
described, ``skip_bad`` counts bad files in the check and the build alike, and
a truncated JPEG (PIL fails only when its pixels load) is skipped and
counted before training with ``skip_bad``, or a clear error without it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import ft
from ft._registry import get_registry
from ft.contracts import BuildContext
from ft.engine import check_data
from ft.errors import DataError
from ft.plugins.vision.backbones import TimmOptions, build_timm
from ft.plugins.vision.folders import CsvOptions, FolderOptions, build_csv, build_folder
from ft.recipe import load_recipe

from vision_testkit import needs_fashion_mnist, write_idx

CTX = BuildContext(load_pretrained=False)
SIZE = 32
REPO_RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "fashion_mnist.toml"


@pytest.fixture(scope="module")
def backbone():
    return build_timm(TimmOptions.model_validate({"model": "test_efficientnet", "weights": "random",
                                                  "image_size": SIZE, "crop_pct": 1.0}), CTX)


def check(fmt: str, **options) -> str:
    """The registered format's check, as ``ft validate`` calls it."""
    spec = get_registry().get("ft_dataset_formats", fmt)
    return spec.check(spec.options.model_validate(options), CTX)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])


@needs_fashion_mnist
def test_repo_fashion_mnist_recipe_is_described():
    described = check_data(load_recipe(REPO_RECIPE))
    assert described == "60,000 train / 10,000 test images of 28x28, 10 classes"


def test_image_folder_mistakes_name_the_folder(shapes_folder, tmp_path):
    root = shapes_folder(n_per_class=3)
    assert check("image_folder", path=str(root)) == "9 images in 3 classes (9 train); 8 of 8 sampled images decode"
    an_image = root / "circle" / "circle_000.png"
    with pytest.raises(DataError, match="found a file") as err:
        check("image_folder", path=str(an_image))
    assert err.value.where == str(an_image) and 'data.format = "image_csv"' in err.value.hint
    (root / "hexagon").mkdir()
    with pytest.raises(DataError, match="class folder 'hexagon' has no images") as err:
        check("image_folder", path=str(root))
    assert err.value.where == str(root / "hexagon") and "remove the empty folder" in err.value.hint
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no class sub-folders") as err:
        check("image_folder", path=str(empty))
    assert err.value.where == str(empty) and "ROOT/<class>/<image>" in err.value.hint
    with pytest.raises(DataError, match="no class sub-folders") as err:
        check("image_folder", path=str(root / "circle"))
    assert "move its 3 images into one sub-folder per class" in err.value.hint


def write_lines(path, text: str):
    path.write_text(text)
    return path


def test_image_csv_file_mistakes_name_file_and_line(shapes_folder, tmp_path):
    shapes_folder(n_per_class=2)
    m = tmp_path / "labels.csv"
    with pytest.raises(DataError, match="the CSV is empty") as err:
        check("image_csv", path=str(write_lines(m, "\n")))
    assert err.value.where == str(m) and "path,label" in err.value.hint
    with pytest.raises(DataError, match="a header line but no rows"):
        check("image_csv", path=str(write_lines(m, "path,label,split\n")))
    with pytest.raises(DataError, match="needs columns path and label") as err:
        check("image_csv", path=str(write_lines(m, "file,label\nshapes/circle/circle_000.png,circle\n")))
    assert err.value.where == f"{m}: line 1" and "path,label[,split]" in err.value.hint
    with pytest.raises(DataError, match="expected a CSV file, found a folder") as err:
        check("image_csv", path=str(tmp_path))
    assert 'data.format = "image_folder"' in err.value.hint
    write_lines(m, "path,label,split\nshapes/circle/circle_000.png,circle,\nshapes/square/square_000.png,square,"
                   "holdout\n")
    with pytest.raises(DataError, match="unknown split 'holdout'") as err:
        check("image_csv", path=str(m))
    assert err.value.where == f"{m}: line 3" and "train, val or test" in err.value.hint
    write_lines(m, 'path,label\n\n"shapes/circle/circle_000.png,circle\nshapes/square/square_000.png,square\n')
    with pytest.raises(DataError, match="a quote opened on this line is never closed") as err:
        check("image_csv", path=str(m))
    assert err.value.where == f"{m}: line 3"
    m.write_bytes(b"path,label\nshapes/circle/circle_000.png,circle\n\nshapes/square/square_000.png,sq\xfcare\n")
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 0xfc\)") as err:
        check("image_csv", path=str(m))
    assert err.value.where == f"{m}: line 4" and "UTF-8" in err.value.hint


def test_image_csv_missing_files_counted_with_lines(shapes_folder, tmp_path, backbone):
    root = shapes_folder(n_per_class=3)
    rows = [f"{p.relative_to(tmp_path)},{p.parent.name}" for p in sorted(root.rglob("*.*"))]
    rows[2:2] = [f"shapes/circle/gone_{i}.png,circle" for i in range(6)]  # lines 4-9
    m = write_lines(tmp_path / "labels.csv", "path,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        check("image_csv", path=str(m))
    assert err.value.where == str(m)
    assert err.value.message == ("6 of 15 image files not found: line 4 (shapes/circle/gone_0.png), "
                                 "line 5 (shapes/circle/gone_1.png), line 6 (shapes/circle/gone_2.png), "
                                 "line 7 (shapes/circle/gone_3.png), line 8 (shapes/circle/gone_4.png) and 1 more")
    assert "relative to its folder" in err.value.hint and "skip_bad" in err.value.hint
    with pytest.raises(DataError) as built:  # the build says the same: one reader, one rule
        build_csv(CsvOptions.model_validate({"path": str(m)}), backbone, CTX)
    assert str(built.value) == str(err.value)

    assert check("image_csv", path=str(m), skip_bad=True) == (
        "9 images in 3 classes (9 train); 8 of 8 sampled images decode; skip_bad: 6 missing skipped so far")
    bundle = build_csv(CsvOptions.model_validate({"path": str(m), "skip_bad": True, "val_fraction": 0}),
                       backbone, CTX)
    assert bundle.info["skipped"] == {"missing": 6} and len(bundle.train) == 9


def test_idx_file_mistakes(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, size=(20, 8, 8), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 2
    imgs, labs = write_idx(tmp_path / "imgs.gz", images), write_idx(tmp_path / "labs", labels, gz=False)
    assert check("idx", train_images=str(imgs), train_labels=str(labs)) == "20 train images of 8x8, 2 classes"

    bad_magic = tmp_path / "magic"
    bad_magic.write_bytes(b"\x00\x01\x08\x01" + labs.read_bytes()[4:])
    with pytest.raises(DataError, match="not an idx file") as err:
        check("idx", train_images=str(imgs), train_labels=str(bad_magic))
    assert err.value.where == str(bad_magic) and "two zero bytes" in err.value.hint
    cut = tmp_path / "cut"
    cut.write_bytes(gzip.decompress(imgs.read_bytes())[:-10])
    with pytest.raises(DataError, match=r"idx data is \d+ bytes but shape \[20, 8, 8\] needs 1280") as err:
        check("idx", train_images=str(cut), train_labels=str(labs))
    assert err.value.where == str(cut) and "truncated" in err.value.hint
    cut_gz = tmp_path / "cut.gz"
    cut_gz.write_bytes(imgs.read_bytes()[:-30])
    with pytest.raises(DataError, match="cannot read the idx file") as err:
        check("idx", train_images=str(cut_gz), train_labels=str(labs))
    assert err.value.where == str(cut_gz) and "fetch it again" in err.value.hint
    fewer = write_idx(tmp_path / "fewer", labels[:15], gz=False)
    with pytest.raises(DataError, match="20 images but 15 labels in fewer") as err:
        check("idx", train_images=str(imgs), train_labels=str(fewer))
    assert err.value.where == str(imgs)
    with pytest.raises(DataError, match="no train-images-idx3-ubyte") as err:
        check("idx", dir=str(tmp_path))
    assert err.value.where == f"data.dir = {tmp_path}"

    three = write_idx(tmp_path / "three", np.arange(20, dtype=np.uint8) % 3, gz=False)
    with pytest.raises(DataError, match=r"6 item\(s\) have a label outside the 2 classes") as err:
        check("idx", train_images=str(imgs), train_labels=str(three), names=["a", "b"])
    assert err.value.where == str(three) and "skip_bad" in err.value.hint
    assert check("idx", train_images=str(imgs), train_labels=str(three), names=["a", "b"], skip_bad=True) == (
        "14 train images of 8x8, 2 classes; skip_bad: 6 label_out_of_range skipped so far")


def folder_options(root, **values):
    return FolderOptions.model_validate({"path": str(root), "val_fraction": 0, **values})


def test_truncated_jpeg_is_decoded_and_skipped_at_build_with_skip_bad(shapes_folder, backbone):
    root = shapes_folder(n_per_class=2)
    bad = root / "square" / "square_001.jpg"
    truncate(bad)
    # in the check's sample (all 6 images): named, with the way out
    with pytest.raises(DataError, match="cannot decode image: OSError: image file is truncated") as err:
        check("image_folder", path=str(root))
    assert err.value.where == str(bad) and "set data.skip_bad = true" in err.value.hint
    assert check("image_folder", path=str(root), skip_bad=True).endswith(
        "5 of 6 sampled images decode; skip_bad: 1 undecodable skipped so far")

    # the build without skip_bad only verifies structure (a JPEG's header), so reading the image fails
    plain = build_folder(folder_options(root), backbone, CTX)
    with pytest.raises(DataError, match="image file is truncated") as err:
        plain.train[plain.train.paths.index(bad)]
    assert err.value.where == str(bad) and "set data.skip_bad = true" in err.value.hint

    bundle = build_folder(folder_options(root, skip_bad=True), backbone, CTX)
    assert bundle.info["skipped"] == {"undecodable": 1}
    assert bundle.info["skipped_files"] == [f"{bad}: undecodable"]
    assert len(bundle.train) == 5 and bad not in bundle.train.paths
    assert all(bundle.train[i][0].shape == (3, SIZE, SIZE) for i in range(len(bundle.train)))
    # an image that breaks after the build: skip_bad is already on, so the hint says what happened
    truncate(bundle.train.paths[0])
    with pytest.raises(DataError) as err:
        bundle.train[0]
    assert "changed during the run" in err.value.hint and "set data.skip_bad" not in err.value.hint


def jpeg_recipe(root, run_dir, **data) -> dict:
    return {
        "task": {"type": "classification"},
        "data": {"format": "image_folder", "path": str(root), "val_fraction": 0.25, "seed": 1, **data},
        "backbone": {"name": "timm", "model": "test_efficientnet", "weights": "random", "image_size": SIZE},
        "head": {"type": "linear"},
        "train": {"epochs": 1, "batch_size": 8, "progress": False, "checkpoint": False},
        "output": {"dir": str(run_dir)},
    }


def test_run_with_a_truncated_jpeg_trains_on_with_skip_bad_and_stops_clearly_without(registry, shapes_folder,
                                                                                     tmp_path):
    root = shapes_folder(n_per_class=6, size=32)
    bad = root / "circle" / "circle_003.jpg"
    truncate(bad)
    result = ft.run(jpeg_recipe(root, tmp_path / "skip", skip_bad=True), quiet=True)
    data = json.loads((result.run_dir / "data.json").read_text())
    assert data["skipped"] == {"undecodable": 1} and data["skipped_files"] == [f"{bad}: undecodable"]
    assert sum(data["counts"]["train"].values()) + sum(data["counts"]["val"].values()) == 17
    assert np.isfinite(result.metrics["val"]["loss"])

    with pytest.raises(DataError, match="image file is truncated") as err:
        ft.run(jpeg_recipe(root, tmp_path / "stop"), quiet=True)
    assert err.value.where == str(bad) and "set data.skip_bad = true" in err.value.hint
