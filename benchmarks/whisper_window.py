"""Whisper encoder cost per clip: the clip's own frames (ftkit) vs 30 s padding (transformers).

transformers' ``WhisperEncoder`` insists on 3000 log-mel frames (30 s); the
``whisper`` backbone runs the same modules on the clip's frames with the
position table sliced. This prints, for clips of the accent corpus, the
encoder time per clip of each (batch 1, no gradient, measured side by side in
alternating rounds) and how close the features are: cosine between the
mean over the clip's frames of the last layer, sliced vs padded.

    .venv/bin/python benchmarks/whisper_window.py --clips 16 --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "recipes" / "data" / "accent_corpus"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import WhisperFeatureExtractor

    from ft.contracts import BuildContext
    from ft.plugins.speech.whisper import WhisperOptions, build_whisper

    backbone = build_whisper(WhisperOptions(), BuildContext()).eval()
    extractor = WhisperFeatureExtractor()
    with (CORPUS / "manifest.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"][:: 8][: args.clips]
    clips = [torch.from_numpy(sf.read(CORPUS / r["path"], dtype="float32")[0]) for r in rows]
    padded = [extractor(c.numpy(), sampling_rate=16000, return_tensors="pt").input_features for c in clips]

    def sliced_pass() -> list[torch.Tensor]:
        return [backbone(c[None]) for c in clips]

    def padded_pass() -> list[torch.Tensor]:
        out = []
        for c, features in zip(clips, padded):
            hidden = backbone.model(features).last_hidden_state
            steps = (c.shape[0] // 160 - 1) // 2 + 1
            out.append(hidden[:, :steps].mean(dim=1))
        return out

    times: dict[str, list[float]] = {"sliced": [], "padded": []}
    with torch.no_grad():
        sliced_pass(), padded_pass()  # warm up
        for _ in range(args.rounds):
            for name, run in (("sliced", sliced_pass), ("padded", padded_pass)):
                t0 = time.perf_counter()
                features = run()
                times[name].append((time.perf_counter() - t0) / len(clips))
                if name == "sliced":
                    sliced_features = features
                else:
                    padded_features = features
    cosine = [torch.nn.functional.cosine_similarity(a, b).item() for a, b in zip(sliced_features, padded_features)]
    seconds = statistics.mean(c.shape[0] / 16000 for c in clips)
    sliced, full = statistics.median(times["sliced"]), statistics.median(times["padded"])
    print(f"Whisper tiny.en encoder, {len(clips)} test clips (mean {seconds:.1f} s), batch 1, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print(f"  sliced to the clip: {1000 * sliced:8.1f} ms/clip")
    print(f"  padded to 30 s:     {1000 * full:8.1f} ms/clip   ({full / sliced:.1f}x the sliced cost)")
    print(f"  cosine of the last layer's mean over the clip's frames, sliced vs padded: "
          f"mean {statistics.mean(cosine):.3f}, min {min(cosine):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
