"""Keep the libraries soundsmith builds on from printing: soundsmith's own messages are the only text a user sees.

transformers draws a "Loading weights" progress bar for every model it loads and logs advisory warnings (tokenizer
notes, deprecations); huggingface_hub logs a line per retry when the network is slow or down; Python warnings from
inside them (FutureWarning, UserWarning, DeprecationWarning) print with a source line that means nothing to a user.

- `quiet()`: a context manager for blocks that call third-party code (loading a transformers model or tokenizer,
  asking the hub): inside it those libraries' loggers only pass errors, their progress bars are off and Python
  warnings are dropped; everything is put back on exit. It never imports a library: a block that imports
  transformers for the first time should import it before entering (checkpoints.load_transformers does).
- `silence_third_party()`: third-party logs and warnings off for the rest of the process, for the `soundsmith`
  command and the service, which own their process; the Python API only uses `quiet()` around its own loading,
  leaving the caller's logging and warning filters alone.
"""

import contextlib
import logging
import os
import sys
import warnings

LOGGERS = ("transformers", "huggingface_hub", "tokenizers", "accelerate", "peft", "diffusers")
# warnings raised from these packages are theirs, whichever line they are attributed to
PACKAGES = r"(transformers|huggingface_hub|tokenizers|accelerate|peft|diffusers|torch)(\.|$)"


@contextlib.contextmanager
def quiet(download_bars: bool = False):
    """Silence third-party logs, warnings and progress bars inside the block (see the module docstring).
    download_bars=True keeps huggingface_hub's download bars, the one progress a multi-GB download has."""
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    tf = sys.modules.get("transformers")
    tf_bars = tf.utils.logging.is_progress_bar_enabled() if tf is not None else None
    hub = sys.modules.get("huggingface_hub.utils")
    hub_bars = not hub.are_progress_bars_disabled() if hub is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        if tf_bars:
            tf.utils.logging.disable_progress_bar()  # this switches huggingface_hub's bars off too
        if hub is not None and (download_bars and hub_bars):
            hub.enable_progress_bars()
        elif hub is not None:
            hub.disable_progress_bars()
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            if tf_bars:
                tf.utils.logging.enable_progress_bar()
            if hub is not None:
                (hub.enable_progress_bars if hub_bars else hub.disable_progress_bars)()


def silence_third_party() -> None:
    """For a process soundsmith owns (the CLI, the service): from now on third-party loggers pass only errors,
    FutureWarning / DeprecationWarning / UserWarning raised inside third-party packages are ignored, and the
    tokenizers library does not warn about forking (TOKENIZERS_PARALLELISM=false unless the user set it).
    soundsmith's own warnings still show; progress bars are left to quiet(), which the loaders use."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # transformers reads it when it is first imported
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=PACKAGES)
