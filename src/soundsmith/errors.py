"""The exceptions soundsmith raises for user errors.

A user error is bad input: a value outside what is allowed, a file or model that is missing or broken. Its message
is one line that names the bad value and says what is allowed; the CLI prints it and exits with status 2. Bugs keep
their ordinary exceptions and tracebacks.
"""


class SoundsmithError(Exception):
    """Base class of every user error soundsmith raises."""


class InvalidArgument(SoundsmithError, ValueError):
    """An argument outside what is allowed (empty prompt, negative guidance, 0 steps …)."""


class ModelNotFound(SoundsmithError):
    """A model name, hub id or folder that cannot be found or fetched."""


class CheckpointError(SoundsmithError):
    """A checkpoint folder that exists but cannot be loaded (wrong pipeline, missing or corrupted weights)."""


class AudioFileError(SoundsmithError):
    """An audio file that cannot be read or written."""


class OutputExists(AudioFileError):
    """The output path was taken (by a file that appeared while the run was under way) and is not to be replaced."""


class NonFiniteError(SoundsmithError):
    """Generation produced NaN or infinite values (an extreme setting, a float16 overflow, broken weights)."""


class SoundsmithWarning(UserWarning):
    """Something the user should know that does not stop the run (candidates left unranked …); the CLI prints it as
    one `soundsmith: warning: …` line."""


def warn(message: str) -> None:
    """A SoundsmithWarning attributed to the caller's own line: the first frame outside soundsmith and torch (whose
    no_grad decorator adds frames), so Python shows where the user called us, not a line of ours or torch's."""
    import os
    import sys
    import warnings

    ours = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 2
    while frame is not None and (frame.f_code.co_filename.startswith(ours)
                                 or f"{os.sep}torch{os.sep}" in frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, SoundsmithWarning, stacklevel=level)
