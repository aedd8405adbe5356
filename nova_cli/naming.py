"""Where outputs go: names built from the prompt and seed, ``--out`` as a file or a folder.

Interactive commands make default names unique (``-2``, ``-3`` ...) so nothing is ever
overwritten; ``nova batch`` keeps them stable and decides itself, from the sidecars, whether a
name holds its job's output (:mod:`nova_cli.resume`).
"""

from __future__ import annotations

import os
import tempfile
import unicodedata
from pathlib import Path

from .errors import CliError, UsageError

SUFFIX = {"t2i": ".png", "t2v": ".mp4", "i2v": ".mp4", "extend": ".mp4"}
SIDECAR_SUFFIX = ".json"
MAX_SLUG = 48


def slug(text: str | None, max_len: int = MAX_SLUG) -> str:
    """Words joined by '-', cut at a word boundary: 'A red fox, at dawn!' -> 'a-red-fox-at-dawn'.

    Accented Latin letters become ASCII ('Café' -> 'cafe'); other scripts keep their letters
    ('日本の風景' stays), so non-Latin prompts get names too. Only letters, marks and digits
    survive (never '/', dots or control characters), and a name stays within ``2 * max_len``
    UTF-8 bytes.
    """
    words = "".join(_name_char(c) for c in unicodedata.normalize("NFC", text or "").lower()).split()
    budget = 2 * max_len
    out = ""
    for word in words:
        candidate = f"{out}-{word}" if out else word
        if len(candidate) > max_len or len(candidate.encode()) > budget:
            break
        out = candidate
    if out or not words:
        return out
    first = words[0][:max_len]
    while len(first.encode()) > budget:
        first = first[:-1]
    return first


def _name_char(char: str) -> str:
    """The character as it goes into a name: ASCII if it is an accented Latin one, ' ' if unsafe."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    if plain and plain.isascii():
        return "".join(c if c.isalnum() else " " for c in plain.lower())
    return char if unicodedata.category(char)[0] in "LMN" else " "


def default_stem(command: str, prompt: str | None, source: Path | None, seed: int) -> str:
    """t2i/t2v: prompt words; i2v: image name + prompt words; extend: clip name + 'ext'."""
    words = slug(prompt, 32 if source else MAX_SLUG)
    if command == "i2v":
        parts = [slug(source.stem, 24) or "image", words]
    elif command == "extend":
        parts = [slug(source.stem, 24) or "clip", "ext", words]
    else:
        parts = [words or "untitled"]
    return "-".join(p for p in parts if p) + f"-s{seed}"


def sidecar_path(output: Path) -> Path:
    """``clip.mp4`` -> ``clip.mp4.json``: a PNG and an MP4 of the same name keep separate sidecars."""
    return output.with_name(output.name + SIDECAR_SUFFIX)


def is_folder(out: str) -> bool:
    path = Path(out).expanduser()
    return path.is_dir() or out.endswith(("/", os.sep)) or not path.suffix


def plan_outputs(command: str, out: str | None, stems: list[str], *, unique: bool,
                 overwrite: bool) -> list[Path]:
    """One path per output. ``stems`` are the default names (one per output, without suffix).

    ``unique``: default names that exist get ``-2``, ``-3`` ... (interactive commands);
    otherwise they are kept as they are (batch checks what is there itself).
    """
    suffix = SUFFIX[command]
    if out is not None and not is_folder(out):
        target = Path(out).expanduser()
        if target.suffix.lower() != suffix:
            raise UsageError(f"--out {out}: {command} writes {suffix[1:].upper()} files: use a {suffix} name"
                             " or a folder")
        paths = [target] if len(stems) == 1 else [
            target.with_name(f"{target.stem}-{i}{suffix}") for i in range(1, len(stems) + 1)]
        if not overwrite and unique:
            taken = [p for p in paths if p.exists()]
            if taken:
                raise UsageError(f"{taken[0]} exists: pass --overwrite to replace it, or choose another --out")
    else:
        folder = Path(out).expanduser() if out is not None else Path.cwd()
        paths = [folder / f"{stem}{suffix}" for stem in stems]
        if unique and not overwrite:
            paths = free_names(paths)
    check_writable(paths[0].parent)
    return [p.absolute() for p in paths]


def free_names(paths: list[Path]) -> list[Path]:
    """Add the first ``-N`` (N >= 2) for which no output nor sidecar exists."""
    def taken(candidates):
        return any(p.exists() or sidecar_path(p).exists() for p in candidates)

    candidates, n = paths, 1
    while taken(candidates):
        n += 1
        candidates = [p.with_name(f"{p.stem}-{n}{p.suffix}") for p in paths]
    return candidates


def check_writable(folder: Path) -> None:
    """Fail before any heavy work if the folder cannot be created or written to.

    Probes the nearest existing folder with an unnamed temporary file (nothing is left behind,
    and unlike ``os.access`` it also tells the truth for root and read-only mounts). The output
    folder itself is created only when an output is written.
    """
    probe = folder.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise CliError(f"output folder {folder} cannot be created: {probe} is a file")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise CliError(f"output folder {folder} is not writable ({probe}: {exc.strerror or exc})") from None
