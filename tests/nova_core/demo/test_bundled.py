"""`demo` names the bundled checkpoint wherever a model is named; a folder called demo still wins.

The checkpoint itself is built by the recipe; here a copy of the tiny video checkpoint stands in
for it (``bundled_demo``), so these tests hold with or without the trained one.
"""

from __future__ import annotations

import shutil

import pytest

from nova_core import demo, hub
from nova_core.errors import CheckpointError
from tests.conftest import TINY_T2V


@pytest.fixture
def bundled_demo(monkeypatch, tmp_path):
    folder = tmp_path / "package" / "checkpoint"
    shutil.copytree(TINY_T2V, folder)
    monkeypatch.setattr(demo, "CHECKPOINT", folder)
    return folder


def test_demo_resolves_to_the_bundled_folder(bundled_demo, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = hub.resolve("demo")
    assert (found.folder, found.name, found.revision) == (bundled_demo, "demo", None)


def test_a_local_folder_named_demo_wins(bundled_demo, monkeypatch, tmp_path):
    (tmp_path / "work" / "demo").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert hub.resolve("demo").folder == (tmp_path / "work" / "demo").resolve()


def test_an_install_without_it_says_how_to_rebuild_it(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "CHECKPOINT", tmp_path / "nothing")
    assert not demo.available()
    with pytest.raises(CheckpointError, match=r"demo checkpoint is missing .*python -m nova_cli.demo.recipe OUTDIR"):
        hub.resolve("demo")


def test_size_and_resolution_come_from_its_files(bundled_demo):
    from nova_core.transformer import NOVATransformer3DModel

    model = NOVATransformer3DModel.from_config(NOVATransformer3DModel.load_config(str(bundled_demo / "transformer")))
    assert demo.parameters() == sum(p.numel() for p in model.state_dict().values())
    assert demo.resolution() == "96x64"  # tiny-t2v's frames
