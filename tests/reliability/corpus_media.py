"""Broken media: the audio formats (audio_folder, audio_manifest) and the
image formats (image_folder, image_csv, idx).

Clips are 0.5 s tones written with soundfile, images 16x16 squares drawn
with PIL, idx files 20 images of 8x8: each intact set (``GOOD``) is a few
kilobytes and validates; each case damages one thing in it.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile
from PIL import Image

from corpus_base import BROKEN, EMPTY, MISSING, Case, Workspace, line
from corpus_data import Maker, data_case, file_option, with_options
from corpus_tables import ENCODING, HEADER_ONLY, NOT_A_FILE

NOT_A_FOLDER = ("folder", "directory", "not a dir", "sub-folder")
NO_FILES = ("no audio", "no image", "empty", "no clips", "no files", "no sound")
SKIP_HINT = "skip_bad"


# -- audio -------------------------------------------------------------------------------


def wav(freq: float = 220.0, seconds: float = 0.5, rate: int = 16000) -> bytes:
    """A WAV file's bytes: a sine tone."""
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format="WAV")
    return buffer.getvalue()


def clips(classes: tuple[str, ...] = ("low", "high"), n: int = 3, replace: dict[str, bytes | None] | None = None,
          flat: bool = False, extra_dirs: tuple[str, ...] = ()) -> dict[str, bytes | None]:
    """Files of an audio folder: ``class/class_i.wav`` (``flat``: no class
    folders); ``replace`` swaps a file's bytes (None removes it)."""
    files: dict[str, bytes | None] = {}
    for c, label in enumerate(classes):
        for i in range(n):
            files[f"{label}_{i}.wav" if flat else f"{label}/{label}_{i}.wav"] = wav(220.0 * (c + 1) + 10 * i)
    files.update(replace or {})
    for folder in extra_dirs:
        files[folder + "/"] = None
    return files


def tree(root: str, files: dict[str, bytes | None], manifest: str | bytes | None = None,
         manifest_name: str = "manifest.csv", key: str = "path") -> Maker:
    """Write ``files`` under ``root`` (a name ending in "/" is an empty folder;
    None content: not written); ``data.<key>`` is the folder, or the manifest
    beside it when one is given."""
    def make(ws: Workspace) -> dict:
        ws.names["file"] = root
        ws.path(root).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            if name.endswith("/"):
                ws.path(f"{root}/{name}").mkdir(parents=True, exist_ok=True)
            elif content is not None:
                ws.write(f"{root}/{name}", content)
        if manifest is None:
            return {key: str(ws.path(root))}
        return {key: str(ws.write(f"{root}/{manifest_name}", manifest))}

    return make


