"""Build a small synthetic English-accent speech corpus with espeak-ng.

The same pool of English sentences is synthesised in eight espeak-ng accents
(the classification labels).  Each accent has several "speakers": a fixed,
seeded combination of espeak voice variant (+m3, +f2, ...), pitch, speed,
amplitude and word gap.  Clips are resampled to 16 kHz mono, trimmed of
leading/trailing silence and stored as OGG/Opus.

Splits are built so that validation and test measure generalisation: their
sentences AND their speakers never occur in training (sentence sets and
speaker sets are disjoint across train/val/test), and the val and test
speakers use voice variants that no training speaker (and no speaker of the
other split) uses.

Before rendering, the script checks that every accent really produces
different audio (espeak-ng silently falls back to en-gb for unknown voices
such as ``en-in``), that every chosen voice variant changes the audio of
every accent (an unknown or ignored variant is silently dropped), and that no
variant overrides the prosody or pronunciation rules that define an accent.
After rendering it re-checks split disjointness and prints a summary.

Requirements: the ``espeak-ng`` binary (``apt-get install espeak-ng``; the
shipped corpus was made with espeak-ng 1.51), plus numpy, soundfile (with
libsndfile >= 1.1 for Opus) and torchaudio (for resampling).

Regenerate the shipped corpus with::

    python benchmarks/data/make_accent_corpus.py --out recipes/data/accent_corpus

The manifest is a pure function of the CLI options (including ``--seed``);
the audio bytes are not, because libsndfile gives every Ogg stream a random
serial number, but the decoded audio is.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

# Label -> espeak-ng voice name.  en-gb uses the voice *file* "gmw/en" because
# espeak-ng 1.51 ignores a "+variant" suffix on the language name "en-gb".
ACCENTS = {
    "en-us": "en-us",
    "en-gb": "gmw/en",
    "en-gb-scotland": "en-gb-scotland",
    "en-029": "en-029",
    "en-gb-x-rp": "en-gb-x-rp",
    "en-gb-x-gbclan": "en-gb-x-gbclan",
    "en-gb-x-gbcwmd": "en-gb-x-gbcwmd",
    "en-us-nyc": "en-us-nyc",
}
# espeak-ng voice variants ("" = none) per split; speaker i of a split uses
# entry i in every accent.  Train keeps the 10 variants (and order) of the
# first release, so its clips are unchanged.  Val and test use variants no
# other split uses, two male-like and two female-like each.  m5 is left out:
# its "intonation 2" replaces en-gb-x-gbcwmd's own intonation (see
# ACCENT_KEYS).  Avoided as not ordinary human voices: whisper*, croak,
# klatt* and the klatt-based adam/caleb/david/edward*, robosoft*, Demonic,
# UniRobot, anikaRobot, Storm, Tweaky, fast, "Mr serious", zac (a child).
SPLIT_VARIANTS = {
    "train": ("m7", "m4", "f1", "", "m1", "f5", "f2", "m3", "f4", "m6"),
    "val": ("m2", "robert", "f3", "grandma"),
    "test": ("m8", "Alex", "belinda", "shelby"),
}
# Keys with which the accent files define an accent.  A variant setting one
# of them replaces the accent's value (checked with espeak-ng 1.51: a variant
# with "intonation 2" changes en-gb-x-gbcwmd, one with "intonation 4" leaves
# it as is), which would erase label information for that speaker.
ACCENT_KEYS = ("phonemes", "dictrules", "replace", "intonation", "tunes", "stressLength")
# Ranges speaker parameters are drawn from (uniform, inclusive), identical for
# every accent so that voice quality carries no information about the label.
PITCH, SPEED, AMPLITUDE, WORD_GAP = (20, 80), (140, 200), (70, 130), (0, 3)
TARGET_SR = 16_000
# Sentences each val/test speaker reads (of 22 with the defaults): 4 speakers
# x 15 = 60 readings per accent, each sentence read by 2 or 3 speakers.  The
# largest value that keeps the shipped folder under 14.8 MB at this quality.
EVAL_READS = 15
CHECK_SENTENCE = "The water in the car park is better after a bath."

# Written for this project.  Many contain words whose pronunciation differs
# between accents (water, car, bath, dance, tomato, schedule, route, herb, ...).
SENTENCES = """
The water in the harbour was cold and dark this morning.
She parked the car behind the old bakery on Market Street.
After a long day I just want a hot bath.
They can't dance until the band starts playing.
He grew tomatoes and fresh herbs in the back garden.
Please check the train schedule before you leave the house.
We took the scenic route along the river to the castle.
This coffee tastes much better with a little milk.
The girl in the red coat walked her dog in the park.
Can you pass me the butter and a slice of bread?
My aunt laughed so hard that she spilled her tea.
The last bus to the city centre leaves at half past ten.
Ask the man at the desk for the answer.
The grass on the path was wet after the rain.
Our class starts at nine o'clock every Tuesday.
I thought the news about the new theatre was strange.
Four of us sat on the floor next to the door.
The bird sang a beautiful tune from the top of the tree.
He bought a bottle of water and a bag of crisps.
The garage is full of old bicycles and broken chairs.
Either way, we will need a better plan by Saturday.
Neither of them wanted to talk about the weather.
She always takes her vitamins with a glass of orange juice.
The data shows that the new road is much faster.
It was a lot of fun to dance at the party last night.
The farmer drove his tractor across the muddy field.
You can't park your car on the grass.
I often walk to work when the weather is warm.
The doctor said I should drink more water every day.
Put the tomatoes in the pasta sauce and stir it slowly.
We had a picnic by the lake on a sunny afternoon.
The children ran down the hill laughing and shouting.
My brother works as a nurse at the hospital in town.
The world is full of wonderful places to visit.
His car broke down on the motorway near the airport.
Could you tell me the quickest route to the station?
The teacher wrote a long word on the board.
There is a small shop around the corner that sells bread.
I can't remember where I left my keys.
The cat is sleeping on a warm blanket by the fire.
We watched the stars from the roof of the farmhouse.
Her daughter plays the guitar better than anyone I know.
The meeting was moved to a later time on Thursday.
He poured hot water into the teapot and waited.
Half of the cake was gone before the guests arrived.
I heard a strange noise coming from the garden shed.
The herb garden smells lovely in the summer.
Don't forget to water the plants while I am away.
They stood in the car park waiting for a taxi.
A little bit of butter makes the bread taste better.
The weather forecast says it will rain all afternoon.
She read the letter twice before she answered it.
The dancers practised their steps in the hall after class.
The path through the forest is hard to follow at night.
My grandfather tells the best stories about the war.
Our new neighbours have a large dog and three cats.
The price of bananas has gone up again this year.
We went for a walk along the beach at sunset.
The north wind made the whole house shake.
Can I borrow your pen for a minute?
He was born in a small village near the coast.
It's hard to find a good parking space in the city.
The tourists asked for directions to the castle.
Let's meet at the corner cafe at four o'clock.
The water bottle is at the bottom of my bag.
She has a master's degree in ancient history.
They painted the kitchen a bright shade of yellow.
The first train leaves at twenty past six in the morning.
My mother makes the best tomato soup in the world.
The girl with the curly hair is my cousin.
The farmers' market is open every Saturday morning.
I would rather stay at home and read a book.
The heart of the old town is full of narrow streets.
Do you know how to change a flat tyre?
We are going to the theatre on Friday evening.
The football match was cancelled because of the storm.
He can't afford a new car this year.
The baby laughed when the puppy licked her hand.
They built a new bridge across the river last summer.
Turn left at the traffic lights and follow the road.
The shop assistant wrapped the present in blue paper.
My sister is learning to drive a car.
Our flight was delayed for more than three hours.
The soup was too hot to eat straight away.
Her words were kind, but her eyes looked sad.
I need to buy milk, eggs and a loaf of bread.
The garden was full of roses and tall grass.
The museum is closed on Mondays and public holidays.
He hurried across the road to catch the bus.
We talked about our plans for the summer holidays.
The doctor's appointment is scheduled for Tuesday afternoon.
The orchestra played a famous waltz at the concert.
There are forty-four steps up to the tower.
I always lose my umbrella when it rains.
The water was so clear that we could see the fish.
My father fixed the broken fence in the back yard.
The party starts at eight, so don't be late.
The car alarm went off in the middle of the night.
She bought a new dress for her sister's wedding.
The old man sat on a bench and fed the birds.
The library has thousands of books about art and music.
We sailed across the bay in a tiny wooden boat.
Please leave your shoes by the door.
A warm bath helps me sleep better at night.
The students are working hard for their final exams.
They stopped at a little farm to buy fresh eggs.
It took an hour to drive to the airport.
I'd like a cup of coffee and a piece of cake, please.
Our dog loves to chase the ball around the park.
The path to the beach is steep and rocky.
The actor forgot his lines in the middle of the play.
Could you turn the music down a little?
The children are building a sandcastle on the shore.
He wore a dark jacket and a warm woollen hat.
The hotel room had a view of the harbour.
She answered every question without any hesitation.
The bakery sells fresh bread every morning at seven.
My uncle keeps bees on his farm in the hills.
The lawyer read the contract very carefully.
We can't go out until the rain stops.
The dancer moved gracefully across the stage.
There's a lot of traffic on the road today.
The new schedule starts next Monday morning.
Her grandmother grew up on a farm by the sea.
The route over the mountains is closed in winter.
I saw a huge ship in the harbour yesterday.
He drank a glass of water and went back to work.
The girl next door plays the piano every evening.
The leaves turn red and gold in autumn.
The car was covered in snow this morning.
We ordered pasta with tomato sauce and fresh basil.
The last chapter of the book was the best.
My friend Martha is a nurse in a large hospital.
The bus was late, so we walked to the market.
The guard at the gate asked to see our tickets.
The birds fly south when the weather turns cold.
He wants to start a small business next year.
I prefer tea to coffee in the afternoon.
They danced all night at their daughter's wedding.
The river is deeper than it looks.
She heard the church bells from across the valley.
The pilot said we would land in about half an hour.
Our teacher asked us to write a short story.
The car park behind the hospital is nearly full.
Fresh herbs make a simple dish taste much better.
My cousin bought an old farmhouse in the countryside.
The door creaked as the wind blew through the hall.
I can't believe how fast the summer went by.
Turn off the water before you fix the tap.
The stars were bright over the dark hills.
""".strip().splitlines()


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an accent plus fixed espeak-ng voice settings."""

    speaker: str
    label: str
    split: str
    variant: str
    pitch: int
    speed: int
    amplitude: int
    word_gap: int


