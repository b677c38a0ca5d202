"""Untrusted input: files named by users, and values quoted in error messages.

A directory, /dev/zero or a FIFO passed where a file belongs is named as such (not "does not exist"), reading a
multi-gigabyte file whole is refused before it fills the memory, and an error quotes at most a short line of what it
refuses (a hostile value can be megabytes: a 2 KB YAML alias bomb once wrote a 2 GB error line).
"""
from __future__ import annotations

import reprlib
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def regular_file(path, what: str) -> Path:
    """`path` when it is a regular file (links followed); FileNotFoundError, or ValueError saying what it is."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise ValueError(f"{what} {path} cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a file")
        raise ValueError(f"{what} {path} is {kind}, not a regular file")
    return path


def read_bounded(path, what: str, max_bytes: int) -> bytes:
    """The bytes of regular file `path`, refused (ValueError) when it holds more than `max_bytes`."""
    path = regular_file(path, what)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{what} {path} has {size:,} bytes, more than the {max_bytes:,} accepted (not such a file?)")
    return path.read_bytes()


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxlong = _repr.maxother = 40
_repr.maxlevel = 2


def read_json_bounded(path, what: str, max_bytes: int):
    """A JSON file of at most `max_bytes`, parsed; ValueError naming the file for anything that is not plain JSON
    (too deep, not UTF-8, integers beyond Python's 4,300 digits)."""
    import json

    try:
        return json.loads(read_bounded(path, what, max_bytes))
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be a {what}") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise ValueError(f"{path}: not valid JSON for a {what} ({str(e)[:200]})") from None


def short_repr(value, limit: int = 80) -> str:
    """repr(value) cut to at most `limit` characters, without building the whole repr first."""
    text = _repr.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
