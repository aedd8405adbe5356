"""The tiny pipelines, loaded once per test module (tests may change a pipeline's state)."""

import pytest

from nova_core import NOVAPipeline
from tests.conftest import TINY_T2I, TINY_T2V


@pytest.fixture(scope="module")
def t2v():
    return NOVAPipeline.from_pretrained(str(TINY_T2V))


@pytest.fixture(scope="module")
def t2i():
    return NOVAPipeline.from_pretrained(str(TINY_T2I))