def synthesize(text: str, voice: str, pitch: int = 50, speed: int = 160,
               amplitude: int = 100, word_gap: int = 0) -> tuple[np.ndarray, int]:
    """Run espeak-ng and return (float32 mono samples, sample rate)."""
    cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed),
           "-a", str(amplitude), "-g", str(word_gap), "--stdout", text]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    audio, sr = sf.read(io.BytesIO(wav), dtype="float32")
    return audio, sr


def voice_of(spk: Speaker) -> str:
    """espeak-ng voice spec (accent voice plus optional variant) for a speaker."""
    voice = ACCENTS[spk.label]
    return f"{voice}+{spk.variant}" if spk.variant else voice


def to_16k_trimmed(audio: np.ndarray, sr: int, pad_s: float = 0.05,
                   floor_db: float = -40.0) -> np.ndarray:
    """Resample to 16 kHz and cut silence (espeak appends ~0.3 s) down to pad_s."""
    x = AF.resample(torch.from_numpy(audio), sr, TARGET_SR).numpy()
    hop = TARGET_SR // 100
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    db = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
    voiced = np.nonzero(db > db.max() + floor_db)[0]
    pad = int(pad_s * TARGET_SR)
    start = max(0, voiced[0] * hop - pad)
    end = min(len(x), (voiced[-1] + 1) * hop + pad)
    return np.clip(x[start:end], -1.0, 1.0)


