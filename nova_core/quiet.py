"""Loading without the libraries' own chatter on stderr.

What matters about a checkpoint (a missing tensor, a refused file) nova checks itself and says
as a CheckpointError; what torch, diffusers and transformers warn or log while loading (unused
config keys, deprecated arguments, the skipped LM head, progress bars) is not the user's
business. ``NOVA_DEBUG=1`` lets it all through.
"""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import ExitStack, contextmanager


@contextmanager
def quiet_libraries():
    if os.environ.get("NOVA_DEBUG") == "1":
        yield
        return
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        for name in ("diffusers", "transformers"):  # the ones imported (importing is the caller's)
            if name in sys.modules:
                stack.enter_context(_library_quiet(name))
        yield


@contextmanager
def _library_quiet(name: str):
    """Errors only, and no progress bars, from one library's logger (restored afterwards)."""
    from importlib import import_module

    logging = import_module(f"{name}.utils.logging")
    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled() if hasattr(logging, "is_progress_bar_enabled") else True
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
