"""Only soundsmith speaks: loading and running a model prints no third-party progress bars, log lines or warnings
(transformers' "Loading weights" bar, tokenizer notes, FutureWarnings), and quiet() puts every setting back."""

import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import soundsmith
from soundsmith.quiet import quiet

SRC = str(Path(soundsmith.__file__).resolve().parents[1])


def stderr_of(code: str) -> str:
    env = {"PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_loading_and_running_the_demo_prints_nothing_on_stderr():
    stderr = stderr_of("import soundsmith\n"
                       "pipe = soundsmith.load('demo', progress=False)\n"
                       "pipe('a dog barking', num_inference_steps=2, progress=False)\n")
    assert stderr == ""


def test_loading_and_running_audioldm2_prints_nothing_on_stderr(tiny_audioldm2):
    # T5, GPT-2 (its key/value cache is where transformers 5 deprecated `past_key_values`) and CLAP
    stderr = stderr_of("import soundsmith\n"
                       f"pipe = soundsmith.load({str(tiny_audioldm2)!r}, progress=False)\n"
                       "pipe('a dog barking', num_inference_steps=2, audio_length_in_s=0.5, progress=False)\n")
    assert stderr == ""


def test_our_transformers_calls_raise_no_deprecation(tiny_audioldm2, caplog):
    pipe = soundsmith.load(tiny_audioldm2)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING, logger="transformers"):
        warnings.simplefilter("always")
        pipe("a dog barking", num_inference_steps=2, audio_length_in_s=0.5, progress=False, max_new_tokens=3)
    deprecations = [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert not deprecations, [str(w.message) for w in deprecations]
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]


def test_quiet_silences_inside_and_restores_everything_after():
    transformers = pytest.importorskip("transformers")
    from huggingface_hub import utils as hub_utils

    tf_logging = transformers.utils.logging
    logger = logging.getLogger("transformers")
    tf_logging.enable_progress_bar()
    before = (logger.level, tf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
              list(warnings.filters))
    with quiet():
        assert logger.level == logging.ERROR and not tf_logging.is_progress_bar_enabled()
        assert hub_utils.are_progress_bars_disabled()
        warnings.warn("from inside a library", FutureWarning)  # dropped
    assert (logger.level, tf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled(),
            list(warnings.filters)) == before
    with quiet(download_bars=True):
        assert not tf_logging.is_progress_bar_enabled() and not hub_utils.are_progress_bars_disabled()
    assert tf_logging.is_progress_bar_enabled() and not hub_utils.are_progress_bars_disabled()