def variant_dir() -> Path:
    """Folder of espeak-ng's voice variant files (``<data>/voices/!v``)."""
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                             check=True).stdout
    if "Data at:" not in version:
        sys.exit(f"ERROR: cannot find the espeak-ng data folder in `espeak-ng --version` "
                 f"output {version.strip()!r}")
    return Path(version.split("Data at:", 1)[1].strip()) / "voices" / "!v"


def check_variant_files(variants: list[str]) -> None:
    """Fail if a variant file is missing or sets a key that defines an accent."""
    folder = variant_dir()
    for variant in variants:
        path = folder / variant
        if not path.is_file():
            sys.exit(f"ERROR: voice variant {variant!r} not found in {folder}; "
                     f"pick one listed by `ls '{folder}'`")
        keys = {line.split()[0] for line in path.read_text(errors="replace").splitlines()
                if line.strip() and not line.lstrip().startswith(("//", "#"))}
        if keys & set(ACCENT_KEYS):
            sys.exit(f"ERROR: voice variant {variant!r} ({path}) sets {sorted(keys & set(ACCENT_KEYS))}, "
                     f"which replaces the accent's own rules; choose another variant")


def verify_voices(variants: list[str]) -> None:
    """Fail loudly if two accents, or two variants of one accent, sound identical.

    espeak-ng does not error on unknown voices or ignored variants; it quietly
    falls back to a default, which would make two labels (or two supposedly
    different speakers) indistinguishable.  Every variant is checked in every
    accent against the plain voice and against every other variant.
    """
    variants = [v for v in variants if v]
    check_variant_files(variants)
    accent_of: dict[bytes, str] = {}
    for label, voice in ACCENTS.items():
        digest = hashlib.sha256(synthesize(CHECK_SENTENCE, voice)[0].tobytes()).digest()
        if digest in accent_of:
            sys.exit(f"ERROR: accents {accent_of[digest]!r} and {label!r} give identical audio")
        accent_of[digest] = label
        variant_of = {digest: "(no variant)"}
        for variant in variants:
            pcm = synthesize(CHECK_SENTENCE, f"{voice}+{variant}")[0].tobytes()
            digest = hashlib.sha256(pcm).digest()
            if digest in variant_of:
                sys.exit(f"ERROR: {label!r} ({voice}): variant {variant!r} gives the same audio "
                         f"as {variant_of[digest]!r}; espeak-ng ignored it")
            variant_of[digest] = variant
    print(f"voice check: {len(ACCENTS)} accents give {len(ACCENTS)} distinct renderings; "
          f"each of {len(variants)} variants changes every accent's audio")


