"""The demo checkpoint's recipe: one seeded command that rebuilds it from nothing on a CPU.

    python -m nova_cli.demo.recipe OUTDIR [--smoke] [--seed 0] [--resume]

1. render the clips and images (``dataset``) into OUTDIR/work/data, and more stills into work/stills;
2. train the causal 3D VAE on the data (``nova_core.training.vae``) and set its ``scaling_factor``;
3. write a base checkpoint (that VAE, the frozen Phi + tokenizer, DDPM, a transformer config);
4. ``nova prepare`` both folders with it (motion flow measured as ``nova flow`` does), ``--text-embeddings``;
5. ``nova train --scratch`` the transformer on the stills, then ``nova train`` on the whole mix from
   those weights, through the real command;
6. copy the last training checkpoint, without its resume state, to OUTDIR/checkpoint, with
   ``recipe.json``: every setting, the git commit, the losses and the time each stage took.

Each finished stage is written to OUTDIR/work/record.json; ``--resume`` continues a stopped run
from the stage that did not finish (every stage is seeded, so the weights are those of an
unbroken run). ``--smoke`` runs the same stages on a handful of items and steps (a test runs it).

Cost at the full settings on the 2-core build machine (wall time, both cores; the shipped run):
data 2.5 min, the VAE 36 min (2400 steps of 8 crops), prepare 7.5 min, the transformer on stills
10 min (4000 steps of 16) and on the mix 41 min (4000 steps of 16): 97 minutes, inside the 2 hours
asked (from the log's times). Each stage's CPU time is in the shipped ``recipe.json``; its wall
time is recorded too from the next run on.

Fourteenth session: the shipped checkpoint is this recipe's output at seed 0. On 48 random prompts
it reads background 100 %, colour 92 %, shape 46 %, direction 52 % (README.md); the VAE draws every
object as a round blob, and the later frames lose the object's place (below).

Status (third full run, 16 latent channels, VAE only): the VAE's whole 33-frame reconstructions
read right for colour in 8, shape in 6 and direction in 19 of 24 clips (L1 0.054). Its objects
lagged behind in time: every causal conv averaged ~3 frames from the start, so each frame's object
was drawn back towards frame 0's place. A fresh VAE now starts per frame
(``components.start_per_frame``). A 600-step probe with that start reads direction in 24 of 24 and
tracks the object's position to 1-3 px. With more steps colour comes too (22 of 24 from 2400 steps
of a 4800-step cosine), but shape does not: every object comes back as a round blob, so no
checkpoint ships yet (the probes are in CHANGELOG.md). The full recipe has not yet run with that
start.
The transformer stage, run on a 3000-step probe VAE (colour right in 22 of 24 reconstructions),
paints the background right for 24 of 24 prompts but an object for only 9 (colour right in 2).
Seventh session (80x128, a 1000-step VAE): transformer runs of 1000-2000 steps paint the
background for 12 of 12 prompts, an object in at most 2 of 12 images, and in i2v lose the given
object from latent frame 1 on; their later frames hardly use the previous frames (CHANGELOG.md).
Tenth session: on oracle latents (no VAE; tests/nova_cli/demo/oracle.py) the transformer stage fails
the same way. Its spatial encoder attends uniformly over the condition tokens, so the object's place
in the previous frame never reaches the next one; `model.init = "aligned"` fixes the attention, and
the object starts to show in the head's estimates only after 1500-2000 steps.
Eleventh session: scenes enter on lanes and hidden tokens off the plain background weigh up to 10x
(`train.rare_token_weight`); 3000 oracle steps then learn the object's colour but not its place
(a cross over the lanes in every sample; i2v ignores the given object's place).
Twelfth session: with the paper's masks nearly every training frame shows a few tokens, and the
model read the background off them, not the caption; half the frames now hide every token
(`train.full_mask_share`), and scenes start at the frame's centre. Oracle stills then come out
right in colour 23, background 24 and place 23 of 24 after 4000 steps; on clips the later frames
still draw the object in all four directions at once (CHANGELOG.md).
Thirteenth session: stills first, then clips from those weights, gives the caption's colour in
frame 0 and after (oracle latents, 1000 clip steps: t2i 12, t2v 11, i2v 11 of 12); the later
frames follow the direction word only from ~2000 clip steps (t2v direction 1 of 12 at 1000, 6 of
12 at 2000). ``oracle.history_reach`` finds the earlier frames' object place lost in the spatial
encoder's second half.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from nova_core.errors import NovaError
from nova_core.training.vae import VAETrainSettings
from nova_core.demo.components import ComponentSettings

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130  # as the nova command's exit codes


@dataclass
class RecipeSettings:
    seed: int = 0
    num_clips: int = 1536
    num_images: int = 384  # stills: the t2i case, motion flow 0 (a fifth of the mix)
    components: ComponentSettings = field(default_factory=ComponentSettings)
    # 9-frame windows, every 1st to 3rd frame: on 5-frame windows (objects move 4-12 px) the VAE
    # redraws frame 0's object in every frame. 48x64 crops that hold the object (random crops miss
    # it in 31 %), its pixels weighted 1 + 3 x their distance from the median colour (unweighted,
    # the VAE paints small objects over with their background). lr 1e-4: 1e-3 fits worse.
    # 8 crops a step, batched (one conv3d call per step: ~1.1 s on 2 cores).
    vae: VAETrainSettings = field(default_factory=lambda: VAETrainSettings(
        steps=2400, batch_size=8, clip_frames=9, max_frame_stride=3, crop=[48, 64], crop_on_content=True,
        lr=1e-4, schedule="cosine", rare_pixel_weight=3.0, latent_anchor_weight=1.0))
    # The transformer learns stills first, then clips from those weights (two `nova train` runs).
    # Inside clips, frame 0 learns the caption's object slowly (oracle latents, from scratch: t2i
    # colour 5 of 12 after 2000 clip steps); 4000 steps of stills (~6x cheaper a sample) and 1000
    # clip steps from them give 12 of 12, and t2v / i2v colour 11 of 12 (CHANGELOG.md, thirteenth session).
    stills_images: int = 1024  # the first num_images of them are the mix's stills
    stills_steps: int = 4000
    # `nova train` flags and --set assignments
    train_steps: int = 4000
    train_batch: int = 16
    lr: float = 5e-4
    warmup_steps: int = 100
    ema_decay: float = 0.999
    # hidden tokens far from their frame's plain background weigh up to 10x, and half the frames hide
    # every token (the caption, not a few visible tokens, must give the background and the object):
    # see CHANGELOG.md, probes of the eleventh and twelfth sessions
    train_set: list = field(default_factory=lambda: [
        "optim.schedule=\"cosine\"", "log.keep_last=1", "train.rare_token_weight=9.0",
        "train.full_mask_share=0.5"])
    # the stills run starts from scratch, its spatial encoder's attention on the condition token over
    # each token ("aligned")
    stills_set: list = field(default_factory=lambda: ["model.init=\"aligned\""])
    # the clip run continues from the stills' weights with one noise draw per token, not the paper's
    # 4: on the clips, the same learning per step for ~0.6x the CPU (thirteenth session)
    clips_set: list = field(default_factory=lambda: ["train.loss_repeat=1"])

    def to_dict(self) -> dict:
        return asdict(self)


SMOKE = dict(num_clips=3, num_images=1,
             vae=VAETrainSettings(steps=2, batch_size=1, clip_frames=5, crop=[48, 64], warmup_steps=1),
             stills_images=2, stills_steps=2, train_steps=2, train_batch=2, warmup_steps=1, ema_decay=0.9)


class RecipeError(Exception):
    """A stage failed; the message says which and why (one line)."""


def git_commit() -> dict:
    """The commit the code came from, and whether the checkout had uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def nova(*argv) -> None:
    """Run a ``nova`` command in this process; a non-zero exit is a RecipeError."""
    from ..app import run

    code = run([str(a) for a in argv])
    if code:
        raise RecipeError(f"`nova {argv[0]}` failed with exit code {code} (its error is above)")


