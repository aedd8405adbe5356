"""Everything a lent GPU must show, in one call (``.ci/gpu-check``; how to run it: ``.ci/README.md``).

A GPU is lent only by chance and for about 15 minutes in all, start-up included, so this does no
set-up beyond installing the wheels carried beside the tree, gives every step its own time limit
inside one overall deadline, records a step's failure and goes on, and always writes its results:
``gpu-check.json`` (everything), ``gpu-check.md`` (the tables) and ``gpu-check.log`` (each step's
output) into the folder it is given.

Without a GPU it checks that its inputs are in place (scripts, CUDA tests, reference data, the
bench command lines, the wheels or what ``--fetch-wheels`` would fetch), says so in one line and
exits 0; CI runs that mode (``tests/test_gpu_check.py``). Only the standard library is imported at
the top: the install step must be able to run before diffusers exists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `tests` (the parity step's helpers) import from the tree
    sys.path.insert(0, str(REPO))
WHEELS = REPO / ".whl"
STAGED_REFERENCE = REPO / ".ref"
DEADLINE_S = 450  # the whole check; the lent machine's start-up and transfers come on top
CARRY_LIMIT = 64 * 2**20

# What the GPU machine lacks (see /work/.library/device/KINDS.md: torch 2.11 + cu130, transformers,
# huggingface-hub 1.33, safetensors, numpy, pillow, regex, requests, filelock, imageio, typer, rich,
# opencv are there). diffusers 0.42.1 needs huggingface-hub >= 1.32 (there: 1.33); its
# importlib_metadata requirement is only imported on Python < 3.8 but is carried so pip's record is
# whole (8.7.0: needs only zipp, which is there). imageio-ffmpeg 0.6.0: 0.8.x is 68 MB, over the
# run tool's 64 MiB carry limit; 0.6.0 (29.5 MB) has the same write_frames/read_frames API.
WHEEL_PINS = {"diffusers": "0.42.1", "imageio-ffmpeg": "0.6.0", "importlib-metadata": "8.7.0"}
GPU_PYTHON = "3.12"  # python3 on the lent machine is 3.12.3
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux2010_x86_64", "manylinux1_x86_64"]
REFERENCE_PARTS = ["cases", "tiny-t2v", "tiny-t2i"]  # what the CUDA tests and parity read (not manifests)
CUDA_TESTS = ["tests/nova_core/test_cuda.py", "tests/nova_cli/test_cuda.py"]
CASES = ["t2i", "t2v", "i2v"]

# nova bench runs: (step name, arguments, time limit in s). The low-memory run keeps the full 33
# frames (the VAE decode sets its peak) with few steps (peak memory does not grow with steps).
BENCHES = [
    ("bench_video", ["--config", "video", "--cuda-graphs"], 200),
    ("bench_image", ["--config", "image", "--cuda-graphs", "--no-kv"], 90),
    ("bench_video_low_memory", ["--config", "video", "--low-memory", "--no-plain", "--no-kv", "--ar-steps", "4",
                                "--diffusion-steps", "2"], 110),
]


def wheel_name(dist: str) -> str:
    return dist.replace("-", "_")


def find_wheel(dist: str, folder: Path | None = None) -> Path | None:
    folder = folder or WHEELS
    found = sorted(folder.glob(f"{wheel_name(dist)}-{WHEEL_PINS[dist]}-*.whl")) if folder.is_dir() else []
    return found[0] if found else None


def reference_folder() -> Path | None:
    """$NOVA_REFERENCE, else .ref/ (carried to the GPU machine), else shared/reference beside the checkout
    (or beside a parent), else /work/shared/reference: where the test suite looks (tests/conftest.py),
    so a clone made elsewhere (e.g. under /tmp) finds it too."""
    candidates = [Path(os.environ["NOVA_REFERENCE"])] if os.environ.get("NOVA_REFERENCE") else []
    candidates += [STAGED_REFERENCE] + [p / "shared" / "reference" for p in REPO.parents]
    candidates += [Path("/work/shared/reference")]
    for folder in candidates:
        if all((folder / part).is_dir() for part in REFERENCE_PARTS):
            return folder
    return None


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


# ----------------------------------------------------------------------------- --fetch-wheels
def fetch_wheels(python: str) -> int:
    """Download the pinned wheels for the GPU machine into .whl/ and stage the reference data in .ref/."""
    WHEELS.mkdir(exist_ok=True)
    for dist in WHEEL_PINS:  # one version of each: two stop the whole install there
        for old in WHEELS.glob(f"{wheel_name(dist)}-*.whl"):
            if old != find_wheel(dist):
                old.unlink()
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", GPU_PYTHON,
               "--implementation", "cp", *platforms, "--platform", "any", "-d", str(WHEELS),
               *(f"{d}=={v}" for d, v in WHEEL_PINS.items())]
    print("gpu-check: " + " ".join(command), flush=True)
    if subprocess.run(command).returncode:
        print("gpu-check: pip download failed", file=sys.stderr)
        return 1
    source = reference_folder()
    if source is None:
        print("gpu-check: reference data not found (set NOVA_REFERENCE)", file=sys.stderr)
        return 1
    if source.resolve() != STAGED_REFERENCE.resolve():
        writable(STAGED_REFERENCE)
        shutil.rmtree(STAGED_REFERENCE, ignore_errors=True)
        for part in REFERENCE_PARTS:
            shutil.copytree(source / part, STAGED_REFERENCE / part)
        writable(STAGED_REFERENCE)  # shared/ is read-only; a later --fetch-wheels must replace the copy
    total = carried_bytes()
    for dist in WHEEL_PINS:
        print(f"gpu-check: {find_wheel(dist).name} ({find_wheel(dist).stat().st_size / 2**20:.1f} MiB)")
    print(f"gpu-check: .ref/ {folder_bytes(STAGED_REFERENCE) / 2**20:.1f} MiB; tree + .whl + .ref = "
          f"{total / 2**20:.1f} MiB of the run tool's 64 MiB")
    return 0 if total < CARRY_LIMIT else 1


def writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")] if folder.is_dir() else []:
        path.chmod(path.stat().st_mode | 0o200)


def carried_bytes() -> int:
    """What a run call sends: tracked and untracked-not-ignored files, plus .whl/ and .ref/."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            text=True).stdout.split("\0")
    tree = sum((REPO / f).stat().st_size for f in listed if f and (REPO / f).is_file())
    return tree + folder_bytes(WHEELS) + folder_bytes(STAGED_REFERENCE)