def make_speakers(seed: int, n_train: int, n_val: int, n_test: int) -> list[Speaker]:
    """Draw speakers per accent; s1..s{n_train} train, then val, then test.

    The i-th speaker of a split uses SPLIT_VARIANTS[split][i] in every
    accent, so in each split all accents cover the same variants and the
    variant (which shifts formants far more than the accent does) carries no
    label information; the val and test speakers use variants never heard in
    training (with the defaults, 10+4+4 speakers per accent: s1-s10 train,
    s11-s14 val, s15-s18 test).  Pitch, speed, amplitude and word gap are
    drawn independently per speaker, in speaker order, so the training
    speakers do not change when val or test get more speakers.
    """
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, n in counts.items():
        if n > len(SPLIT_VARIANTS[split]):
            sys.exit(f"ERROR: --{split}-speakers {n} exceeds the {len(SPLIT_VARIANTS[split])} "
                     f"voice variants reserved for {split} (SPLIT_VARIANTS); add variants there")
    slots = [(split, SPLIT_VARIANTS[split][i]) for split, n in counts.items() for i in range(n)]
    speakers = []
    for a, label in enumerate(ACCENTS):
        # Per-accent generator: adding an accent leaves the others unchanged.
        rng = np.random.default_rng([seed, 1, a])
        for i, (split, variant) in enumerate(slots):
            speakers.append(Speaker(
                speaker=f"{label}_s{i + 1}", label=label, split=split, variant=variant,
                pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
                speed=int(rng.integers(SPEED[0], SPEED[1] + 1)),
                amplitude=int(rng.integers(AMPLITUDE[0], AMPLITUDE[1] + 1)),
                word_gap=int(rng.integers(WORD_GAP[0], WORD_GAP[1] + 1)),
            ))
    return speakers


def split_sentences(seed: int, n: int, val_frac: float, test_frac: float) -> dict[int, str]:
    """Map sentence id (0..n-1, ids index SENTENCES) to its split."""
    order = np.random.default_rng([seed, 0]).permutation(n)
    n_val, n_test = round(n * val_frac), round(n * test_frac)
    split = {}
    for rank, sid in enumerate(order):
        split[int(sid)] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return split


def assign_readers(rng: np.random.Generator, speakers: list[Speaker],
                   readers: dict[int, int]) -> list[tuple[Speaker, int]]:
    """Give sentence `sid` to `readers[sid]` different speakers.

    Sentences go in random order, each to the least-loaded speakers (random
    among ties), so per-speaker loads never differ by more than one.
    """
    clips = []
    load = np.zeros(len(speakers))
    for sid in rng.permutation(sorted(readers)):
        for k in np.argsort(load + rng.random(len(load)) * 0.5)[:readers[sid]]:
            clips.append((speakers[k], int(sid)))
            load[k] += 1
    return clips


