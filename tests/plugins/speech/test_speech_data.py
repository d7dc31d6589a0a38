"""The audio_folder and audio_manifest formats: splits, bad data, caching, predict input."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import torch

from ft.contracts import BuildContext
from ft.errors import DataError
from ft.plugins.speech.data import FolderOptions, ManifestOptions, build_folder, build_manifest, read_input
from ft.plugins.speech.logmel_cnn import LogmelCnnOptions, build_logmel_cnn

from speech_testkit import ACCENT_MANIFEST, needs_corpus, tone, write, write_manifest

CTX = BuildContext()


@pytest.fixture(scope="module")
def backbone():
    return build_logmel_cnn(LogmelCnnOptions(), CTX)


def manifest_rows(root, n_speakers=6, per_speaker=3, rate=16000, split=None):
    rows = []
    for label, freq in (("a", 220.0), ("b", 440.0)):
        for s in range(n_speakers):
            for k in range(per_speaker):
                rel = f"clips/{label}{s}_{k}.wav"
                write(root / rel, tone(freq, 0.5, rate, seed=s * 10 + k), rate)
                row = {"path": rel, "label": label, "speaker": f"{label}{s}"}
                if split:
                    row["split"] = split(label, s, k)
                rows.append(row)
    return rows


def test_folder_stratified_split_is_seeded(tone_folder, backbone):
    root = tone_folder(n_per_class=10, seconds=0.5)
    options = FolderOptions(path=root, val_fraction=0.2, test_fraction=0.2, seed=3)
    bundle = build_folder(options, backbone, CTX)
    assert bundle.task.class_names == ("high", "low", "mid")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (18, 6, 6)
    assert all(Counter(bundle.info["counts"][s].values()) == Counter({n: 3}) for s, n in (("train", 6),
               ("val", 2), ("test", 2)))
    again = build_folder(options, backbone, CTX)
    assert [e.path for e in again.val.entries] == [e.path for e in bundle.val.entries]
    other = build_folder(FolderOptions(path=root, val_fraction=0.2, test_fraction=0.2, seed=4), backbone, CTX)
    assert [e.path for e in other.val.entries] != [e.path for e in bundle.val.entries]
    wave, target = bundle.val[0]
    assert wave.shape == (int(3.0 * 16000),) and 0 <= target < 3


def test_folder_speaker_pattern_gives_disjoint_speakers(tone_folder, backbone):
    root = tone_folder(n_per_class=12, seconds=0.4)
    bundle = build_folder(FolderOptions(path=root, speaker_pattern=r"^(spk\d+)_", val_fraction=0.25,
                                        test_fraction=0.25), backbone, CTX)
    assert bundle.info["split_method"] == "speaker"
    speakers = {s: {(e.speaker, e.label) for e in getattr(bundle, s).entries} for s in ("train", "val", "test")}
    assert not speakers["train"] & speakers["val"] and not speakers["train"] & speakers["test"]
    assert not speakers["val"] & speakers["test"]


def test_manifest_speaker_split_is_disjoint_and_seeded(tmp_path, backbone):
    csv_path = write_manifest(tmp_path / "m.csv", manifest_rows(tmp_path))
    options = ManifestOptions(path=csv_path, val_fraction=0.2, test_fraction=0.2, seed=1)
    bundle = build_manifest(options, backbone, CTX)
    assert bundle.info["split_method"] == "speaker"
    spk = {s: {e.speaker for e in getattr(bundle, s).entries} for s in ("train", "val", "test")}
    assert spk["val"] and spk["test"]
    assert not (spk["train"] & spk["val"] or spk["train"] & spk["test"] or spk["val"] & spk["test"])
    for split in ("val", "test"):  # every class is represented by whole speakers
        assert set(bundle.info["counts"][split]) == {"a", "b"}
    again = build_manifest(options, backbone, CTX)
    assert {e.speaker for e in again.test.entries} == spk["test"]
    assert again.fingerprint == bundle.fingerprint


def test_manifest_split_column_is_used(tmp_path, backbone):
    rows = manifest_rows(tmp_path, n_speakers=3, per_speaker=2,
                         split=lambda label, s, k: ["train", "validation", "test"][s])
    bundle = build_manifest(ManifestOptions(path=write_manifest(tmp_path / "m.csv", rows)), backbone, CTX)
    assert bundle.info["split_method"] == "column"
    assert {e.speaker for e in bundle.val.entries} == {"a1", "b1"}
    assert {e.speaker for e in bundle.test.entries} == {"a2", "b2"}


def test_bad_files_name_file_and_line_or_are_skipped_and_counted(tmp_path, backbone):
    rows = manifest_rows(tmp_path, n_speakers=3, per_speaker=2)
    (tmp_path / "clips" / "broken.wav").write_bytes(b"not audio at all")
    write(tmp_path / "clips" / "blip.wav", tone(300, 0.05, 16000), 16000)
    write(tmp_path / "clips" / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    bad = [{"path": f"clips/{n}.wav", "label": "a", "speaker": "a0"} for n in ("broken", "blip", "empty")]
    bad.append({"path": "clips/missing.wav", "label": "b", "speaker": "b0"})
    csv_path = write_manifest(tmp_path / "m.csv", rows[:3] + bad + rows[3:])
    # missing files come first, all at once (one stat each); the header is line 1
    with pytest.raises(DataError, match=r"m.csv: 1 of 16 audio files not found: line 8 \(clips/missing.wav\)"):
        build_manifest(ManifestOptions(path=csv_path), backbone, CTX)
    write(tmp_path / "clips" / "missing.wav", tone(300, 0.5, 16000), 16000)
    with pytest.raises(DataError) as err:
        build_manifest(ManifestOptions(path=csv_path), backbone, CTX)
    message = str(err.value)
    assert "m.csv: line 5 (clips/broken.wav): cannot read audio" in message and "skip_bad" in message
    # the second bad file: too short
    (tmp_path / "clips" / "broken.wav").unlink()
    write(tmp_path / "clips" / "broken.wav", tone(300, 0.5, 16000), 16000)
    with pytest.raises(DataError, match=r"line 6 \(clips/blip.wav\).*shorter than data.min_seconds = 0.1"):
        build_manifest(ManifestOptions(path=csv_path), backbone, CTX)
    (tmp_path / "clips" / "broken.wav").write_bytes(b"not audio at all")
    (tmp_path / "clips" / "missing.wav").unlink()
    bundle = build_manifest(ManifestOptions(path=csv_path, skip_bad=True), backbone, CTX)
    assert bundle.info["skipped"] == {"unreadable": 1, "too_short": 1, "empty": 1, "missing": 1}
    assert len(bundle.info["skipped_files"]) == 4
    assert sum(map(len, (bundle.train, bundle.val or [], bundle.test or []))) == len(rows)


def test_manifest_errors_for_columns_and_labels(tmp_path, backbone):
    bad_header = tmp_path / "h.csv"
    bad_header.write_text("file,class\nx.wav,a\n")
    with pytest.raises(DataError, match=r"needs columns \['label', 'path'\]"):
        build_manifest(ManifestOptions(path=bad_header), backbone, CTX)
    bad_split = tmp_path / "s.csv"
    bad_split.write_text("path,label,split\nx.wav,a,train\ny.wav,b,holdout\n")
    with pytest.raises(DataError, match=r"s.csv: line 3: unknown split 'holdout'"):
        build_manifest(ManifestOptions(path=bad_split), backbone, CTX)


def test_waveform_cache_serves_epochs_after_the_first(tone_folder, backbone):
    root = tone_folder(n_per_class=4, seconds=0.5, rate=8000)
    bundle = build_folder(FolderOptions(path=root, val_fraction=0.0, test_fraction=0.0, augment=False,
                                        random_crop=False, clip_seconds=0.5), backbone, CTX)
    assert bundle.info["cache"]["enabled"] and not bundle.train_augmented
    first = [bundle.train[i][0] for i in range(len(bundle.train))]
    for path in root.rglob("*.*"):
        path.unlink()  # a second pass must not touch the files
    second = [bundle.train[i][0] for i in range(len(bundle.train))]
    for a, b in zip(first, second):
        assert torch.allclose(a, b, atol=float(a.abs().max()) / 30000)
    off = build_folder(FolderOptions(path=tone_folder(n_per_class=3, seconds=0.5, root=root.parent / "t2"),
                                     cache=False), backbone, CTX)
    off.train[0]
    assert len(off.train.store) == 0 and not off.info["cache"]["enabled"]


def test_train_is_augmented_eval_is_not(tone_folder, backbone):
    bundle = build_folder(FolderOptions(path=tone_folder(n_per_class=3, seconds=1.0), clip_seconds=0.5,
                                        val_fraction=0.0, test_fraction=0.0), backbone, CTX)
    assert bundle.train_augmented
    assert not torch.equal(bundle.train[0][0], bundle.train[0][0])
    assert torch.equal(bundle.train_eval[0][0], bundle.train_eval[0][0])
    assert bundle.train_eval[0][0].shape == (8000,)


def test_unlabeled_limit_and_fingerprint(tmp_path, tone_folder, backbone):
    root = tone_folder(n_per_class=6, seconds=0.4)
    extra = tmp_path / "target_domain"
    for i in range(5):
        write(extra / f"u{i}.flac", tone(500 + 10 * i, 0.4, 22050), 22050)
    options = FolderOptions(path=root, unlabeled=extra, limit_per_class=2, val_fraction=0.0, test_fraction=0.0)
    bundle = build_folder(options, backbone, CTX)
    assert len(bundle.train) == 6 and len(bundle.unlabeled) == 5
    wave, target = bundle.unlabeled[0]
    assert target == -1 and wave.shape == (48000,)
    changed = build_folder(options.model_copy(update={"clip_seconds": 2.0}), backbone, CTX)
    assert changed.fingerprint != bundle.fingerprint


def test_read_input_is_the_centred_eval_clip(tmp_path, backbone):
    path = write(tmp_path / "clip.wav", tone(440, 2.0, 8000), 8000)
    options = FolderOptions(path=tmp_path, clip_seconds=1.0, eval_clip_seconds=1.5)
    x = read_input(str(path), options, backbone)
    assert x.shape == (24000,) and torch.equal(x, read_input(str(path), options, backbone))
    with pytest.raises(DataError, match="not found"):
        read_input(str(tmp_path / "nope.wav"), options, backbone)


@needs_corpus
def test_accent_corpus_splits_are_speaker_and_sentence_disjoint():
    with ACCENT_MANIFEST.open() as fh:
        rows = list(csv.DictReader(fh))
    with (ACCENT_MANIFEST.parent / "speakers.csv").open() as fh:
        variant = {r["speaker"]: r["variant"] for r in csv.DictReader(fh)}
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        for key in ("speaker", "sentence_id"):
            assert not {r[key] for r in by_split[a]} & {r[key] for r in by_split[b]}
        assert not {variant[r["speaker"]] for r in by_split[a]} & {variant[r["speaker"]] for r in by_split[b]}
    assert len({r["label"] for r in rows}) == 8
    for split in ("val", "test"):  # issue 15: at least 4 unseen voices per accent
        per_accent = {r["label"]: set() for r in rows}
        for r in by_split[split]:
            per_accent[r["label"]].add(r["speaker"])
        assert min(len(s) for s in per_accent.values()) >= 4 and len(by_split[split]) >= 352


def test_truncated_file_is_caught_by_preload_before_training(tone_folder, backbone):
    root = tone_folder(n_per_class=4, seconds=0.5)
    flac = root / "mid" / "truncated.flac"
    write(flac, tone(400, 1.0, 16000), 16000)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])  # header fine, data cut off
    with pytest.raises(DataError, match=r"truncated.flac: cannot read audio"):
        build_folder(FolderOptions(path=root), backbone, CTX)
    bundle = build_folder(FolderOptions(path=root, skip_bad=True), backbone, CTX)
    assert bundle.info["skipped"] == {"undecodable": 1}
    assert all(e.path != flac for s in (bundle.train, bundle.val, bundle.test) for e in s.entries)
