"""Progress of a long list of images: tqdm's bar when tqdm is installed (``tqdm.auto``, so a
notebook gets its widget), otherwise one line on stderr rewritten in place."""

import sys
import time

#: Lists at least this long get a progress bar by default (``progress=None``).
AUTO_MIN_ITEMS = 16


class _Line:
    """The bar without tqdm: ``cambox: 12/64 images, 3.1 s`` on stderr, at most ten times a
    second, and a newline at the end."""

    def __init__(self, total, desc):
        self.total, self.desc = total, desc
        self.start = self.shown = time.monotonic()
        self.n = 0

    def update_to(self, n):
        self.n = n
        now = time.monotonic()
        if now - self.shown >= 0.1 or n == self.total:
            self.shown = now
            sys.stderr.write(f"\r{self.desc}: {n}/{self.total} images, {now - self.start:.1f} s")
            sys.stderr.flush()

    def close(self):
        sys.stderr.write("\n")
        sys.stderr.flush()


class _Tqdm:
    def __init__(self, tqdm, total, desc):
        self.bar = tqdm(total=total, desc=desc, unit="image")

    def update_to(self, n):
        self.bar.update(n - self.bar.n)

    def close(self):
        self.bar.close()


def bar(total, desc="cambox"):
    """A progress bar for ``total`` images: ``update_to(n)``, ``close()``."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Line(total, desc)
    return _Tqdm(tqdm, total, desc)


def callback(progress, total):
    """What ``explain(..., progress=progress)`` reports to, as ``(function, close)``:
    ``None`` picks a bar for lists of :data:`AUTO_MIN_ITEMS` or more, ``True`` always,
    ``False`` never; a callable is called with the number of images done so far."""
    if callable(progress) and not isinstance(progress, bool):
        return progress, lambda: None
    if progress is None:
        progress = total >= AUTO_MIN_ITEMS
    if not progress:
        return None, lambda: None
    b = bar(total)
    return b.update_to, b.close