# ----------------------------------------------------------------------------- no-GPU mode
def check_inputs() -> tuple[list[str], list[str]]:
    """(problems, notes): what would make the GPU run fail, and what is merely not staged yet."""
    problems, notes = [], []
    for path in [".ci/gpu-check", ".ci/README.md", *CUDA_TESTS]:
        if not (REPO / path).is_file():
            problems.append(f"{path} is missing")
    reference = reference_folder()
    if reference is None:
        problems.append("reference data (cases, tiny-t2v, tiny-t2i) not found; set NOVA_REFERENCE")
    else:
        for case in CASES:
            for suffix in (".json", ".safetensors"):
                if not (reference / "cases" / f"{case}{suffix}").is_file():
                    problems.append(f"reference case {case}{suffix} is missing in {reference / 'cases'}")
        if reference != STAGED_REFERENCE:
            notes.append("reference data not staged in .ref/ (--fetch-wheels copies it)")
    missing = [d for d in WHEEL_PINS if find_wheel(d) is None]
    if missing:
        notes.append("no wheels in .whl/ for " + ", ".join(f"{d}=={WHEEL_PINS[d]}" for d in missing)
                     + f"; --fetch-wheels would fetch them (cp{GPU_PYTHON.replace('.', '')}, manylinux x86_64)")
    problems += check_commands()
    return problems, notes


