"""The image formats: layouts, seeded splits, grey -> RGB, bad data, idx files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from ft.contracts import BuildContext
from ft.errors import DataError
from ft.plugins.vision.backbones import TimmOptions, build_timm
from ft.plugins.vision.data import read_input
from ft.plugins.vision.folders import CsvOptions, FolderOptions, build_csv, build_folder
from ft.plugins.vision.idx import FASHION_MNIST, IdxOptions, build_idx, read_idx

from vision_testkit import FASHION_DIR, needs_fashion_mnist, write_idx

CTX = BuildContext()
SIZE = 32


@pytest.fixture(scope="module")
def backbone():
    return build_timm(TimmOptions.model_validate({"model": "test_efficientnet", "weights": "random",
                                                  "image_size": SIZE, "crop_pct": 1.0}), CTX)


def folder(path, **values):
    return FolderOptions.model_validate({"path": str(path), **values})


def unnormalise(x: torch.Tensor, backbone) -> torch.Tensor:
    mean, std = (torch.tensor(backbone.data_config[k]).view(3, 1, 1) for k in ("mean", "std"))
    return x * std + mean


def same_channels(x: torch.Tensor, backbone) -> bool:
    raw = unnormalise(x, backbone)
    return torch.allclose(raw[0], raw[1], atol=1e-5) and torch.allclose(raw[1], raw[2], atol=1e-5)


def names_of(dataset) -> list[str]:
    return sorted(Path(p).name for p in dataset.paths)


def test_image_folder_seeded_stratified_split(shapes_folder, backbone):
    root = shapes_folder(n_per_class=10)
    bundle = build_folder(folder(root, val_fraction=0.2, test_fraction=0.2, seed=3), backbone, CTX)
    assert bundle.task.class_names == ("circle", "square", "triangle")
    assert bundle.info["counts"] == {s: {c: n for c in ("circle", "square", "triangle")}
                                     for s, n in (("test", 2), ("val", 2), ("train", 6))}
    splits = [names_of(d) for d in (bundle.train, bundle.val, bundle.test)]
    assert sum(map(len, splits)) == 30 and len(set().union(*splits)) == 30  # disjoint
    again = build_folder(folder(root, val_fraction=0.2, test_fraction=0.2, seed=3), backbone, CTX)
    other = build_folder(folder(root, val_fraction=0.2, test_fraction=0.2, seed=4), backbone, CTX)
    assert names_of(again.val) == splits[1] and names_of(other.val) != splits[1]
    assert again.fingerprint == bundle.fingerprint != other.fingerprint

    x, y = bundle.val[0]
    assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32 and isinstance(y, int)
    assert bundle.train_augmented and not build_folder(folder(root, augment=False), backbone, CTX).train_augmented


def test_limit_per_class_and_val_size(shapes_folder, backbone):
    root = shapes_folder(n_per_class=8)
    bundle = build_folder(folder(root, val_size=5, limit_per_class=3), backbone, CTX)
    assert len(bundle.val) == 5 and len(bundle.train) == 9
    assert sorted(bundle.info["counts"]["val"].values()) == [1, 2, 2]
    assert set(bundle.info["counts"]["train"].values()) == {3}


def test_grey_images_become_rgb_and_augment_false_is_deterministic(shapes_folder, backbone):
    root = shapes_folder(n_per_class=4, grey_every=2)
    grey_file = root / "circle" / "circle_000.png"
    from PIL import Image

    assert Image.open(grey_file).mode == "L"
    bundle = build_folder(folder(root, val_fraction=0, augment=False), backbone, CTX)
    i = bundle.train.paths.index(grey_file)
    x, _ = bundle.train[i]
    assert x.shape == (3, SIZE, SIZE) and same_channels(x, backbone)
    assert torch.equal(bundle.train[i][0], x) and not bundle.train_augmented
    assert bundle.val is None and bundle.test is None

    flips = build_folder(folder(root, val_fraction=0, random_resized_crop=False, hflip=1.0), backbone, CTX)
    torch.testing.assert_close(flips.train[i][0], x.flip(-1))  # the evaluation geometry, flipped
    assert flips.train_augmented


def test_train_val_test_folders(shapes_folder, backbone, tmp_path):
    root = tmp_path / "splits"
    shapes_folder(n_per_class=4, root=root / "train")
    shapes_folder(n_per_class=2, root=root / "val")
    shapes_folder(n_per_class=3, root=root / "test")
    bundle = build_folder(folder(root), backbone, CTX)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (12, 6, 9)
    assert bundle.info["layout"] == "splits" and bundle.info["split"] == {"train": "given", "val": "given",
                                                                          "test": "given"}


def test_corrupt_image_is_named_or_skipped(shapes_folder, backbone):
    root = shapes_folder(n_per_class=4)
    bad = root / "square" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    with pytest.raises(DataError) as err:
        build_folder(folder(root), backbone, CTX)
    assert str(bad) in str(err.value) and "skip_bad" in str(err.value)

    bundle = build_folder(folder(root, skip_bad=True, val_fraction=0), backbone, CTX)
    assert bundle.info["skipped"] == {"unreadable": 1} and str(bad) in bundle.info["skipped_files"][0]
    assert len(bundle.train) == 12


def test_empty_class_folder_and_unknown_class(shapes_folder, backbone):
    root = shapes_folder(n_per_class=3)
    (root / "hexagon").mkdir()
    with pytest.raises(DataError, match="class folder 'hexagon' has no images") as err:
        build_folder(folder(root), backbone, CTX)
    assert str(root / "hexagon") in str(err.value)
    (root / "hexagon").rmdir()
    with pytest.raises(DataError, match="label 'triangle' is not in data.classes"):
        build_folder(folder(root, classes=["circle", "square"]), backbone, CTX)
    ordered = build_folder(folder(root, classes=["triangle", "square", "circle"]), backbone, CTX)
    assert ordered.task.class_names == ("triangle", "square", "circle")


def write_csv(path: Path, rows: list[tuple]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"][:len(rows[0])])
        writer.writerows(rows)
    return path


def test_image_csv_relative_paths_split_column_and_class_list(shapes_folder, backbone, tmp_path):
    root = shapes_folder(n_per_class=4)
    rows = [(str(p.relative_to(root.parent)), p.parent.name, "test" if p.stem.endswith("3") else "")
            for p in sorted(root.rglob("*.*"))]
    manifest = write_csv(root.parent / "labels.csv", rows)
    options = CsvOptions.model_validate({"path": str(manifest), "val_fraction": 0,
                                         "classes": ["circle", "square", "triangle"]})
    bundle = build_csv(options, backbone, CTX)
    assert (len(bundle.train), len(bundle.test)) == (9, 3) and bundle.val is None
    assert bundle.task.class_names == ("circle", "square", "triangle")

    write_csv(manifest, rows + [(rows[0][0], "hexagon", "")])
    with pytest.raises(DataError) as err:
        build_csv(options, backbone, CTX)
    assert "'hexagon' is not in data.classes" in str(err.value) and f"{manifest}: line 14" in str(err.value)

    write_csv(manifest, [r for r in rows if r[1] != "square"])
    with pytest.raises(DataError, match="'square' of data.classes have no images"):
        build_csv(options, backbone, CTX)


def test_read_input_is_the_evaluation_transform(shapes_folder, backbone):
    root = shapes_folder(n_per_class=3)
    options = folder(root)
    bundle = build_folder(options, backbone, CTX)
    path = bundle.val.paths[0]
    torch.testing.assert_close(read_input(str(path), options, backbone), bundle.val[0][0])
    with pytest.raises(DataError, match="image file not found"):
        read_input(str(root / "nope.png"), options, backbone)


def test_idx_files(tmp_path, backbone):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 12, 12), dtype=np.uint8)
    labels = np.arange(40, dtype=np.uint8) % 4
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:8], gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:8], gz=False)
    assert np.array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "t10k-labels-idx1-ubyte"), labels[:8])

    bundle = build_idx(IdxOptions.model_validate({"dir": str(tmp_path), "val_size": 8, "augment": False}),
                       backbone, CTX)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (32, 8, 8)
    assert bundle.task.class_names == ("0", "1", "2", "3")
    x, y = bundle.test[5]
    assert x.shape == (3, SIZE, SIZE) and same_channels(x, backbone) and y == 1
    assert not bundle.train_augmented

    named = IdxOptions.model_validate({"train_images": str(tmp_path / "train-images-idx3-ubyte.gz"),
                                       "train_labels": str(tmp_path / "train-labels-idx1-ubyte.gz"),
                                       "names": ["a", "b", "c"]})
    with pytest.raises(DataError, match=r"10 item\(s\) have a label outside the 3 classes of data.names; "
                                        r"the first: item 3 \(0-based\) has label 3"):
        build_idx(named, backbone, CTX)
    skipped = build_idx(named.model_copy(update={"skip_bad": True}), backbone, CTX)
    assert skipped.info["skipped"] == {"label_out_of_range": 10} and len(skipped.train) + len(skipped.val) == 30

    cut = tmp_path / "cut-idx3-ubyte"
    cut.write_bytes((tmp_path / "t10k-images-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated") as err:
        read_idx(cut)
    assert str(cut) in str(err.value)
    text = tmp_path / "labels.txt"
    text.write_text("1,2,3\n")
    with pytest.raises(DataError, match="not an idx file"):
        read_idx(text)


@needs_fashion_mnist
def test_fashion_mnist_files():
    labels = read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")
    images = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and np.array_equal(np.bincount(labels), [1000] * 10)
    train_labels = read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz")
    assert np.array_equal(np.bincount(train_labels), [6000] * 10)
    assert len(FASHION_MNIST) == 10
