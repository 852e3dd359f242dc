"""Terminal output of the command line: tables for ``memhound top``,
``compare`` and ``run``, human sizes, one-line errors.

Plain text with aligned columns and human sizes; ANSI colour only when the
stream is a terminal and ``NO_COLOR`` is not set (https://no-color.org).
"""
import os
import sys

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def format_size(n, sign=False):
    """Human size with binary units: B, KiB, MiB, GiB, TiB (the one size
    format of memhound's tables, reports and pytest messages).

    >>> format_size(512), format_size(1536), format_size(-3 * 2**20, sign=True)
    ('512 B', '1.5 KiB', '-3.0 MiB')
    """
    prefix = ""
    if sign:
        prefix = "+" if n > 0 else "-" if n < 0 else ""
    value = abs(n)
    if value < 1024:
        return f"{prefix}{int(value)} B"
    for unit in _UNITS:
        value /= 1024
        if round(value, 1) < 1024 or unit == _UNITS[-1]:
            return f"{prefix}{value:.1f} {unit}"


def print_error(message, command=None):
    """Print a command-line error as one line on stderr.

    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as err:
    ...     print_error("app.snap: no such file", command="top")
    >>> err.getvalue()
    'memhound top: error: app.snap: no such file\\n'
    """
    prog = f"memhound {command}" if command else "memhound"
    print(f"{prog}: error: {message}", file=sys.stderr)


def format_count(n, sign=False):
    """Count with thousands separators.

    >>> format_count(12345), format_count(3, sign=True)
    ('12,345', '+3')
    """
    return f"{n:+,}" if sign and n else f"{n:,}"


def use_colour(stream):
    """True when ``stream`` is a terminal and NO_COLOR is unset or empty.

    >>> import io; use_colour(io.StringIO())
    False
    """
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:          # closed stream
        return False


class _Style:
    def __init__(self, colour):
        self.colour = colour

    def _wrap(self, code, text):
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    def bold(self, text):
        return self._wrap("1", text)

    def grow(self, text):
        return self._wrap("31", text)

    def shrink(self, text):
        return self._wrap("32", text)

    def dim(self, text):
        return self._wrap("2", text)


def format_frame(frame):
    """``file.py:12 in func`` for a (filename, lineno, function) tuple.

    >>> format_frame(("app.py", 12, "load")), format_frame(("app.py", 0, None))
    ('app.py:12 in load', 'app.py')
    """
    filename, lineno, function = frame
    text = f"{filename}:{lineno}" if lineno else filename
    return f"{text} in {function}" if function else text


def format_rate(n):
    """A sampling rate in the units it was most likely given in.

    >>> format_rate(524288), format_rate(1 << 20), format_rate(4000)
    ('512 KiB', '1 MiB', '4000 B')
    """
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def sampling_note(*rates):
    """The line that says a report's values are estimates, or None when
    every snapshot was traced exactly (rate 0).

    >>> sampling_note(524288)
    'sampled every 512 KiB: sizes and counts are estimates'
    >>> sampling_note(0, 0) is None
    True
    """
    rates = sorted({r for r in rates if r})
    if not rates:
        return None
    return f"sampled every {' / '.join(format_rate(r) for r in rates)}: " \
           f"sizes and counts are estimates"


def print_table(rows, *, title, diff=False, total=None, stream=None, sample_every=()):
    """Print a bold title and ``format_table(rows)`` to ``stream`` (stdout),
    coloured when it is a terminal.  ``sample_every``, the rate (or rates)
    of sampled snapshots, adds a line saying that the values are estimates.

    >>> from memhound.report._aggregate import SiteRow
    >>> print_table([SiteRow(512, 1, [("app.py", 3, None)])], title="top 1", total=1024)
    top 1
    #   Size  Share  Count  Average  Location
    1  512 B  50.0%      1    512 B  app.py:3
    """
    stream = stream or sys.stdout
    colour = use_colour(stream)
    text = format_table(rows, diff=diff, colour=colour, total_size=total)
    print(f"\x1b[1m{title}\x1b[0m" if colour else title, file=stream)
    rates = sample_every if isinstance(sample_every, (tuple, list)) else (sample_every,)
    note = sampling_note(*rates)
    if note:
        print(f"\x1b[2m{note}\x1b[0m" if colour else note, file=stream)
    print(text, file=stream)


def format_table(rows, *, diff=False, colour=False, total_size=None):
    """Format site rows (see ``_aggregate.SiteRow``) as an aligned table.

    Columns: rank, size, share of the total (or size/count change with
    ``diff=True``), count, average size, location.  A row whose location has
    several frames (group by traceback) continues on the next lines under
    the Location column, most recent call first.

    >>> from memhound.report._aggregate import SiteRow
    >>> print(format_table([SiteRow(2048, 2, [("app.py", 3, "load")])], total_size=4096))
    #     Size  Share  Count  Average  Location
    1  2.0 KiB  50.0%      2  1.0 KiB  app.py:3 in load
    """
    st = _Style(colour)
    if diff:
        header = ("#", "Size", "Change", "Count", "Change", "Location")
    else:
        header = ("#", "Size", "Share", "Count", "Average", "Location")
    cells = []
    for rank, row in enumerate(rows, 1):
        if diff:
            cols = (str(rank), format_size(row.size), format_size(row.size_diff, sign=True) or "0 B",
                    format_count(row.count), format_count(row.count_diff, sign=True))
        else:
            share = f"{100.0 * row.size / total_size:.1f}%" if total_size else "-"
            avg = format_size(row.size // row.count) if row.count else "-"
            cols = (str(rank), format_size(row.size), share, format_count(row.count), avg)
        cells.append((cols, row))
    widths = [len(h) for h in header[:5]]
    for cols, _ in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, cols)]
    indent = sum(widths) + 2 * 5
    lines = [st.bold("  ".join(h.rjust(w) for h, w in zip(header[:5], widths)) + "  " + header[5])]
    for cols, row in cells:
        out = []
        for i, (c, w) in enumerate(zip(cols, widths)):
            c = c.rjust(w)
            if diff and i in (2, 4):
                delta = row.size_diff if i == 2 else row.count_diff
                c = st.grow(c) if delta > 0 else st.shrink(c) if delta < 0 else c
            out.append(c)
        frames = row.frames or [("<unknown>", 0, None)]
        lines.append("  ".join(out) + "  " + format_frame(frames[0]))
        for frame in frames[1:]:
            lines.append(" " * indent + st.dim(format_frame(frame)))
    return "\n".join(lines)