def check_commands() -> list[str]:
    """Each bench command line parses and stops at the device check; the CUDA tests collect."""
    problems = []
    env = step_env()
    for name, args, _ in BENCHES:
        result = subprocess.run([sys.executable, "-m", "nova_cli", "bench", *args, "--json", "--device", "cuda"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        if result.returncode != 2 or "no CUDA GPU" not in result.stderr:
            problems.append(f"{name}: `nova bench {' '.join(args)}` does not parse: {result.stderr.strip()[-300:]}")
    collect = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                              *CUDA_TESTS], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if collect.returncode != 0 or "tests collected" not in collect.stdout:
        problems.append("the CUDA tests do not collect: " + (collect.stdout + collect.stderr).strip()[-500:])
    try:
        from tests.nova_core.test_cuda import run_case  # noqa: F401  (what the parity step calls)
    except Exception as exc:  # noqa: BLE001  (any import failure is the finding)
        problems.append(f"parity step cannot import tests.nova_core.test_cuda.run_case: {exc}")
    return problems


# ----------------------------------------------------------------------------- the GPU run
def step_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", _TYPER_FORCE_DISABLE_TERMINAL="1")
    paths = [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    reference = reference_folder()
    if reference is not None:
        env["NOVA_REFERENCE"] = str(reference)
    return env


class Steps:
    """Runs each step as a process group with its own limit inside the overall deadline."""

    def __init__(self, out: Path, deadline_s: float):
        self.out, self.started, self.deadline_s = out, time.monotonic(), deadline_s
        self.log = open(out / "gpu-check.log", "w")
        self.results: dict[str, dict] = {}
        self.outputs: dict[str, str] = {}  # whole outputs (results are parsed from these)

    def left(self) -> float:
        return self.deadline_s - (time.monotonic() - self.started)

    def run(self, name: str, command: list[str], limit: float, env: dict) -> dict:
        budget = min(limit, self.left() - 5)
        record = {"command": " ".join(command), "limit_s": round(budget, 1)}
        if self.left() - 5 < 15:  # too little of the deadline left for any real step
            record.update(status="skipped", why="out of time (the check's overall deadline)")
            return self._done(name, record, "")
        print(f"gpu-check: {name} (limit {budget:.0f} s)", flush=True)
        start = time.monotonic()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=budget)
            record["status"] = "ok" if proc.returncode == 0 else "failed"
            record["rc"] = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            record.update(status="timeout", rc=None)
        record["seconds"] = round(time.monotonic() - start, 1)
        return self._done(name, record, output or "")

    def _done(self, name, record, output) -> dict:
        record["output_tail"] = output[-3000:]
        self.outputs[name] = output
        self.log.write(f"===== {name}: {record['status']} ({record.get('seconds', 0)} s)\n$ {record['command']}\n"
                       f"{output}\n")
        self.log.flush()
        self.results[name] = record
        return record


def install(steps: Steps, env: dict) -> dict:
    """diffusers, imageio-ffmpeg (+ importlib-metadata) from .whl/ without network, then the project
    without its dependencies (so the machine's torch 2.11 + cu130 stays)."""
    wheels = [str(find_wheel(d)) for d in WHEEL_PINS if find_wheel(d)]
    script = (
        "set -e\n"
        f"if [ {len(wheels)} -lt {len(WHEEL_PINS)} ]; then echo 'missing wheels in .whl/ (run --fetch-wheels "
        "here and carry .whl)'; fi\n"
        f"{sys.executable} -m pip install -q --no-index --no-deps --no-compile --no-cache-dir {' '.join(wheels)} "
        f"|| {{ {sys.executable} -m pip install -q --no-index --no-deps --no-compile --target /tmp/nova-site "
        f"{' '.join(wheels)} && echo TARGET=/tmp/nova-site; }}\n"
        f"{sys.executable} -m pip install -q --no-index --no-deps --no-build-isolation -e . "
        "|| echo 'project not installed (PYTHONPATH is used instead)'\n"
    )
    record = steps.run("install", ["bash", "-c", script], 90, env)
    if "TARGET=/tmp/nova-site" in steps.outputs["install"]:
        env["PYTHONPATH"] = "/tmp/nova-site" + os.pathsep + env["PYTHONPATH"]
    return record


ENV_PROBE = """
import json, torch, diffusers, transformers, huggingface_hub, imageio_ffmpeg
p = torch.cuda.get_device_properties(0)
print(json.dumps({"gpu": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "capability": f"{p.major}.{p.minor}",
  "gpus": torch.cuda.device_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
  "cudnn": torch.backends.cudnn.version(), "diffusers": diffusers.__version__,
  "transformers": transformers.__version__, "huggingface_hub": huggingface_hub.__version__,
  "ffmpeg": imageio_ffmpeg.get_ffmpeg_version(), "tf32_default": {"matmul": torch.backends.cuda.matmul.allow_tf32,
  "cudnn": torch.backends.cudnn.allow_tf32}}))
"""


def parity(out_file: Path) -> None:
    """The reference cases on CUDA: float32 (TF32 off) against the reference per path; float32 with
    PyTorch's TF32 defaults; float16 / bfloat16 against CUDA float32. Max |difference| of latents."""
    import torch

    from nova_core.devices import tf32
    from tests.nova_core.test_cuda import run_case

    rows = []
    for case in CASES:
        with tf32(False):
            exact, ref = run_case(case)
            runs = {"plain float32": run_case(case, fast=False)[0], "fast float32": exact,
                    "graphs float32": run_case(case, fast=True, cuda_graphs=True)[0]}
            halves = {f"fast {n}": run_case(case, getattr(torch, n))[0] for n in ("float16", "bfloat16")}
        with tf32(True):
            runs["fast float32 + TF32"] = run_case(case)[0]
        scale = ref.abs().max().item()
        for name, latents in runs.items():
            rows.append({"case": case, "run": name, "against": "reference",
                         "max_abs_diff": (latents - ref).abs().max().item(), "ref_max_abs": scale})
        for name, latents in halves.items():
            rows.append({"case": case, "run": name, "against": "CUDA float32",
                         "max_abs_diff": (latents - exact).abs().max().item(), "ref_max_abs": scale,
                         "finite": bool(torch.isfinite(latents).all())})
    out_file.write_text(json.dumps(rows))
    for row in rows:
        print(f"{row['case']:4} {row['run']:22} vs {row['against']:13} max|d| {row['max_abs_diff']:.3g}")


def parse_pytest(output: str) -> dict:
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", output)}
    failures = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    return {"counts": counts, "failures": failures}


def last_json(output: str):
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def gpu_run(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    steps, env = Steps(out, DEADLINE_S), step_env()
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": steps.results}
    python = sys.executable
    install(steps, env)
    steps.run("environment", [python, "-c", ENV_PROBE], 60, env)
    report["environment"] = last_json(steps.outputs["environment"])
    steps.run("cuda_tests", [python, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider",
                                     f"--junitxml={out / 'cuda-tests.xml'}", *CUDA_TESTS], 120, env)
    report["cuda_tests"] = parse_pytest(steps.outputs["cuda_tests"])
    parity_file = out / "parity.json"
    steps.run("parity", [python, str(Path(__file__)), "--parity", str(parity_file)], 80, env)
    report["parity"] = json.loads(parity_file.read_text()) if parity_file.is_file() else None
    report["bench"] = {}
    for name, args, limit in BENCHES:
        record = steps.run(name, [python, "-m", "nova_cli", "bench", *args, "--json"], limit, env)
        report["bench"][name] = last_json(steps.outputs[name]) if record["status"] == "ok" else None
    report["seconds"] = round(time.monotonic() - steps.started, 1)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (out / "gpu-check.md").write_text(table)
    print(table)
    return 0


def markdown(report: dict) -> str:
    lines = ["# gpu-check", ""]
    env = report.get("environment") or {}
    if env:
        lines += [f"{env['gpu']} ({env['memory_gib']} GiB, sm {env['capability']}), torch {env['torch']} "
                  f"(CUDA {env['cuda']}, cuDNN {env['cudnn']}), diffusers {env['diffusers']}", ""]
    lines += ["| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {k} | {v['status']} | {v.get('seconds', '-')} |" for k, v in report["steps"].items()]
    tests = report.get("cuda_tests") or {}
    lines += ["", f"CUDA tests: {tests.get('counts')}" + (f"; failed: {', '.join(tests['failures'])}"
                                                         if tests.get("failures") else "")]
    if report.get("parity"):
        lines += ["", "## Parity (tiny cases, latents)", "", "| case | run | against | max abs diff | of max |ref| |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['run']} | {r['against']} | {r['max_abs_diff']:.3g} | "
                  f"{r['max_abs_diff'] / r['ref_max_abs']:.3g} |" for r in report["parity"]]
    for name, bench in (report.get("bench") or {}).items():
        if not bench:
            lines += ["", f"## {name}: no result (see gpu-check.log)"]
            continue
        shape, st = bench["shape"], bench["steps"]
        lines += ["", f"## {name}: {bench['config']}, {bench['dtype']} (VAE {bench['vae_dtype']}"
                  f"{', tiled' if bench['vae_tiled'] else ''}), {shape['frames']} x {shape['height']} x "
                  f"{shape['width']}, {st['ar']} set-by-set x {st['diffusion']} diffusion steps, CFG {st['guidance']}",
                  "", "| stage | seconds | TFLOP/s | what is timed |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['seconds']} | {v.get('tflop_per_s')} | {v['covers']} |" for k, v in bench["stages"].items()]
        ts = bench["transformer_seconds"]
        lines += ["", "transformer seconds (warm call): " + ", ".join(f"{k} {v}" for k, v in ts.items())
                  + f"; fast/plain x{bench.get('fast_over_plain_speedup')}, graphs/fast "
                    f"x{bench.get('graphs_over_fast_speedup')}; spatial at {bench.get('spatial_over_matmul_rate')} "
                    f"of {bench['matmul_tflop_per_s']} TFLOP/s {bench['matmul_dtype']} matmul",
                  "peak GiB: " + ", ".join(f"{k} {v}" for k, v in bench["peak_memory_gib"].items())]
        noise = bench.get("host_noise") or {}
        if noise:
            lines += [f"host noise drawing: {noise['ms_per_set']} ms per set, {noise['seconds_per_call']} s per call"]
        if bench.get("kv_cache"):
            kv = bench["kv_cache"]
            lines += [f"KV cache per frame ms {kv['per_frame_ms_cached']}, recompute {kv['per_frame_ms_recomputed']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=".ci/gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default=os.environ.get("OUT", "gpu-check-out"),
                        help="folder for gpu-check.json / .md / .log (default: $OUT)")
    parser.add_argument("--fetch-wheels", action="store_true",
                        help="here: download the wheels into .whl/ and stage the reference data in .ref/")
    parser.add_argument("--parity", metavar="FILE", help=argparse.SUPPRESS)  # the parity step's own process
    args = parser.parse_args(argv)
    if args.fetch_wheels:
        return fetch_wheels(sys.executable)
    if args.parity:
        parity(Path(args.parity))
        return 0
    try:
        import torch

        gpu = torch.cuda.is_available()
        build = f"torch {torch.__version__}, " + ("CPU-only build" if torch.version.cuda is None
                                                  else f"CUDA {torch.version.cuda}")
    except ImportError:
        gpu, build = False, "no torch"
    if gpu:
        return gpu_run(Path(args.out))
    problems, notes = check_inputs()
    if problems:
        print("gpu-check: no CUDA GPU here, and its inputs are not in place:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 1
    print(f"gpu-check: no CUDA GPU here ({build}); inputs in place, nothing run"
          + (f" (note: {'; '.join(notes)})" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
