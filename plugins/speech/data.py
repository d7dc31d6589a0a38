"""Dataset formats ``audio_folder`` and ``audio_manifest``: labelled clips for classification.

Both formats list their clips as :class:`~.clips.Entry` objects, check every
file from its header and split them (see :mod:`.clips`), then serve
``(waveform, class index)`` pairs through :class:`~.audio.ClipTransform`.
Decoded, resampled waveforms are kept in memory when the data set fits
``cache_mb`` (2-byte samples), so epochs after the first do not decode again.

``skip_bad = true`` decodes every clip once when the data is built (into the
cache when it is on), so a clip that only fails when decoded (a truncated
file) is skipped and counted before training instead of stopping it midway;
training then sees a fixed list of clips, which keeps it deterministic and
resumable.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch.utils.data import Dataset

from ft.contracts import Backbone, DataBundle, TaskInfo
from ft.errors import DataError, FtError
from ft.specs import ExistingPath, Options

from .audio import BAD_DATA_HINT, CHANGED_DATA_HINT, Augment, ClipTransform, load_waveform, seconds_to_samples
from .clips import (Entry, limit_per_class, list_folder, list_unlabeled, manifest_split_method, read_manifest,
                    require_classes, speaker_split, stratified_split, validate)


class AudioDataOptions(Options):
    """Options shared by the audio formats (``[data]`` section)."""

    path: ExistingPath = Field(..., description="audio_folder: the folder; audio_manifest: the CSV file")
    clip_seconds: float = Field(3.0, gt=0, description="training clip length: random crop / pad")
    eval_clip_seconds: float | None = Field(None, gt=0, description="val/test/predict clip length "
                                            "(centred crop / pad); default clip_seconds")
    min_seconds: float = Field(0.1, ge=0, description="a shorter clip is bad data")
    skip_bad: bool = Field(False, description="skip and count bad files (missing, unreadable, too short, "
                           "undecodable) instead of stopping; every clip is then decoded once when the data is built")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="used when the data has no split column")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="used when the data has no split column")
    seed: int = Field(0, description="seed of the split and of limit_per_class")
    limit_per_class: int | None = Field(None, ge=1, description="keep at most N clips per class in each split")
    unlabeled: ExistingPath | None = Field(None, description="folder or CSV (path column) of target-domain "
                                           "audio without labels, for AdaBN")
    random_crop: bool = Field(True, description="training clips: random crop (else centred, like evaluation)")
    augment: bool = Field(True, description="random gain and noise on training clips")
    gain_db: float = Field(6.0, ge=0, description="random gain range, +- dB")
    noise_snr_db: tuple[float, float] = Field((15.0, 40.0), description="white-noise SNR range in dB")
    noise_prob: float = Field(0.5, ge=0, le=1)
    speed_perturb: list[Annotated[float, Field(ge=0.5, le=2.0)]] = Field(
        default_factory=list, description="speed factors drawn per training clip, e.g. [0.9, 1.0, 1.1] (Kaldi's "
        "speed perturbation: pitch, formants and tempo change like another voice's); empty = off")
    cache: Literal["auto"] | bool = Field("auto", description="keep decoded waveforms in memory "
                                          "(auto: when they fit cache_mb)")
    cache_mb: float = Field(1024, gt=0)
    preload: bool = Field(True, description="with the cache on, decode every clip when the data is built "
                          "(in parallel; also finds undecodable files before training)")

    @model_validator(mode="after")
    def _fractions(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must be below 1")
        return self


class FolderOptions(AudioDataOptions):
    """``audio_folder``: one sub-folder per class."""

    speaker_pattern: str | None = Field(None, description="regex on the file name (no suffix) whose first "
                                        "group is the speaker; enables a speaker-disjoint split")


class ManifestOptions(AudioDataOptions):
    """``audio_manifest``: a CSV with columns path,label[,speaker][,split]."""


# -- datasets -------------------------------------------------------------------


class WaveformStore:
    """Decoded, resampled mono waveforms by file, optionally kept in memory.

    The cache stores 16-bit samples scaled to each clip's peak (error below
    -90 dB of the peak), half the memory of float32. ``preload`` fills it up
    front with a few threads (libsndfile releases the GIL while decoding);
    otherwise it fills during the first pass over each file. With
    ``num_workers > 0`` a lazily filled cache lives in each worker, so keep
    ``num_workers = 0`` (the default) with it. ``decoded_at_build``: every
    clip decoded when the data was built (``skip_bad``), so a clip failing
    later changed during the run, and its error says so.
    """

    def __init__(self, sample_rate: int, cache: bool, decoded_at_build: bool = False):
        self.sample_rate = sample_rate
        self.cache = cache
        self.decoded_at_build = decoded_at_build
        self._store: dict[Path, tuple[np.ndarray, float]] = {}

    def get(self, entry: Entry) -> torch.Tensor:
        hit = self._store.get(entry.path)
        if hit is not None:
            quantised, scale = hit
            return torch.from_numpy(quantised.astype(np.float32) * np.float32(scale))
        hint = CHANGED_DATA_HINT if self.decoded_at_build else BAD_DATA_HINT
        waveform = load_waveform(entry.path, self.sample_rate, entry.where, hint)
        if self.cache:
            self._put(entry.path, waveform)
        return waveform

    def _put(self, path: Path, waveform: torch.Tensor) -> None:
        samples = waveform.numpy()
        scale = max(float(np.abs(samples).max()), 1e-8) / 32767
        self._store[path] = (np.round(samples / scale).astype(np.int16), scale)

    def preload(self, entries: list[Entry], workers: int, keep: bool = True) -> list[tuple[Entry, DataError]]:
        """Decode ``entries`` (into the cache if ``keep``); returns the ones that failed."""
        todo = [e for e in {e.path: e for e in entries}.values() if e.path not in self._store]

        def decode(entry: Entry):
            try:
                waveform = load_waveform(entry.path, self.sample_rate, entry.where)
                return entry, waveform if keep else None, None
            except DataError as exc:
                return entry, None, exc

        failed = []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for entry, waveform, error in pool.map(decode, todo):
                if waveform is not None:
                    self._put(entry.path, waveform)
                elif error is not None:
                    failed.append((entry, error))
        return failed

    def __len__(self) -> int:
        return len(self._store)


class AudioClips(Dataset):
    """``(waveform [clip_samples], class index)`` per entry; unlabeled entries give -1."""

    def __init__(self, entries: list[Entry], targets: list[int], store: WaveformStore, transform: ClipTransform):
        self.entries, self.targets, self.store, self.transform = entries, targets, store, transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        return self.transform(self.store.get(self.entries[i])), self.targets[i]


# -- building the bundle -----------------------------------------------------------


def sample_rate_of(backbone: Backbone) -> int:
    rate = getattr(backbone, "sample_rate", None)
    if not isinstance(rate, int):
        raise FtError(f"backbone {type(backbone).__name__} has no integer sample_rate, so the audio formats "
                      "cannot serve it", hint="use a speech backbone (resemblyzer, wav2vec2_base, logmel_cnn, ...)")
    return rate


def fingerprint(entries: list[Entry], options: AudioDataOptions, sample_rate: int) -> str:
    digest = hashlib.sha1()
    digest.update(json.dumps(options.model_dump(mode="json"), sort_keys=True).encode())
    digest.update(str(sample_rate).encode())
    for e in sorted(entries, key=lambda e: str(e.path)):
        stat = e.path.stat()
        digest.update(f"{e.path}|{stat.st_size}|{stat.st_mtime_ns}|{e.label}|{e.split}\n".encode())
    return digest.hexdigest()


def build_bundle(entries: list[Entry], options: AudioDataOptions, backbone: Backbone, split_method: str,
                 source: str, where: str) -> DataBundle:
    """Validate, split, limit and wrap entries in datasets (shared by both
    formats); ``where`` is the folder or CSV that errors name."""
    rate = sample_rate_of(backbone)
    skipped, skipped_files = Counter(), []
    listed = entries
    entries = validate(entries, options.min_seconds, options.skip_bad, skipped, skipped_files, where)
    classes = require_classes(listed, entries, where)
    if split_method == "speaker":
        speaker_split(entries, options.val_fraction, options.test_fraction, options.seed)
    elif split_method == "stratified":
        stratified_split(entries, options.val_fraction, options.test_fraction, options.seed)
    index = {c: i for i, c in enumerate(classes)}
    splits = {s: limit_per_class([e for e in entries if e.split == s], options.limit_per_class, options.seed)
              for s in ("train", "val", "test")}
    unlabeled = []
    if options.unlabeled is not None:
        unlabeled = validate(list_unlabeled(options.unlabeled), options.min_seconds, options.skip_bad, skipped,
                             skipped_files, str(options.unlabeled))

    used = [e for s in splits.values() for e in s] + unlabeled
    cache_bytes = sum(2 * e.frames * rate / max(1, e.rate) for e in used)
    cache = options.cache if isinstance(options.cache, bool) else cache_bytes <= options.cache_mb * 2**20
    store = WaveformStore(rate, cache, decoded_at_build=options.skip_bad)
    preload_note = ""
    if options.skip_bad or (cache and options.preload):
        t0 = time.perf_counter()
        failed = store.preload(used, workers=min(4, os.cpu_count() or 1), keep=cache)
        if failed and not options.skip_bad:
            entry, error = failed[0]
            raise DataError(error.message, where=entry.where, hint=BAD_DATA_HINT)
        if failed:
            bad = {e.path for e, _ in failed}
            skipped["undecodable"] += len(bad)
            skipped_files += [f"{e.where}: undecodable" for e, _ in failed]
            splits = {k: [e for e in v if e.path not in bad] for k, v in splits.items()}
            unlabeled = [e for e in unlabeled if e.path not in bad]
            used = [e for e in used if e.path not in bad]
            require_classes(listed, [e for split in splits.values() for e in split], where)
        preload_note = f", decoded in {time.perf_counter() - t0:.1f} s"
    train_samples = seconds_to_samples(options.clip_seconds, rate)
    eval_samples = seconds_to_samples(options.eval_clip_seconds or options.clip_seconds, rate)
    augment = Augment(options.gain_db, tuple(options.noise_snr_db), options.noise_prob,
                      tuple(options.speed_perturb)) if options.augment else None
    pad = pads_clips(backbone)
    train_tf = ClipTransform(train_samples, options.random_crop, augment, backbone.preprocess(train=True), pad=pad)
    eval_tf = ClipTransform(eval_samples, False, None, backbone.preprocess(train=False), pad=pad)

    def make(split: str, transform: ClipTransform):
        chosen = splits[split]
        return AudioClips(chosen, [index[e.label] for e in chosen], store, transform) if chosen else None

    train = make("train", train_tf)
    if train is None:
        raise DataError("the training split is empty", where=source,
                        hint="check the split column, or lower data.val_fraction / data.test_fraction")
    # Random crops differ between epochs unless every clip is exactly the clip length.
    varies = options.random_crop and any(round(e.frames * rate / max(1, e.rate)) != train_samples
                                         for e in splits["train"])
    counts = {s: dict(sorted(Counter(e.label for e in chosen).items())) for s, chosen in splits.items() if chosen}
    info = {
        "source": source, "classes": classes, "split_method": split_method, "counts": counts,
        "sample_rate": rate, "clip_seconds": options.clip_seconds,
        "eval_clip_seconds": options.eval_clip_seconds or options.clip_seconds,
        "skipped": dict(skipped), "skipped_files": skipped_files[:50],
        "cache": {"enabled": cache, "estimated_mb": round(cache_bytes / 2**20, 1)},
        "decoded_at_build": bool(preload_note),
        "unlabeled": len(unlabeled),
    }
    sizes = " / ".join(f"{s} {len(chosen)}" for s, chosen in splits.items())
    print(f"speech: {source}: {len(classes)} classes, {sizes} clips, split by {split_method}; "
          f"waveform cache {'on' if cache else 'off'} (~{cache_bytes / 2**20:.0f} MB{preload_note})", flush=True)
    if skipped:
        print(f"speech: skipped {sum(skipped.values())} bad file(s): "
              + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) + " (listed in data.json)", flush=True)
    return DataBundle(
        train=train, val=make("val", eval_tf), test=make("test", eval_tf),
        task=TaskInfo("classification", len(classes), tuple(classes)),
        train_augmented=bool(varies or train_tf.augment is not None),
        train_eval=make("train", eval_tf),
        unlabeled=AudioClips(unlabeled, [-1] * len(unlabeled), store, eval_tf) if unlabeled else None,
        fingerprint=fingerprint(used, options, rate), info=info,
    )


def pads_clips(backbone: Backbone) -> bool:
    """Whether clips are padded to the clip length: not for a backbone that
    batches variable lengths itself (``SpeechBackbone.variable_length``)."""
    return not getattr(backbone, "variable_length", False)


def build_folder(options: FolderOptions, backbone: Backbone, ctx) -> DataBundle:
    entries = list_folder(options.path, options.speaker_pattern)
    method = "speaker" if options.speaker_pattern else "stratified"
    return build_bundle(entries, options, backbone, method, f"audio_folder {options.path}", str(options.path))


def build_manifest(options: ManifestOptions, backbone: Backbone, ctx) -> DataBundle:
    entries, columns = read_manifest(options.path)
    method = manifest_split_method(entries, columns)
    return build_bundle(entries, options, backbone, method, f"audio_manifest {options.path}", str(options.path))


def read_input(raw: str, options: AudioDataOptions, backbone: Backbone) -> torch.Tensor:
    """One ``ft predict`` argument (an audio file) -> the centred evaluation clip."""
    path = Path(raw).expanduser()
    if not path.is_file():
        raise DataError("audio file not found", where=raw)
    rate = sample_rate_of(backbone)
    samples = seconds_to_samples(options.eval_clip_seconds or options.clip_seconds, rate)
    waveform = load_waveform(path, rate, hint="ft predict needs an audio file soundfile can decode (wav, flac, ogg)")
    return ClipTransform(samples, backbone_step=backbone.preprocess(train=False), pad=pads_clips(backbone))(waveform)
