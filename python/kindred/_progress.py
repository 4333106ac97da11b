"""Progress bars for long calls. The native module calls `callback(phase, task, done, total,
loss)` from the calling thread while a fit, an evaluation or a search runs: `phase` counts the
phases begun (a new number starts a new bar), `total` is 0 when unknown, `loss` is the last
epoch's training loss of an iterative model (None otherwise).

`progress=True` (the default) draws with tqdm when it is installed (`tqdm.auto`: a widget in a
notebook, a text bar in a terminal) and otherwise one line on stderr when stderr is a terminal;
`False` draws nothing; a callable receives the calls itself."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional, Union

Callback = Callable[[int, str, int, int, Optional[float]], Any]
ProgressArg = Union[bool, Callback, None]

# A phase shorter than this never shows a bar (most phases of a small fit).
_DELAY_SECONDS = 0.5


class _TqdmBars:
    """One tqdm bar per phase."""

    def __init__(self, tqdm):
        self._tqdm = tqdm
        self._bar = None
        self._phase = None
        self._done = 0

    def __call__(self, phase, task, done, total, loss):
        if phase != self._phase:
            self.close()
            self._bar = self._tqdm(desc=task, total=total or None, delay=_DELAY_SECONDS, leave=False)
            self._phase, self._done = phase, 0
        if loss is not None:
            self._bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        self._bar.update(done - self._done)
        self._done = done

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _LineBar:
    """`task: done/total` rewritten in place on a terminal's stderr."""

    def __init__(self, stream):
        self._stream = stream
        self._phase = None
        self._started = 0.0
        self._shown = False

    def __call__(self, phase, task, done, total, loss):
        now = time.monotonic()
        if phase != self._phase:
            self._phase, self._started = phase, now
        if now - self._started < _DELAY_SECONDS:
            return
        count = f"{done}/{total}" if total else str(done)
        extra = f" loss {loss:.4g}" if loss is not None else ""
        self._stream.write(f"\r{task}: {count}{extra}\033[K")
        self._stream.flush()
        self._shown = True

    def close(self):
        if self._shown:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._shown = False


def reporter(progress: ProgressArg):
    """The callable to hand the native module (None: no progress at all) and its closer."""
    if progress is None or progress is False:
        return None
    if callable(progress) and progress is not True:
        return progress
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if sys.stderr is not None and sys.stderr.isatty():
            return _LineBar(sys.stderr)
        return None
    return _TqdmBars(tqdm)


def close(callback) -> None:
    """Ends the last bar `callback` drew, when it is one of ours."""
    if isinstance(callback, (_TqdmBars, _LineBar)):
        callback.close()
