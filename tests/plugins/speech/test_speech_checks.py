"""The audio formats' cheap ``check`` (``ft validate``): each data mistake is a
DataError naming the file and line with what to do, the repo's recipe data is
described, ``skip_bad`` counts bad files in the check and the build alike, and
a clip that fails only when decoded is skipped before training."""

from __future__ import annotations

import pytest

from ft._registry import get_registry
from ft.contracts import BuildContext
from ft.engine import check_data
from ft.errors import DataError
from ft.plugins.speech.data import FolderOptions, ManifestOptions, build_folder, build_manifest
from ft.plugins.speech.logmel_cnn import LogmelCnnOptions, build_logmel_cnn
from ft.recipe import load_recipe

from speech_testkit import REPO, needs_corpus, tone, write

CTX = BuildContext(load_pretrained=False)


@pytest.fixture(scope="module")
def backbone():
    return build_logmel_cnn(LogmelCnnOptions(), CTX)


def check(fmt: str, **options) -> str:
    """The registered format's check, as ``ft validate`` calls it."""
    spec = get_registry().get("ft_dataset_formats", fmt)
    return spec.check(spec.options.model_validate(options), CTX)


def clips(root, names, seconds=0.3, rate=8000):
    for i, name in enumerate(names):
        write(root / name, tone(200 + 50 * i, seconds, rate, seed=i), rate)


def manifest(path, text: str):
    path.write_text(text)
    return path


@needs_corpus
def test_repo_accent_recipe_is_described():
    described = check_data(load_recipe(REPO / "recipes" / "speech_accent.toml"))
    assert described.startswith("2,656 clips in 8 classes (1,696 train / 480 val / 480 test)")
    assert described.endswith("8 of 8 sampled clips decode")


def test_folder_is_described_with_its_split(tone_folder):
    root = tone_folder(n_per_class=4, seconds=0.3, rate=8000)
    described = check("audio_folder", path=str(root), speaker_pattern=r"^(spk\d+)_")
    assert described == "12 clips in 3 classes; 4 speakers, split by speaker when built; 8 of 8 sampled clips decode"


def test_folder_mistakes_name_the_folder(tmp_path):
    afile = write(tmp_path / "one.wav", tone(300, 0.3, 8000), 8000)
    with pytest.raises(DataError, match="found a file") as err:
        check("audio_folder", path=str(afile))
    assert err.value.where == str(afile) and 'data.format = "audio_manifest"' in err.value.hint

    root = tmp_path / "clips"
    root.mkdir()
    with pytest.raises(DataError, match="no class sub-folders") as err:
        check("audio_folder", path=str(root))
    assert err.value.where == str(root) and "ROOT/<class>/<clip>.wav" in err.value.hint
    clips(root, ["a.wav", "b.wav"])
    with pytest.raises(DataError, match="no class sub-folders") as err:
        check("audio_folder", path=str(root))
    assert "move its 2 audio files into one sub-folder per class" in err.value.hint

    clips(root, ["low/a.wav", "high/b.wav"])
    (root / "mid").mkdir()
    with pytest.raises(DataError, match="class folder 'mid' has no audio files") as err:
        check("audio_folder", path=str(root))
    assert err.value.where == str(root / "mid") and "remove the empty folder" in err.value.hint
    (root / "mid").rmdir()
    (root / "high" / "b.wav").unlink()
    (root / "high").rmdir()
    with pytest.raises(DataError, match=r"at least 2 classes, found \['low'\]"):
        check("audio_folder", path=str(root))


def test_manifest_file_mistakes(tmp_path):
    clips(tmp_path, ["a.wav"])
    m = tmp_path / "m.csv"
    with pytest.raises(DataError, match="the CSV is empty") as err:
        check("audio_manifest", path=str(manifest(m, "")))
    assert err.value.where == str(m) and "path,label" in err.value.hint
    with pytest.raises(DataError, match="a header line but no rows") as err:
        check("audio_manifest", path=str(manifest(m, "path,label\n")))
    assert err.value.where == str(m)
    with pytest.raises(DataError, match=r"needs columns \['label', 'path'\]") as err:
        check("audio_manifest", path=str(manifest(m, "path,accent\na.wav,us\n")))
    assert err.value.where == f"{m}: line 1" and "path,label" in err.value.hint
    with pytest.raises(DataError, match="column names are lower case"):
        check("audio_manifest", path=str(manifest(m, "Path,Label\na.wav,us\n")))
    with pytest.raises(DataError, match="expected a CSV file, found a folder") as err:
        check("audio_manifest", path=str(tmp_path))
    assert 'data.format = "audio_folder"' in err.value.hint

    m.write_bytes("path,label\na.wav,us\na.wav,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte 0xe9\)") as err:
        check("audio_manifest", path=str(m))
    assert err.value.where == f"{m}: line 3" and "UTF-8" in err.value.hint


