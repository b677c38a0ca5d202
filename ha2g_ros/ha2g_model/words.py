"""Word timings from files: JSON, Praat TextGrid, TSV (incl. Audacity labels), or plain text spread over the audio.

Every reader returns the package-wide form `list[tuple[str, float, float]]` = (word, start_s, end_s), sorted by start,
and refuses malformed input with a message naming the file and the entry. Used by `ha2g-generate` and by the training
code for "bring your own recordings".

Accepted layouts:
- JSON: `[["word", start, end], ...]`, `[{"word": ..., "start": ..., "end": ...}, ...]` (`text` works for `word`),
  either one under a top-level `"words"` key, or Whisper-style `{"segments": [{"words": [...]}, ...]}`.
- TextGrid: Praat's long or short text format (UTF-8 or UTF-16); the interval tier named `words` (else the first
  interval tier); empty and silence intervals (`""`, `sil`, `sp`, `<eps>`) are dropped.
- TSV: `word<TAB>start<TAB>end`, or Audacity's label export `start<TAB>end<TAB>word`; `#` comments and a header allowed.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from ha2g_model.untrusted import read_bounded, read_json_bounded, regular_file, short_repr

Word = tuple[str, float, float]

SILENCE_LABELS = {"", "sil", "sp", "spn", "<eps>", "<sil>", "#"}
MAX_FILE_BYTES = 64_000_000  # Whisper's JSON of 3 hours of speech is ~5 MB; a word file is read whole


def read_words(path: str | Path) -> list[Word]:
    """Read word timings from a .json, .TextGrid or .tsv/.txt/.lab/.csv file (chosen by extension)."""
    path = regular_file(path, "word timing file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        words = _read_json(path)
    elif suffix == ".textgrid":
        words = _read_textgrid(path)
    elif suffix in (".tsv", ".txt", ".lab", ".csv"):
        words = _read_tsv(path)
    else:
        raise ValueError(f"{path}: unknown word timing format {suffix!r}; use .json, .TextGrid or .tsv")
    if not words:
        raise ValueError(f"{path}: no words found")
    return words


def validate_words(words, source: str = "words") -> list[Word]:
    """Check and normalise (word, start_s, end_s) entries: non-empty words, finite times, start <= end; sorted."""
    checked = []
    for i, entry in enumerate(words):
        try:
            word, start, end = entry
            start, end = float(start), float(end)
        except OverflowError:  # an integer of hundreds of digits
            raise ValueError(f"{source}: entry #{i} has a time beyond any float: {short_repr(entry)}") from None
        except (TypeError, ValueError):
            raise ValueError(f"{source}: entry #{i} must be (word, start_s, end_s), got {short_repr(entry)}") \
                from None
        word = str(word).strip()
        if not word:
            raise ValueError(f"{source}: entry #{i} has an empty word")
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"{source}: entry #{i} ({short_repr(word)}) has a non-finite time ({start}, {end})")
        if end < start:
            raise ValueError(f"{source}: entry #{i} ({short_repr(word)}) ends before it starts ({start} > {end})")
        checked.append((word, start, end))
    return sorted(checked, key=lambda w: w[1])


def words_from_text(text: str, duration_s: float) -> list[Word]:
    """Spread the words of an untimed transcript over `duration_s` seconds, in proportion to their length.

    A rough alignment, but the model only sees which word is active in each 1/15 s frame, so a forced aligner is
    better and this is the fallback when none is at hand.
    """
    tokens = text.split()
    if not tokens:
        raise ValueError("the transcript is empty")
    if not duration_s > 0:
        raise ValueError(f"cannot spread words over a duration of {duration_s} s")
    weights = [len(t) + 1 for t in tokens]  # +1: short words still take some time
    scale = duration_s / sum(weights)
    words, t = [], 0.0
    for token, w in zip(tokens, weights):
        words.append((token, t, t + w * scale))
        t += w * scale
    return words


def _read_json(path: Path) -> list[Word]:
    data = read_json_bounded(path, "word timing file", MAX_FILE_BYTES)
    if isinstance(data, dict) and "segments" in data:  # Whisper's word_timestamps output
        if not (isinstance(data["segments"], list) and all(isinstance(s, dict) for s in data["segments"])):
            raise ValueError(f"{path}: 'segments' must be a list of objects (Whisper's output)")
        data = [w for segment in data["segments"] for w in segment.get("words", [])]
    elif isinstance(data, dict) and "words" in data:
        data = data["words"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of words (or an object with 'words' or 'segments')")
    entries = []
    for i, item in enumerate(data):
        if isinstance(item, dict):
            word = item.get("word", item.get("text"))
            if word is None or "start" not in item or "end" not in item:
                raise ValueError(f"{path}: word #{i} needs 'word' (or 'text'), 'start' and 'end', got "
                                 f"{short_repr(item)}")
            entries.append((word, item["start"], item["end"]))
        else:
            entries.append(item)
    return validate_words(entries, str(path))


# A TextGrid, long or short format, reduces to a stream of quoted strings, numbers and <exists> flags once the
# "[n]" item indices are removed; parsing that stream covers both formats with one reader.
_TEXTGRID_TOKEN = re.compile(r'"(?:[^"]|"")*"|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|<exists>|<absent>')


def _read_textgrid(path: Path) -> list[Word]:
    raw = read_bounded(path, "word timing file", MAX_FILE_BYTES)
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: cannot decode TextGrid ({e})") from None
    tokens = _TEXTGRID_TOKEN.findall(re.sub(r"\[\s*\d*\s*\]", " ", text))
    pos = 0

    def take(kind: str):
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"{path}: TextGrid ends early (expected a {kind})")
        token = tokens[pos]
        pos += 1
        if kind == "string":
            if not token.startswith('"'):
                raise ValueError(f"{path}: malformed TextGrid, expected a string, got {short_repr(token)}")
            return token[1:-1].replace('""', '"')
        try:
            number = float(token)
        except ValueError:
            raise ValueError(f"{path}: malformed TextGrid, expected a number, got {short_repr(token)}") from None
        if kind == "count":  # of tiers or intervals: each takes tokens, so there cannot be more than are left
            if not (number.is_integer() and 0 <= number <= len(tokens) - pos):
                raise ValueError(f"{path}: malformed TextGrid, {short_repr(token)} is not a count of what follows")
            return int(number)
        return number

    if take("string") != "ooTextFile" or take("string") != "TextGrid":
        raise ValueError(f"{path}: not a Praat TextGrid (header must be ooTextFile / TextGrid)")
    take("number"), take("number")  # xmin, xmax of the whole grid
    if pos < len(tokens) and tokens[pos] in ("<exists>", "<absent>"):
        pos += 1
    tiers = []
    for _ in range(take("count")):
        tier_class, name = take("string"), take("string")
        take("number"), take("number")
        entries = []
        for _ in range(take("count")):
            if tier_class == "IntervalTier":
                entries.append((take("number"), take("number"), take("string")))
            else:  # TextTier: points (time, mark)
                entries.append((take("number"), take("string")))
        tiers.append((tier_class, name, entries))
    interval_tiers = [t for t in tiers if t[0] == "IntervalTier"]
    if not interval_tiers:
        raise ValueError(f"{path}: the TextGrid has no interval tier")
    named = [t for t in interval_tiers if t[1].lower() in ("words", "word")]
    _, _, intervals = (named or interval_tiers)[0]
    words = [(label.strip(), start, end) for start, end, label in intervals
             if label.strip().lower() not in SILENCE_LABELS]
    return validate_words(words, str(path))


def _read_tsv(path: Path) -> list[Word]:
    entries = []
    try:
        text = read_bounded(path, "word timing file", MAX_FILE_BYTES).decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [f.strip() for f in re.split(r"\t|,", line)] if "\t" in line or "," in line else line.split()
        if len(fields) < 3:
            raise ValueError(f"{path}:{number}: expected 3 columns (word, start, end), got {short_repr(line)}")
        if _is_number(fields[0]) and _is_number(fields[1]):  # Audacity: start, end, label
            entries.append((fields[2], fields[0], fields[1], number))
        elif _is_number(fields[1]) and _is_number(fields[2]):
            entries.append((fields[0], fields[1], fields[2], number))
        elif not entries:
            continue  # a header line
        else:
            raise ValueError(f"{path}:{number}: cannot find two times in {short_repr(line)}")
    words = []
    for word, start, end, number in entries:
        words += validate_words([(word, start, end)], f"{path}:{number}")
    return validate_words(words, str(path))


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