def manifest(rows: list[str] | None = None, header: str = "path,label", bad: dict[int, str | bytes] | None = None
             ) -> bytes:
    """A manifest CSV over :func:`clips` (file line n replaced by ``bad[n]``)."""
    rows = rows if rows is not None else [f"{p},{p.split('/')[0]}" for p in clips() if p.endswith(".wav")]
    lines = [header.encode()] + [r.encode() for r in rows]
    for n, value in (bad or {}).items():
        lines[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(lines) + b"\n"


AF, AM = "audio_folder", "audio_manifest"

AUDIO_CASES: list[Case] = [
    data_case(AF, "missing-folder", file_option("clips", None), ("data.path", "clips", MISSING)),
    data_case(AF, "file-for-folder", file_option("clips", wav()), ("clips", NOT_A_FOLDER)),
    data_case(AF, "empty-class-folder", tree("clips", clips(extra_dirs=("mid",))), ("mid", NO_FILES)),
    data_case(AF, "no-class-folders", tree("clips", clips(flat=True)), ("clips", ("class", "sub-folder"))),
    data_case(AF, "one-class", tree("clips", clips(classes=("low",))), ("low", "class")),
    data_case(AF, "not-audio", tree("clips", clips(replace={"high/high_1.wav": b"not audio at all"})),
              ("high_1.wav", SKIP_HINT)),
    data_case(AF, "empty-clip", tree("clips", clips(replace={"high/high_1.wav": b""})), ("high_1.wav", SKIP_HINT)),
    data_case(AF, "not-audio-skip-bad",
              with_options(tree("clips", clips(n=4, replace={"high/high_1.wav": b"not audio at all"})),
                           skip_bad=True), (("high_1.wav", "skipped"),), exit=0),
    data_case(AF, "empty-class-folder", tree("clips", clips(extra_dirs=("mid",))), ("mid", NO_FILES), run=True),

    data_case(AM, "missing-csv", file_option("manifest.csv", None), ("data.path", "manifest.csv", MISSING)),
    data_case(AM, "folder-for-csv", file_option("manifest.csv/", None), ("manifest.csv", NOT_A_FILE)),
    data_case(AM, "empty-csv", tree("clips", clips(), b""), ("manifest.csv", EMPTY)),
    data_case(AM, "header-only", tree("clips", clips(), manifest([])), ("manifest.csv", HEADER_ONLY)),
    data_case(AM, "missing-label-column", tree("clips", clips(), manifest(header="path,speaker")),
              ("manifest.csv", "label")),
    data_case(AM, "missing-audio-file", tree("clips", clips(), manifest(bad={3: "low/gone.wav,low"})),
              ("gone.wav", MISSING)),
    data_case(AM, "unclosed-quote", tree("clips", clips(), manifest(bad={3: '"low/low_1.wav,low'})),
              ("manifest.csv", line(3))),
    data_case(AM, "non-utf8", tree("clips", clips(), manifest(bad={2: b"low/l\xf6w_0.wav,low"})),
              ("manifest.csv", ENCODING)),
    data_case(AM, "unknown-split", tree("clips", clips(), manifest(header="path,label,split",
                                                                   rows=["low/low_0.wav,low,trian"])),
              ("manifest.csv", "trian")),
    data_case(AM, "missing-audio-file", tree("clips", clips(), manifest(bad={3: "low/gone.wav,low"})),
              ("gone.wav", MISSING), run=True),
]

# -- images ------------------------------------------------------------------------------


def image(colour: tuple[int, int, int], fmt: str = "PNG", size: int = 16) -> bytes:
    """An image file's bytes: one flat colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = image((200, 30, 30), "JPEG", 48)
    return data[: len(data) * 3 // 5]


def pictures(classes: tuple[str, ...] = ("cat", "dog"), n: int = 4, replace: dict | None = None, flat: bool = False,
             extra_dirs: tuple[str, ...] = ()) -> dict[str, bytes | None]:
    """Files of an image folder: ``class/class_i.png`` (odd i: .jpg)."""
    files: dict[str, bytes | None] = {}
    for c, label in enumerate(classes):
        for i in range(n):
            suffix, fmt = ("jpg", "JPEG") if i % 2 else ("png", "PNG")
            name = f"{label}_{i}.{suffix}" if flat else f"{label}/{label}_{i}.{suffix}"
            files[name] = image((40 + 150 * c, 60, 200 - 150 * c), fmt)
    files.update(replace or {})
    for folder in extra_dirs:
        files[folder + "/"] = None
    return files


def labels_csv(rows: list[str] | None = None, header: str = "path,label", bad: dict[int, str | bytes] | None = None
               ) -> bytes:
    rows = rows if rows is not None else [f"{p},{p.split('/')[0]}" for p in pictures()]
    lines = [header.encode()] + [r.encode() for r in rows]
    for n, value in (bad or {}).items():
        lines[n - 1] = value if isinstance(value, bytes) else value.encode()
    return b"\n".join(lines) + b"\n"


def idx_file(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


IDX_IMAGES = np.random.default_rng(0).integers(0, 256, size=(20, 8, 8))
IDX_LABELS = np.arange(20) % 2
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"


def idx_dir(images: bytes | None = None, labels: bytes | None = None, images_name: str = TRAIN_IMAGES) -> Maker:
    files = {images_name: idx_file(IDX_IMAGES) if images is None else images,
             TRAIN_LABELS: idx_file(IDX_LABELS) if labels is None else labels}
    return tree("mnist", files, key="dir")


BAD_TRUNCATED = {"dog/dog_1.jpg": truncated_jpeg()}
IF, IC, IDX = "image_folder", "image_csv", "idx"
IDX_BROKEN = BROKEN + ("idx", "magic", "header")

IMAGE_CASES: list[Case] = [
    data_case(IF, "missing-folder", file_option("shapes", None), ("data.path", "shapes", MISSING)),
    data_case(IF, "file-for-folder", file_option("shapes", image((0, 0, 0))), ("shapes", NOT_A_FOLDER)),
    data_case(IF, "empty-class-folder", tree("shapes", pictures(extra_dirs=("bird",))), ("bird", NO_FILES)),
    data_case(IF, "no-class-folders", tree("shapes", pictures(flat=True)), ("shapes", ("class", "sub-folder"))),
    data_case(IF, "one-class", tree("shapes", pictures(classes=("cat",))), ("cat", "class")),
    data_case(IF, "truncated-jpeg", tree("shapes", pictures(replace=BAD_TRUNCATED)), ("dog_1.jpg", SKIP_HINT)),
    data_case(IF, "truncated-jpeg-skip-bad",
              with_options(tree("shapes", pictures(replace=BAD_TRUNCATED)), skip_bad=True),
              (("dog_1.jpg", "skipped"),), exit=0),
    data_case(IF, "text-as-png", tree("shapes", pictures(replace={"dog/dog_2.png": b"hello, not a picture"})),
              ("dog_2.png", SKIP_HINT)),
    data_case(IF, "truncated-jpeg", tree("shapes", pictures(replace=BAD_TRUNCATED)), ("dog_1.jpg", SKIP_HINT),
              run=True),
    data_case(IF, "empty-class-folder", tree("shapes", pictures(extra_dirs=("bird",))), ("bird", NO_FILES),
              run=True),

    data_case(IC, "missing-csv", file_option("labels.csv", None), ("data.path", "labels.csv", MISSING)),
    data_case(IC, "folder-for-csv", file_option("labels.csv/", None), ("labels.csv", NOT_A_FILE)),
    data_case(IC, "empty-csv", tree("shapes", pictures(), b"", "labels.csv"), ("labels.csv", EMPTY)),
    data_case(IC, "header-only", tree("shapes", pictures(), labels_csv([]), "labels.csv"),
              ("labels.csv", HEADER_ONLY)),
    data_case(IC, "missing-label-column", tree("shapes", pictures(), labels_csv(header="path,class"), "labels.csv"),
              ("labels.csv", "label")),
    data_case(IC, "missing-image", tree("shapes", pictures(), labels_csv(bad={3: "cat/gone.png,cat"}), "labels.csv"),
              ("gone.png", MISSING)),
    data_case(IC, "truncated-jpeg", tree("shapes", pictures(replace=BAD_TRUNCATED), labels_csv(), "labels.csv"),
              ("dog_1.jpg", SKIP_HINT)),
    data_case(IC, "unclosed-quote", tree("shapes", pictures(), labels_csv(bad={3: '"cat/cat_1.jpg,cat'}),
                                         "labels.csv"), ("labels.csv", line(3))),
    data_case(IC, "non-utf8", tree("shapes", pictures(), labels_csv(bad={2: b"cat/c\xe4t_0.png,cat"}), "labels.csv"),
              ("labels.csv", ENCODING)),
    data_case(IC, "unknown-split", tree("shapes", pictures(), labels_csv(header="path,label,split",
                                                                         rows=["cat/cat_0.png,cat,trian"]),
                                        "labels.csv"), ("labels.csv", "trian")),
    data_case(IC, "missing-image", tree("shapes", pictures(), labels_csv(bad={3: "cat/gone.png,cat"}), "labels.csv"),
              ("gone.png", MISSING), run=True),

    data_case(IDX, "missing-dir", file_option("mnist", None, key="dir"), ("data.dir", "mnist", MISSING)),
    data_case(IDX, "file-for-dir", file_option("mnist", idx_file(IDX_LABELS), key="dir"), ("mnist", NOT_A_FOLDER)),
    data_case(IDX, "dir-without-idx-files", tree("mnist", {"readme.txt": b"nothing here"}, key="dir"),
              ("mnist", "train-images")),
    data_case(IDX, "wrong-magic", idx_dir(images=b"\x12\x34" + idx_file(IDX_IMAGES)[2:]), (TRAIN_IMAGES, IDX_BROKEN)),
    data_case(IDX, "mismatched-counts", idx_dir(labels=idx_file(IDX_LABELS[:19])),
              ((TRAIN_LABELS, TRAIN_IMAGES), "19", "20")),
    data_case(IDX, "truncated-images", idx_dir(images=idx_file(IDX_IMAGES)[:-10]),
              (TRAIN_IMAGES, BROKEN + ("bytes", "short"))),
    data_case(IDX, "empty-images-file", idx_dir(images=b""), (TRAIN_IMAGES, EMPTY + IDX_BROKEN)),
    data_case(IDX, "label-out-of-range",
              with_options(idx_dir(labels=idx_file(np.where(np.arange(20) == 5, 7, IDX_LABELS))), names=["a", "b"]),
              (TRAIN_LABELS, "7")),
    data_case(IDX, "bad-gzip", idx_dir(images=b"\x1f\x8b\x08\x00" + b"garbage" * 20, images_name=TRAIN_IMAGES + ".gz"),
              (TRAIN_IMAGES, BROKEN + ("gzip",))),
    data_case(IDX, "wrong-magic", idx_dir(images=b"\x12\x34" + idx_file(IDX_IMAGES)[2:]), (TRAIN_IMAGES, IDX_BROKEN),
              run=True),
]

CASES = AUDIO_CASES + IMAGE_CASES

GOOD: dict[str, Maker] = {
    AF: tree("clips", clips()),
    AM: tree("clips", clips(), manifest()),
    IF: tree("shapes", pictures()),
    IC: tree("shapes", pictures(), labels_csv(), "labels.csv"),
    IDX: idx_dir(),
}
