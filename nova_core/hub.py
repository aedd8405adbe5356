"""Resolve a checkpoint name to a local folder: a folder as is, a Hub repo id via the HF cache.

A repo is resolved once with ``snapshot_download`` (only the files a checkpoint needs, never the
``.py`` shims the Hub repos ship), and every component is then loaded from that folder: this
fails within a fraction of a second offline, where per-file downloads retry for ~20 s each.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import demo
from .errors import CheckpointError, ModelNotAvailableError

# A host that accepts a connection and never answers must not hang a batch job.
os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "30")

ALLOW_PATTERNS = [
    "model_index.json",
    "*/config.json",
    "*/*.safetensors",
    "*/*.safetensors.index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/*.json",
    "tokenizer/*.txt",
]
IGNORE_PATTERNS = ["*.py", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.msgpack", "*.h5", "*.onnx"]
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class Resolved:
    folder: Path
    name: str  # what the user asked for
    revision: str | None  # commit hash for Hub checkpoints, None for plain folders


def is_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and not os.path.exists(name)


def cache_dir_for(cache_dir=None) -> str:
    from huggingface_hub import constants

    return str(cache_dir or constants.HF_HUB_CACHE)


def resolve(name, *, revision=None, cache_dir=None, local_files_only=False) -> Resolved:
    """Local folder or Hub repo id -> local folder holding the checkpoint files."""
    name = str(name)
    path = Path(name).expanduser()
    if path.is_dir():  # a folder of that name wins, as everywhere: ./demo is a folder, demo the bundled one
        return Resolved(path.resolve(), name, None)
    if name == demo.NAME:
        return Resolved(demo.checkpoint(), name, None)
    if not is_repo_id(name):
        raise CheckpointError(f"{name}: no such checkpoint folder (and not a Hub repo id like BAAI/nova-d48w1024-osp480)")
    return _download(name, revision, cache_dir, local_files_only)


def _download(repo_id, revision, cache_dir, local_files_only, local_dir=None) -> Resolved:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
            allow_patterns=ALLOW_PATTERNS, ignore_patterns=IGNORE_PATTERNS,
            **({"local_dir": str(local_dir)} if local_dir is not None else {}),
        )
    except Exception as exc:  # huggingface_hub and httpx raise many unrelated types
        raise ModelNotAvailableError(_explain(exc, repo_id, revision, cache_dir)) from exc
    folder = Path(folder)
    return Resolved(folder, repo_id, folder.name if folder.parent.name == "snapshots" else revision)


def download(repo_id, *, revision=None, cache_dir=None, local_dir=None) -> Resolved:
    """Fetch a checkpoint into the HF cache, or into ``local_dir``: a plain checkpoint folder to
    copy to a machine without a network (what ``nova download`` runs)."""
    return _download(repo_id, revision, cache_dir, False, local_dir)


def did_you_mean(repo_id: str) -> str:
    """" (did you mean X?)" for an id one or two typos away from a released checkpoint, else ""."""
    import difflib

    from .released import CHECKPOINTS

    released = {name.lower(): name for name in CHECKPOINTS}
    if repo_id.lower() in released:
        return ""
    close = difflib.get_close_matches(repo_id.lower(), released, n=1, cutoff=0.9)
    return f" (did you mean {released[close[0]]}?)" if close else ""


def _explain(exc: Exception, repo_id: str, revision, cache_dir) -> str:
    from huggingface_hub import constants

    kind = type(exc).__name__
    rev = f" at revision {revision}" if revision else ""
    pin = f" --revision {revision}" if revision else ""
    typo = did_you_mean(repo_id)
    if kind == "RepositoryNotFoundError":
        return f"{repo_id}: no such repository on the Hugging Face Hub (or it is private){typo}"
    if kind == "GatedRepoError":
        return f"{repo_id}: the repository is gated; accept its terms on huggingface.co and log in"
    if kind == "RevisionNotFoundError":
        return f"{repo_id}: revision {revision!r} does not exist"
    why = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else
           f"no network: the Hugging Face Hub cannot be reached, {kind}")
    return (
        f"{repo_id}{rev}{typo} is not in the local cache ({cache_dir_for(cache_dir)}) and cannot be fetched"
        f" ({why}); on a machine with a network run `nova download {repo_id}{pin} --local-dir DIR`, copy DIR"
        f" here and pass `--model DIR`" + ("; or try nova offline with the bundled demo model: `--model demo`"
                                          if demo.available() else "")
    )


def cached_checkpoints(cache_dir=None) -> list[dict]:
    """NOVA-looking repos in the HF cache: [{repo_id, revisions, size_on_disk, path}]."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(cache_dir)
    except Exception:  # no cache folder yet
        return []
    found = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        if not any((Path(r.snapshot_path) / "model_index.json").is_file() for r in repo.revisions):
            continue
        found.append({
            "repo_id": repo.repo_id,
            "revisions": sorted(r.commit_hash for r in repo.revisions),
            "size_on_disk": repo.size_on_disk,
            "path": str(repo.repo_path),
        })
    return found