def eval_readers(seed: int, split: str, sids: list[int], n_speakers: int,
                 reads: int) -> dict[int, int]:
    """Readers per sentence so that each of `n_speakers` reads `reads` sentences.

    The n_speakers * reads readings are spread as evenly as possible (every
    sentence gets floor or ceil of the mean); which sentences get the extra
    reader is seeded and the same in every accent, so text stays no cue.
    """
    if not 1 <= reads <= len(sids) or n_speakers * reads < len(sids):
        sys.exit(f"ERROR: --eval-reads {reads}: each of the {n_speakers} {split} speakers must read "
                 f"between {-(-len(sids) // n_speakers)} and {len(sids)} of the {len(sids)} "
                 f"{split} sentences (so that every sentence is read)")
    base, extra = divmod(n_speakers * reads, len(sids))
    more = set(np.random.default_rng([seed, 3, ("val", "test").index(split)])
               .permutation(sids)[:extra].tolist())
    return {sid: base + (sid in more) for sid in sids}


def plan_clips(seed: int, speakers: list[Speaker], sentence_split: dict[int, str],
               train_repeats: int, eval_reads: int) -> list[tuple[Speaker, int]]:
    """Choose which (speaker, sentence) pairs to render.

    In training each sentence is read by `train_repeats` different speakers of
    every accent.  Each val/test speaker reads `eval_reads` sentences of its
    split, every sentence by about the same number of speakers.  All accents
    share identical sentence content with identical counts (text is no cue
    to the label), and per-speaker loads are balanced.
    """
    clips = []
    by_split = defaultdict(list)
    for sid, split in sorted(sentence_split.items()):
        by_split[split].append(sid)
    for a, label in enumerate(ACCENTS):
        own = {split: [s for s in speakers if s.label == label and s.split == split]
               for split in ("train", "val", "test")}
        if train_repeats > len(own["train"]):
            sys.exit("ERROR: --train-repeats exceeds the number of train speakers")
        clips += assign_readers(np.random.default_rng([seed, 2, a]), own["train"],
                                dict.fromkeys(by_split["train"], train_repeats))
        for i, split in enumerate(("val", "test"), start=1):
            readers = eval_readers(seed, split, by_split[split], len(own[split]), eval_reads)
            clips += assign_readers(np.random.default_rng([seed, 2, a, i]), own[split], readers)
    order = {spk.speaker: i for i, spk in enumerate(speakers)}
    return sorted(clips, key=lambda c: (order[c[0].speaker], c[1]))


def clip_path(spk: Speaker, sid: int) -> str:
    """Manifest path of a clip, relative to the corpus folder."""
    return f"audio/{spk.label}/{spk.speaker}_{sid:04d}.ogg"


def render(out: Path, spk: Speaker, sid: int, opus_level: float) -> float:
    """Synthesise, resample, trim and write one clip; return its duration (s)."""
    audio, sr = synthesize(SENTENCES[sid], voice_of(spk), spk.pitch, spk.speed,
                           spk.amplitude, spk.word_gap)
    x = to_16k_trimmed(audio, sr)
    sf.write(out / clip_path(spk, sid), x, TARGET_SR, format="OGG", subtype="OPUS",
             compression_level=opus_level)
    return len(x) / TARGET_SR


