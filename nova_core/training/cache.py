"""The training cache that ``nova prepare`` writes and ``nova train`` reads.

A cache folder holds::

    index.json               format, the checkpoint and settings it was encoded with, the items
    shard-00000.safetensors  per item: <id>.mean and <id>.logvar (C, T, h, w) float32, the VAE's
                             posterior moments (training draws a fresh latent sample each time),
                             and with text embeddings <id>.text (len, text_dim) float16: the Phi
                             rows of the caption before padding

Items in index.json: id, source (path as given), kind (video/image), caption, motion_flow,
latent_frames, frames, stride, fps, shard. A shard is written to a temporary name and renamed
before the index that lists it, so an interrupted ``prepare`` leaves a valid cache of every
finished shard, and the next run continues after them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import NovaError

FORMAT = "nova-cache/1"
INDEX = "index.json"


class CacheError(NovaError):
    """A cache folder is missing, unreadable, or does not fit the checkpoint being trained."""


def write_atomic(path: Path, text: str) -> None:
    """Write next to ``path`` and rename into place: readers never see a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def read_index(folder: Path) -> dict:
    index = Path(folder) / INDEX
    if not index.is_file():
        raise CacheError(f"{folder}: not a training cache (no {INDEX}); create one with `nova prepare`")
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise CacheError(f"{index}: unreadable ({exc})") from None
    if data.get("format") != FORMAT:
        raise CacheError(f"{index}: format {data.get('format')!r}, expected {FORMAT!r}")
    return data


class CacheWriter:
    """Appends items to a cache folder in shards; reopening an existing folder continues it.

    ``header`` (the checkpoint and the settings) must equal the one the folder was started with:
    mixing clips encoded differently in one cache would silently corrupt training.
    """

    def __init__(self, folder, header: dict, shard_size: int = 64):
        self.folder, self.header, self.shard_size = Path(folder), header, shard_size
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("*.tmp"):  # left by an interrupted run
            stale.unlink()
        self.items, self.shards, self.skipped = [], [], []
        if (self.folder / INDEX).is_file():
            data = read_index(self.folder)
            if data["header"] != header:
                raise CacheError(f"{self.folder} was prepared with other settings "
                                 f"({_first_difference(data['header'], header)}); use a new folder")
            self.items, self.shards = data["items"], data["shards"]
        self._pending: list[tuple[dict, dict]] = []

    @property
    def done(self) -> set[str]:
        """Sources already in the cache (finished shards and the pending one)."""
        return {item["source"] for item in self.items} | {meta["source"] for meta, _ in self._pending}

    def add(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
        """Queue one item (meta without id/shard; tensors mean, logvar[, text])."""
        self._pending.append((dict(meta), tensors))
        if len(self._pending) >= self.shard_size:
            self.flush()

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"source": source, "reason": reason})

    def flush(self) -> None:
        """Write the pending items as one shard, then the index that lists it."""
        if self._pending:
            shard = len(self.shards)
            name = f"shard-{shard:05d}.safetensors"
            from safetensors.torch import save_file

            tensors = {}
            for meta, item_tensors in self._pending:
                meta.update(id=f"{len(self.items):06d}", shard=shard)
                tensors.update({f"{meta['id']}.{k}": v.contiguous() for k, v in item_tensors.items()})
                self.items.append(meta)
            tmp = self.folder / (name + ".tmp")
            save_file(tensors, str(tmp), metadata={"format": "pt"})
            os.replace(tmp, self.folder / name)
            self.shards.append(name)
            self._pending = []
        write_json(self.folder / INDEX, {"format": FORMAT, "header": self.header, "shards": self.shards,
                                          "items": self.items, "skipped": self.skipped})


class TrainingCache:
    """Read side: item metadata from the index, tensors from the shards on demand."""

    def __init__(self, folder):
        self.folder = Path(folder)
        data = read_index(self.folder)
        self.header, self.items, self.shards = data["header"], data["items"], data["shards"]
        if not self.items:
            raise CacheError(f"{self.folder}: the cache holds no items")
        missing = [s for s in self.shards if not (self.folder / s).is_file()]
        if missing:
            raise CacheError(f"{self.folder}: shard file(s) missing: {', '.join(missing)}")
        self._open: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_text(self) -> bool:
        return bool(self.header["settings"].get("text_embeddings"))

    @property
    def fingerprint(self) -> str:
        """Identifies the item list: a resumed run refuses a cache that changed under it."""
        keys = [(it["id"], it["source"], it["shard"], it["latent_frames"]) for it in self.items]
        return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]

    def latent_frames(self) -> list[int]:
        return [int(it["latent_frames"]) for it in self.items]

    def tensors(self, index: int) -> dict[str, torch.Tensor]:
        """{"mean", "logvar"[, "text"]} of item ``index``, read from its (memory-mapped) shard."""
        from safetensors import safe_open

        item = self.items[index]
        shard = int(item["shard"])
        if shard not in self._open:
            self._open[shard] = safe_open(str(self.folder / self.shards[shard]), framework="pt")
        handle = self._open[shard]
        names = ["mean", "logvar"] + (["text"] if self.has_text else [])
        return {name: handle.get_tensor(f"{item['id']}.{name}") for name in names}


def _first_difference(old: dict, new: dict, prefix="") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} there, {b!r} now"
    return ""
