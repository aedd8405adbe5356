"""Measures a demo checkpoint against the demo's bar, through the real `nova` commands.

    python -m tests.nova_cli.demo.measure [--model demo] [--prompts 48] [--out DIR] [-- NOVA FLAGS]

1. prompt following: random grammar prompts with random seeds through ``nova t2v``, each MP4 read
   by the detector (colour, shape, direction, background, all four; the object present in
   >= 90 % of the frames);
2. image to video: a rendered first frame and its caption through ``nova i2v``: frame 0's mean
   error against the input, the detector's reading of the whole MP4;
3. extension: 3 rounds of ``nova extend`` on a generated clip: the object present and its colour
   and shape read per frame; the share of "clean" pixels (near the background or the object
   colour) of the first clip against the last round;
4. speed: whole ``nova t2v`` / ``nova t2i`` processes (wall and CPU seconds, loading included).

Prints one JSON object (also written to DIR/measure.json). Flags after ``--`` go to every
generating command (e.g. ``-- --ar-steps 16``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nova_core.demo.scenes import BACKGROUNDS, COLOURS, parse_caption, random_scene
from tests.nova_core.demo import detector

ATTRIBUTES = ("colour", "shape", "direction", "background")
CLEAN_DISTANCE = 40.0  # RGB distance from the background or the object colour that counts as clean


def nova(*argv) -> None:
    """One `nova` command in this process (the model is loaded per command, as a user's would be)."""
    from nova_cli.app import run

    code = run([str(a) for a in argv] + ["--quiet", "--device", "cpu"])
    if code:
        raise SystemExit(f"`nova {argv[0]}` failed with exit code {code}")


def read_mp4(path: Path) -> np.ndarray:
    from nova_cli.media import read_video

    return read_video(path)[0]


def scene(seed: int, index: int, **fixed):
    return random_scene(np.random.default_rng([seed, 8, index]), **fixed)


def score(reading, caption: str) -> dict:
    want, read = parse_caption(caption), reading.attributes()
    got = {k: read[k] == want[k] for k in ATTRIBUTES}
    got["all"] = all(got.values())
    got["present"] = bool(reading.present.mean() >= 0.9)
    return got


def prompt_following(model, count: int, seed: int, out: Path, flags) -> dict:
    rng = np.random.default_rng([seed, 1])
    tally, rows = dict.fromkeys((*ATTRIBUTES, "all", "present"), 0), []
    for i in range(count):
        s, video_seed = scene(seed, i), int(rng.integers(2**31))
        path = out / f"t2v-{i:03d}.mp4"
        nova("t2v", s.caption, "--model", model, "--seed", video_seed, "-o", path, "--overwrite", *flags)
        reading = detector.read(read_mp4(path))
        got = score(reading, s.caption)
        for key, ok in got.items():
            tally[key] += ok
        rows.append(dict(prompt=s.caption, seed=video_seed, read=reading.attributes(), fill=round(reading.fill, 3),
                         present=round(float(reading.present.mean()), 2)))
    return dict(count=count, right={k: v / count for k, v in tally.items()}, items=rows)


def image_to_video(model, count: int, seed: int, out: Path, flags) -> dict:
    from PIL import Image

    errors, tally = [], dict.fromkeys((*ATTRIBUTES, "all", "present"), 0)
    for i in range(count):
        s = scene(seed + 1, i)
        first = s.render()[0]
        image = out / f"i2v-{i:03d}.png"
        Image.fromarray(first).save(image)
        path = out / f"i2v-{i:03d}.mp4"
        nova("i2v", image, "--prompt", s.caption, "--model", model, "--seed", i, "-o", path, "--overwrite", *flags)
        frames = read_mp4(path)
        if frames.shape[1:3] != first.shape[:2]:  # a checkpoint of another size: compare what i2v was given
            from nova_cli.media import fit_to_size

            first = fit_to_size(first[None], frames.shape[1:3])[0][0]
        errors.append(float(np.abs(frames[0].astype(float) - first).mean()))
        for key, ok in score(detector.read(frames), s.caption).items():
            tally[key] += ok
    return dict(count=count, frame0_mean_abs_error=float(np.mean(errors)), frame0_max_of_means=float(np.max(errors)),
                right={k: v / count for k, v in tally.items()})


def clean_share(frames: np.ndarray, background, colour) -> float:
    pixels = frames.astype(float)
    near = [np.linalg.norm(pixels - np.asarray(c, float), axis=-1) < CLEAN_DISTANCE for c in (background, colour)]
    return float((near[0] | near[1]).mean())


def last_round(extended: np.ndarray, first: np.ndarray, rounds: int) -> np.ndarray:
    """The frames the last of ``rounds`` equal extension rounds added to ``first``."""
    return extended[len(extended) - max((len(extended) - len(first)) // rounds, 1):]


def extension(model, count: int, seed: int, out: Path, flags, rounds: int = 3) -> dict:
    results = []
    for i in range(count):
        s = scene(seed + 2, i)
        clip, longer = out / f"ext-{i:03d}-0.mp4", out / f"ext-{i:03d}-{rounds}.mp4"
        nova("t2v", s.caption, "--model", model, "--seed", i, "-o", clip, "--overwrite", *flags)
        nova("extend", clip, "--prompt", s.caption, "--steps", rounds, "--model", model, "--seed", i,
             "-o", longer, "--overwrite", *flags)
        frames = read_mp4(longer)
        first = read_mp4(clip)
        per_frame = [detector.read(f) for f in frames]
        last = last_round(frames, first, rounds)
        bg, colour = BACKGROUNDS[s.background], COLOURS[s.colour]
        results.append(dict(
            prompt=s.caption, frames=len(frames),
            present=float(np.mean([r.present.any() for r in per_frame])),
            colour=float(np.mean([r.colour == s.colour for r in per_frame])),
            shape=float(np.mean([r.shape == s.shape for r in per_frame])),
            clean_first=clean_share(first, bg, colour), clean_last=clean_share(last, bg, colour)))
    drop = [r["clean_first"] - r["clean_last"] for r in results]
    return dict(count=count, clean_drop_max=float(np.max(drop)), items=results,
                all_frames_right=sum(r["present"] == r["colour"] == r["shape"] == 1.0 for r in results) / count)


def speed(model, command: str, repeats: int = 3) -> dict:
    """Whole processes, loading included: the median wall and CPU (own + children) seconds."""
    walls, cpus = [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "nova_cli", command, "a red circle moving right on a black background",
                            "--model", model, "--seed", str(i), "-o", folder, "--quiet"], check=True,
                           stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return dict(wall_s=float(np.median(walls)), cpu_s=float(np.median(cpus)), repeats=repeats)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m tests.nova_cli.demo.measure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--i2v", type=int, default=8, help="image-to-video cases")
    parser.add_argument("--extend", type=int, default=4, help="extension cases (3 rounds each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="keep the MP4s and measure.json here")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="nova-measure-"))
    out.mkdir(parents=True, exist_ok=True)
    report = dict(model=args.model, flags=flags)
    report["prompt_following"] = prompt_following(args.model, args.prompts, args.seed, out, flags)
    if args.i2v:
        report["image_to_video"] = image_to_video(args.model, args.i2v, args.seed, out, flags)
    if args.extend:
        report["extension"] = extension(args.model, args.extend, args.seed, out, flags)
    if not args.no_speed:
        report["speed"] = {c: speed(args.model, c) for c in ("t2v", "t2i")}
    (out / "measure.json").write_text(json.dumps(report, indent=1) + "\n")
    summary = dict(report)
    summary["prompt_following"] = {k: v for k, v in report["prompt_following"].items() if k != "items"}
    if "extension" in summary:
        summary["extension"] = {k: v for k, v in report["extension"].items() if k != "items"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
