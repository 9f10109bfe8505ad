"""Progress bars that stay out of logs: a tqdm bar on a terminal, nothing when stderr is a file or a pipe.

A tqdm bar redraws itself with carriage returns; written to a log file or a CI console that is one long line of
hundreds of redraws per task. :func:`progress_bar` shows the bar only when stderr is a terminal, so a
benchmark or training run whose output is redirected logs its own summary lines and no bar.
"""

from __future__ import annotations

import sys

__all__ = ["progress_bar", "on_terminal"]


def on_terminal() -> bool:
    """Whether stderr (where tqdm draws) is an interactive terminal."""
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def progress_bar(iterable=None, **options):
    """``tqdm(iterable, **options)``, disabled (iterating silently) when stderr is not a terminal."""
    from tqdm.auto import tqdm

    options.setdefault("disable", not on_terminal())
    return tqdm(iterable, **options)