def check_disjoint(rows: list[dict], speakers: list[Speaker]) -> None:
    """Fail unless splits share no sentence, no speaker and no voice variant."""
    variant = {s.speaker: s.variant for s in speakers}
    for key, value in (("sentence_id", lambda r: r["sentence_id"]),
                       ("speaker", lambda r: r["speaker"]),
                       ("variant", lambda r: variant[r["speaker"]])):
        owners = defaultdict(set)
        for r in rows:
            owners[value(r)].add(r["split"])
        shared = [k for k, s in owners.items() if len(s) > 1]
        if shared:
            sys.exit(f"ERROR: {key} values shared across splits: {shared[:5]}")
    print("split check: train/val/test are sentence-, speaker- and voice-variant-disjoint")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write dict rows with a header taken from the first row's keys."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def summarize(rows: list[dict], durations: list[float], speakers: list[Speaker],
              out: Path) -> None:
    """Print clip counts per split and accent, durations and on-disk size."""
    counts = Counter((r["label"], r["split"]) for r in rows)
    splits = ("train", "val", "test")
    print(f"\n{'accent':<16}" + "".join(f"{s:>7}" for s in splits) + f"{'total':>7}")
    for label in ACCENTS:
        n = [counts[label, s] for s in splits]
        print(f"{label:<16}" + "".join(f"{c:>7}" for c in n) + f"{sum(n):>7}")
    n = [sum(counts[l, s] for l in ACCENTS) for s in splits]
    print(f"{'all':<16}" + "".join(f"{c:>7}" for c in n) + f"{sum(n):>7}")
    for s in splits:
        d = np.array([t for r, t in zip(rows, durations) if r["split"] == s])
        spk = len({r["speaker"] for r in rows if r["split"] == s})
        sent = len({r["sentence_id"] for r in rows if r["split"] == s})
        variants = dict.fromkeys(v.variant or "(none)" for v in speakers if v.split == s)
        print(f"{s:<5}: {spk} speakers, {sent} sentences, {d.sum() / 60:.1f} min audio, "
              f"clip {d.min():.2f}/{d.mean():.2f}/{d.max():.2f} s (min/mean/max); "
              f"variants {' '.join(variants)}")
    files = [p.stat() for p in out.rglob("*") if p.is_file()]
    size, disk = sum(f.st_size for f in files), sum(f.st_blocks * 512 for f in files)
    # Git stores file bytes; plain `du` also counts filesystem block rounding.
    print(f"corpus size: {size / 1e6:.2f} MB in {len(files)} files "
          f"({disk / 1e6:.2f} MB on this disk) in {out}")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="corpus folder to (re)write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sentences", type=int, default=len(SENTENCES),
                   help=f"use the first N sentences of the pool (max {len(SENTENCES)})")
    p.add_argument("--val-frac", type=float, default=0.15)
    p.add_argument("--test-frac", type=float, default=0.15)
    p.add_argument("--train-speakers", type=int, default=10, help="per accent")
    p.add_argument("--val-speakers", type=int, default=4, help="per accent")
    p.add_argument("--test-speakers", type=int, default=4, help="per accent")
    p.add_argument("--train-repeats", type=int, default=2,
                   help="train speakers reading each train sentence, per accent")
    p.add_argument("--eval-reads", type=int, default=EVAL_READS,
                   help="sentences of its split each val/test speaker reads")
    p.add_argument("--opus-level", type=float, default=0.975,
                   help="libsndfile Opus compression level (0.975 ~ 14 kbit/s, still wideband)")
    p.add_argument("--workers", type=int, default=8)
    args = p.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("ERROR: espeak-ng not found; install it with `apt-get install espeak-ng`")
    if not 0 < args.sentences <= len(SENTENCES):
        sys.exit(f"ERROR: --sentences must be in 1..{len(SENTENCES)}")
    if min(args.train_speakers, args.val_speakers, args.test_speakers,
           round(args.sentences * args.val_frac), round(args.sentences * args.test_frac)) < 1:
        sys.exit("ERROR: every split needs at least one speaker and one sentence")
    torch.set_num_threads(1)  # parallelism comes from the worker pool instead

    speakers = make_speakers(args.seed, args.train_speakers, args.val_speakers,
                             args.test_speakers)
    verify_voices(list(dict.fromkeys(s.variant for s in speakers)))
    sentence_split = split_sentences(args.seed, args.sentences, args.val_frac, args.test_frac)
    clips = plan_clips(args.seed, speakers, sentence_split, args.train_repeats, args.eval_reads)

    out = args.out
    shutil.rmtree(out / "audio", ignore_errors=True)  # no stale clips from older runs
    for label in ACCENTS:
        (out / "audio" / label).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.workers) as pool:  # espeak-ng runs in subprocesses
        durations = list(pool.map(lambda c: render(out, *c, args.opus_level), clips))

    rows = [{"path": clip_path(spk, sid), "label": spk.label, "speaker": spk.speaker,
             "split": spk.split, "sentence_id": sid} for spk, sid in clips]
    check_disjoint(rows, speakers)
    write_csv(out / "manifest.csv", rows)
    write_csv(out / "sentences.csv", [{"sentence_id": sid, "split": sentence_split[sid],
                                       "text": SENTENCES[sid]}
                                      for sid in sorted(sentence_split)])
    write_csv(out / "speakers.csv", [asdict(s) | {"voice": voice_of(s)} for s in speakers])
    summarize(rows, durations, speakers, out)


if __name__ == "__main__":
    main()