def read_items(paths: list[Path]) -> list[np.ndarray]:
    """The rendered files as ``nova prepare`` reads them (decoded MP4 frames, PNG pixels)."""
    from ..media import read_image, read_video

    return [read_video(p)[0] if p.suffix == ".mp4" else read_image(p)[None] for p in paths]


def reconstruction_l1(vae, items: list[np.ndarray], count: int = 16) -> float:
    """Mean |x - VAE(x)| (pixels in [-1, 1]) over the first 9 whole, uncropped frames of the last
    ``count`` clips: what the transformer's latents can give back at best."""
    import torch

    from nova_core.training.vae import to_pixels

    clips = [frames[:9] for frames in items if len(frames) > 1][-count:]
    with torch.no_grad():
        errors = [(vae(x).sample - x).abs().mean().item() for x in (to_pixels(c)[None] for c in clips)]
    return float(np.mean(errors))


RECORD = "record.json"  # in work/: the settings and every finished stage, so that --resume can continue


def build(outdir: Path, settings: RecipeSettings, say=print, resume: bool = False) -> Path:
    """Run every stage into ``outdir`` (new or empty, or a run to resume); returns the checkpoint
    folder. Every stage is seeded, so a resumed run ends with the weights an unbroken one makes."""
    import torch

    from .dataset import write_dataset

    work, final = outdir / "work", outdir / "checkpoint"
    record_path = work / RECORD
    record = {"settings": settings.to_dict(), "source": git_commit(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "stages": {}}
    if resume:
        record = json.loads(record_path.read_text())
        if record["settings"] != json.loads(json.dumps(settings.to_dict())):
            raise RecipeError(f"{record_path}: that run has other settings; start a new folder")
        record.setdefault("resumed", []).append(git_commit())

    def finished(name):
        if "cpu_s" in record["stages"].get(name, {}):
            say(f"[recipe] {name}: finished before, kept")
            return True
        return False

    def stage(name):
        say(f"[recipe] {name}")
        record["stages"][name] = {"started": time.process_time(), "wall_started": time.time(),
                                  "source": git_commit()["commit"]}

    def done(name, **values):
        entry = record["stages"][name]
        entry["cpu_s"] = round(time.process_time() - entry.pop("started"), 2)
        entry["wall_s"] = round(time.time() - entry.pop("wall_started"), 2)
        entry.update(values)
        work.mkdir(parents=True, exist_ok=True)
        tmp = record_path.with_name(f".{RECORD}.tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(record_path)

    if not finished("data"):
        stage("data")
        write_dataset(work / "data", settings.num_clips, settings.num_images, settings.seed)
        write_dataset(work / "stills", 0, settings.stills_images, settings.seed)
        done("data", clips=settings.num_clips, images=settings.num_images, stills=settings.stills_images)

    base = work / "base"
    if not finished("vae"):
        stage("vae")
        vae_stage(work, base, settings, say, done)

    if not finished("prepare"):
        stage("prepare")
        for data, cache in (("data", "cache"), ("stills", "stills-cache")):
            shutil.rmtree(work / cache, ignore_errors=True)  # a stopped prepare starts over (same latents)
            nova("prepare", work / data, work / cache, "--model", base, "--text-embeddings", "--device", "cpu")
        index = json.loads((work / "cache" / "index.json").read_text())
        flows = [it["motion_flow"] for it in index["items"] if it["kind"] == "video"]
        done("prepare", items=len(index["items"]), skipped=len(index.get("skipped", [])),
             motion_flow={"min": min(flows, default=0), "median": float(np.median(flows)) if flows else 0,
                          "max": max(flows, default=0)})

    from nova_core.training.checkpoint import STATE, latest

    if not finished("stills"):
        stage("stills")
        log = train_run(work / "stills-train", settings,
                        ["--model", base, "--scratch", "--cache", work / "stills-cache"],
                        settings.stills_steps, settings.stills_set)
        done("stills", first_loss=log[0]["loss"], last_loss=log[-1]["loss"], log=log)

    if not finished("train"):
        stage("train")
        log = train_run(work / "train", settings, ["--model", latest(work / "stills-train"), "--cache", work / "cache"],
                        settings.train_steps, settings.clips_set)
        done("train", first_loss=log[0]["loss"], last_loss=log[-1]["loss"], log=log)

    stage("assemble")
    trained = latest(work / "train")
    tmp = outdir / ".checkpoint.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(trained, tmp, ignore=shutil.ignore_patterns(STATE))
    shutil.copyfile(work / "train" / "config.toml", tmp / "train_config.toml")
    done("assemble")
    (tmp / "recipe.json").write_text(json.dumps(record, indent=1) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return final


def train_run(output: Path, settings: RecipeSettings, source: list, steps: int, extra_set: list) -> list[dict]:
    """One `nova train` run into ``output`` (a stopped one starts over: same seed, same weights);
    returns its log lines."""
    s = settings
    shutil.rmtree(output, ignore_errors=True)
    nova("train", *source, "--output-dir", output, "--steps", steps, "--batch-size", s.train_batch, "--seed", s.seed,
         "--lr", s.lr, "--warmup-steps", s.warmup_steps, "--ema-decay", s.ema_decay, "--mixed-precision", "no",
         "--device", "cpu", "--log-every", max(1, steps // 50), "--save-every", steps,
         *[arg for assignment in [*s.train_set, *extra_set] for arg in ("--set", assignment)])
    return [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]


def vae_stage(work: Path, base: Path, settings: RecipeSettings, say, done) -> None:
    """Train the VAE on the rendered files, set its latent scale, write the base checkpoint."""
    from nova_core.demo import components
    from nova_core.training.vae import latent_scale, train_vae
    from .dataset import write_dataset

    items = read_items(write_dataset(work / "data", settings.num_clips, settings.num_images, settings.seed))
    vae = components.vae(settings.components, settings.seed)
    every = max(1, settings.vae.steps // 20)
    history = train_vae(vae, items, replace(settings.vae, seed=settings.seed),
                        log=lambda step, m: step % every == 0 and say(
                            f"[vae] step {step}/{settings.vae.steps} loss {m['loss']:.4f}"))
    scale = latent_scale(vae, items[:: max(1, len(items) // 64)])
    eval_l1 = reconstruction_l1(vae, items)
    vae.register_to_config(scaling_factor=scale)
    vae.eval().requires_grad_(False)
    say(f"[vae] reconstruction L1 on 16 whole clips: {eval_l1:.4f} (pixels in [-1, 1])")
    shutil.rmtree(base, ignore_errors=True)
    components.save_checkpoint(base, vae_model=vae, settings=settings.components, seed=settings.seed)
    done("vae", first_loss=history[0]["loss"], last_loss=float(np.mean([m["loss"] for m in history[-10:]])),
         reconstruction_l1=eval_l1, scaling_factor=scale)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nova_cli.demo.recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path, help="new or empty folder: work/ (data, cache, runs) and checkpoint/")
    parser.add_argument("--smoke", action="store_true", help="a few items and steps, to check the recipe runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue a stopped run in OUTDIR: finished stages are kept, the stopped one is redone")
    args = parser.parse_args(argv)
    if args.resume and not (args.outdir / "work" / RECORD).is_file():
        print(f"error: {args.outdir}: no run to resume (no work/{RECORD})", file=sys.stderr)
        return EXIT_USAGE
    if not args.resume and args.outdir.exists() and (not args.outdir.is_dir() or any(args.outdir.iterdir())):
        print(f"error: {args.outdir}: exists and is not an empty folder (the recipe starts from nothing; "
              f"--resume continues a stopped run)", file=sys.stderr)
        return EXIT_USAGE
    settings = RecipeSettings(seed=args.seed, **(SMOKE if args.smoke else {}))
    args.outdir.mkdir(parents=True, exist_ok=True)
    try:
        folder = build(args.outdir, settings, say=lambda text: print(text, file=sys.stderr, flush=True),
                       resume=args.resume)
    except (RecipeError, NovaError, FloatingPointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"interrupted: {args.outdir} is incomplete; add --resume to the same command to continue",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