def test_manifest_line_numbers_are_file_lines(tmp_path):
    clips(tmp_path, ["a.wav", "b.wav"])
    m = tmp_path / "m.csv"
    # a quoted label over two lines: the next row starts on line 4, not "row 3"
    manifest(m, 'path,label,split\na.wav,"two\nlines",train\nb.wav,b,holdout\n')
    with pytest.raises(DataError, match="unknown split 'holdout'") as err:
        check("audio_manifest", path=str(m))
    assert err.value.where == f"{m}: line 4" and "train, val or test" in err.value.hint
    manifest(m, 'path,label\na.wav,a\n"b.wav,b\na.wav,a\n')
    with pytest.raises(DataError, match="a quote opened on this line is never closed") as err:
        check("audio_manifest", path=str(m))
    assert err.value.where == f"{m}: line 3" and "double quotes" in err.value.hint
    manifest(m, "path,label\na.wav,a\n\nb.wav,b,extra,fields\n")
    with pytest.raises(DataError, match="but the header names 2") as err:
        check("audio_manifest", path=str(m))
    assert err.value.where == f"{m}: line 4"
    manifest(m, "path,label,speaker\na.wav,a,s1\nb.wav,b,\n")
    with pytest.raises(DataError, match="empty speaker") as err:
        check("audio_manifest", path=str(m))
    assert err.value.where == f"{m}: line 3 (b.wav)"
    manifest(m, "path,label\na.wav,a\nb.wav,\n")
    with pytest.raises(DataError, match="empty label") as err:
        check("audio_manifest", path=str(m))
    assert err.value.where == f"{m}: line 3"
    manifest(m, "path,label,split\na.wav,a,val\nb.wav,b,test\n")
    with pytest.raises(DataError, match="no clip is in the train split"):
        check("audio_manifest", path=str(m))


def test_missing_files_are_counted_and_named_with_lines(tmp_path, backbone):
    clips(tmp_path, [f"c/{label}{i}.wav" for label in "ab" for i in range(3)])
    rows = [f"c/{label}{i}.wav,{label}" for label in "ab" for i in range(3)]
    rows[1:1] = [f"c/gone{i}.wav,a" for i in range(7)]  # lines 3-9
    m = manifest(tmp_path / "m.csv", "path,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        check("audio_manifest", path=str(m))
    assert err.value.where == str(m)
    assert err.value.message == ("7 of 13 audio files not found: line 3 (c/gone0.wav), line 4 (c/gone1.wav), "
                                 "line 5 (c/gone2.wav), line 6 (c/gone3.wav), line 7 (c/gone4.wav) and 2 more")
    assert "relative to its folder" in err.value.hint and "skip_bad" in err.value.hint
    with pytest.raises(DataError) as built:  # the build says the same: one reader, one rule
        build_manifest(ManifestOptions(path=m), backbone, CTX)
    assert str(built.value) == str(err.value)

    assert check("audio_manifest", path=str(m), skip_bad=True) == (
        "6 clips in 2 classes; split stratified by class when built; 6 of 6 sampled clips decode; "
        "skip_bad: 7 missing skipped so far")
    bundle = build_manifest(ManifestOptions(path=m, skip_bad=True, val_fraction=0, test_fraction=0), backbone, CTX)
    assert bundle.info["skipped"] == {"missing": 7} and len(bundle.train) == 6

    lost = manifest(tmp_path / "lost.csv", "path,label\nc/a0.wav,a\nc/a1.wav,a\nc/nope.wav,b\n")
    with pytest.raises(DataError, match="class\\(es\\) 'b' have no usable clips") as err:
        check("audio_manifest", path=str(lost), skip_bad=True)
    with pytest.raises(DataError, match="class\\(es\\) 'b' have no usable clips"):
        build_manifest(ManifestOptions(path=lost, skip_bad=True), backbone, CTX)


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # header fine, data cut off


def test_undecodable_clip_in_the_sample(tone_folder):
    root = tone_folder(n_per_class=2, seconds=0.3, rate=8000)
    bad = write(root / "mid" / "cut.flac", tone(400, 1.0, 8000), 8000)
    truncate(bad)
    with pytest.raises(DataError, match="cannot read audio") as err:
        check("audio_folder", path=str(root))
    assert err.value.where == str(bad) and "set data.skip_bad = true" in err.value.hint
    assert check("audio_folder", path=str(root), skip_bad=True) == (
        "6 clips in 3 classes; split stratified by class when built; 6 of 7 sampled clips decode; "
        "skip_bad: 1 undecodable skipped so far")


def test_skip_bad_decodes_every_clip_at_build_even_without_the_cache(tone_folder, backbone):
    root = tone_folder(n_per_class=3, seconds=0.5, rate=8000)
    bad = write(root / "low" / "cut.flac", tone(200, 1.0, 8000), 8000)
    truncate(bad)
    options = dict(path=root, cache=False, val_fraction=0, test_fraction=0)
    # without skip_bad the header looks fine, so the clip fails when read, with the way out
    plain = build_folder(FolderOptions(**options), backbone, CTX)
    at = [e.path for e in plain.train.entries].index(bad)
    with pytest.raises(DataError, match="cannot read audio") as err:
        plain.train[at]
    assert err.value.where == str(bad) and "set data.skip_bad = true" in err.value.hint

    bundle = build_folder(FolderOptions(**options, skip_bad=True), backbone, CTX)
    assert bundle.info["skipped"] == {"undecodable": 1} and bundle.info["decoded_at_build"]
    assert len(bundle.train) == 9 and bad not in [e.path for e in bundle.train.entries]
    assert len(bundle.train.store) == 0  # decoded to check, not kept: the cache is off
    assert all(bundle.train[i][0].shape == (3 * backbone.sample_rate,) for i in range(len(bundle.train)))
    # a clip that breaks after the build: skip_bad is already on, so the hint says what happened
    bundle.train.entries[0].path.write_bytes(b"overwritten")
    with pytest.raises(DataError) as err:
        bundle.train[0]
    assert "changed during the run" in err.value.hint and "set data.skip_bad" not in err.value.hint
