"""Presets: TOML files of settings, bundled in ``presets/`` and in the user's config folder.

A preset file holds any of the settings in :data:`nova_cli.settings.CHECKS` plus a
``description``. A user preset with the name of a bundled one replaces it. The bundled folder is
``presets/`` beside the packages in a source checkout (or editable install), and
``<prefix>/share/nova/presets`` after ``pip install`` (setuptools data-files).
"""

from __future__ import annotations

import os
import site
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .errors import UsageError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def bundled_folders() -> list[Path]:
    """Where the bundled presets may be, most specific first."""
    candidates = [Path(sys.prefix) / "share" / "nova" / "presets"]
    if (PACKAGE_ROOT / "pyproject.toml").is_file():  # a source checkout or editable install
        candidates.insert(0, PACKAGE_ROOT / "presets")
    user_base = site.getuserbase()
    if user_base:
        candidates.append(Path(user_base) / "share" / "nova" / "presets")
    return candidates


def user_folder() -> Path:
    """$NOVA_CONFIG_DIR/presets, else $XDG_CONFIG_HOME/nova/presets, else ~/.config/nova/presets."""
    if os.environ.get("NOVA_CONFIG_DIR"):
        return Path(os.environ["NOVA_CONFIG_DIR"]).expanduser() / "presets"
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config).expanduser() / "nova" / "presets"


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str
    values: dict  # checked settings
    origin: str  # "bundled" or "user"


def read_preset(path: Path, origin: str) -> Preset:
    """One TOML file, every value checked; a bad file is a usage error naming it."""
    name = path.stem
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"preset {name!r} ({path}): cannot read it: {exc}") from None
    description = data.pop("description", "")
    if not isinstance(description, str):
        raise UsageError(f"preset {name!r} ({path}): description must be text")
    values = {}
    for key, value in data.items():
        key = key.replace("-", "_")
        values[key] = settings.check(key, value, f"{key} = {value!r} in preset {name!r} ({path})")
    return Preset(name, path, description, values, origin)


class PresetBook:
    """The presets of this installation and this user, read once per command."""

    def __init__(self, bundled: Path | None, user: Path | None):
        self.folders = [(f, origin) for f, origin in ((bundled, "bundled"), (user, "user")) if f]
        self._files: dict[str, tuple[Path, str]] = {}
        for folder, origin in self.folders:
            if folder.is_dir():
                for path in sorted(folder.glob("*.toml")):
                    self._files[path.stem] = (path, origin)  # user after bundled: user wins
        self._read: dict[str, Preset] = {}

    @classmethod
    def default(cls) -> "PresetBook":
        bundled = next((f for f in bundled_folders() if f.is_dir()), None)
        return cls(bundled, user_folder())

    def names(self) -> list[str]:
        return sorted(self._files)

    def has(self, name: str) -> bool:
        return name in self._files

    def get(self, name: str) -> Preset:
        if name not in self._files:
            searched = ", ".join(str(f) for f, _ in self.folders) or "no preset folder found"
            known = ", ".join(self.names()) or "none"
            raise UsageError(f"unknown preset {name!r} (known: {known}; searched {searched})")
        if name not in self._read:
            self._read[name] = read_preset(*self._files[name])
        return self._read[name]

    def survey(self) -> tuple[list[Preset], list[tuple[str, Path, str]]]:
        """Every preset that reads, and (name, file, error) for each one that does not.

        One broken file must not hide the others: it only fails when it is used.
        """
        good, broken = [], []
        for name in self.names():
            try:
                good.append(self.get(name))
            except UsageError as exc:
                broken.append((name, self._files[name][0], str(exc)))
        return good, broken


def effective_defaults(command: str, book: PresetBook | None = None) -> dict[str, tuple]:
    """setting -> (value, preset that sets it or None) when a command line sets nothing.

    From the command's base preset, else the :class:`~nova_cli.settings.Settings` fallback; unset
    and empty values (seed: random; no negative prompt) are left out. A base preset that cannot be
    read gives the fallbacks only (the error comes when a command runs).
    """
    from dataclasses import MISSING, fields

    book = book or PresetBook.default()
    name = settings.base_preset(command)
    found = {f.name: (f.default, None) for f in fields(settings.Settings)
             if f.name in settings.CHECKS and f.default is not MISSING}
    try:
        found.update((key, (value, name)) for key, value in book.get(name).values.items())
    except UsageError:
        pass
    return {key: item for key, item in found.items() if item[0] not in (None, "")}
