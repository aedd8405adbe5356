"""Session-wide synthetic caches (see helpers.py)."""

import pytest

from tests.conftest import TINY_T2I
from tests.nova_core.training.helpers import make_cache


@pytest.fixture(scope="session")
def t2v_cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("t2v-cache"))


@pytest.fixture(scope="session")
def t2i_cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("t2i-cache"), TINY_T2I, latent_frames=1, text=True)
