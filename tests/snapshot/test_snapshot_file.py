"""Snapshot files: round trip, and clear ValueErrors for bad files."""
import os
import pickle
import struct

import pytest

import memhound

HEADER = 48
ENTRY = 24
NAMES = {1: "string", 2: "frame", 3: "traceback", 4: "trace", 5: "metadata"}

RAW = [
    (0, 10, (("a.py", 2), ("b.py", 4)), 3),
    (0, 10, (("a.py", 2), ("b.py", 4)), 3),
    (1, 2, (("a.py", 5), ("b.py", 4)), 3),
    (2, 66, (("b.py", 1),), 1),
    (3, 7, (("<unknown>", 0),), None),
    (0, 2**40, (("\udcff\xe9.py", 9, "f\u4e2d"),), 1),
    (0, 5, (), 0),
]


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), the checksum of memhound snapshot files."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_reference_value():
    # The standard check value of CRC-32C (RFC 3720), in Python and in both
    # C implementations (hardware where the CPU has it, and the fallback).
    crc = memhound._core.SnapshotData._crc32c
    assert crc32c(b"123456789") == 0xE3069283
    for data in (b"", b"123456789", bytes(range(256)) * 37 + b"xyz"):
        assert crc(data) == crc(data, True) == crc32c(data)


def sample(tmp_path, metadata=True):
    snap = memhound.Snapshot(RAW, 5)
    if metadata:
        snap.metadata = {"timeline": [1, 2, 3], "label": "run \u2603"}
    path = tmp_path / "snap.mhsnap"
    snap.dump(path)
    return snap, path


def sections(data):
    nsec = struct.unpack_from("<I", data, 16)[0]
    out = []
    for i in range(nsec):
        sid, crc, off, length = struct.unpack_from("<IIQQ", data, HEADER + ENTRY * i)
        out.append((sid, crc, off, length))
    return out


def rewrite(data, sid, new_body):
    """Replace section `sid` (and fix every checksum), like a tool writing a
    well-formed but lying file."""
    data = bytearray(data)
    secs = sections(data)
    body = bytearray()
    table = bytearray()
    offset = HEADER + ENTRY * len(secs)
    for s, crc, off, length in secs:
        content = new_body if s == sid else bytes(data[off:off + length])
        table += struct.pack("<IIQQ", s, crc32c(content), offset, len(content))
        body += content
        offset += len(content)
    head = bytearray(data[:HEADER])
    struct.pack_into("<I", head, 32, crc32c(table))
    struct.pack_into("<I", head, 36, crc32c(bytes(head[:36])))
    return bytes(head + table + body)


def load_error(tmp_path, data):
    path = tmp_path / "bad.mhsnap"
    path.write_bytes(data)
    with pytest.raises(ValueError) as info:
        memhound.Snapshot.load(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_round_trip(tmp_path):
    snap, path = sample(tmp_path)
    snap.extra_attr = "new"
    snap.dump(str(path))
    loaded = memhound.Snapshot.load(str(path))
    assert loaded.traceback_limit == 5
    assert loaded.traces == snap.traces
    assert loaded.traces._traces == [
        (d, s, tuple(f[:2] for f in fr), t) for d, s, fr, t in RAW]
    assert loaded.metadata == {"timeline": [1, 2, 3], "label": "run \u2603"}
    assert loaded.extra_attr == "new"
    assert [f.function for f in loaded.traces[5].traceback] == ["f\u4e2d"]
    for key in ("lineno", "traceback"):
        assert loaded.statistics(key) == snap.statistics(key)
        assert all(d.size_diff == 0 for d in loaded.compare_to(snap, key))


def test_round_trip_empty_and_pathlike(tmp_path):
    snap = memhound.Snapshot([], 1)
    path = tmp_path / "empty.mhsnap"
    snap.dump(path)
    loaded = memhound.Snapshot.load(path)
    assert len(loaded.traces) == 0 and loaded.metadata == {}


def test_file_has_documented_layout(tmp_path):
    _, path = sample(tmp_path)
    data = path.read_bytes()
    assert data[:8] == b"\x89MHSNAP\n"
    assert struct.unpack_from("<HH", data, 8) == (1, 0xFEFF)
    assert struct.unpack_from("<I", data, 36)[0] == crc32c(data[:36])
    secs = sections(data)
    assert [s[0] for s in secs] == [1, 2, 3, 4, 5]
    for sid, crc, off, length in secs:
        assert crc32c(data[off:off + length]) == crc
    meta = next(s for s in secs if s[0] == 5)
    assert b'"timeline"' in data[meta[2]:meta[2] + meta[3]]


def test_compact_trace_columns(tmp_path):
    raw = [(0, size, (("a.py", size % 7),), 1) for size in range(1000)]
    path = tmp_path / "compact.mhsnap"
    memhound.Snapshot(raw, 1).dump(path)
    data = path.read_bytes()
    trace_sec = next(s for s in sections(data) if s[0] == 4)
    assert trace_sec[3] == 16 + 8 * 1000        # no domain column, 32-bit sizes
    assert struct.unpack_from("<QI", data, trace_sec[2]) == (1000, 0)
    assert memhound.Snapshot.load(path).traces._traces == raw
    raw[3] = (7, 2**33, raw[3][2], 1)
    memhound.Snapshot(raw, 1).dump(path)
    assert memhound.Snapshot.load(path).traces._traces == raw


def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        memhound.Snapshot.load(tmp_path / "nope.mhsnap")


def test_truncated_at_every_section_boundary(tmp_path):
    _, path = sample(tmp_path)
    data = path.read_bytes()
    secs = sections(data)
    msg = load_error(tmp_path, data[:20])
    assert "header: truncated" in msg
    msg = load_error(tmp_path, data[:HEADER + 10])
    assert "section table: truncated" in msg
    for sid, crc, off, length in secs:
        for cut in (off, off + length // 2):
            if cut >= len(data) or (cut == off and length == 0):
                continue
            msg = load_error(tmp_path, data[:cut])
            assert "%s section: truncated" % NAMES[sid] in msg, (sid, cut, msg)
    assert "not a memhound snapshot" in load_error(tmp_path, b"")


def test_flipped_byte_in_every_section(tmp_path):
    _, path = sample(tmp_path)
    data = path.read_bytes()
    cases = [(0, "not a memhound snapshot file (bad magic number)"),
             (8, "format version"), (10, "byte order"), (20, "header: checksum mismatch"),
             (HEADER + 3, "section table: checksum mismatch")]
    cases += [(off + length // 2, "%s section: checksum mismatch" % NAMES[sid])
              for sid, crc, off, length in sections(data)]
    for pos, expected in cases:
        bad = bytearray(data)
        bad[pos] ^= 0x40
        msg = load_error(tmp_path, bytes(bad))
        assert expected in msg, (pos, msg)


def test_foreign_files(tmp_path):
    pickled = pickle.dumps(memhound.Snapshot([], 1).traces._traces)
    assert "bad magic number" in load_error(tmp_path, pickled)
    assert "bad magic number" in load_error(tmp_path, os.urandom(4096))
    assert "bad magic number" in load_error(tmp_path, b"PK\x03\x04" + bytes(100))


def test_stdlib_pickle_snapshot_is_refused(tmp_path):
    import tracemalloc
    path = tmp_path / "std.pickle"
    tracemalloc.Snapshot([(0, 1, (("a.py", 1),), 1)], 1).dump(str(path))
    with pytest.raises(ValueError, match="not a memhound snapshot file"):
        memhound.Snapshot.load(path)


def test_future_version(tmp_path):
    _, path = sample(tmp_path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, 8, 7)
    struct.pack_into("<I", data, 36, crc32c(bytes(data[:36])))
    msg = load_error(tmp_path, bytes(data))
    assert "format version 7 is newer than this memhound supports (2)" in msg


def test_huge_and_inconsistent_counts(tmp_path):
    _, path = sample(tmp_path)
    data = path.read_bytes()
    secs = {s[0]: data[s[2]:s[2] + s[3]] for s in sections(data)}
    cases = [
        (1, struct.pack("<I", 0xFFFFFFFF) + secs[1][4:], "string section: count 4294967295"),
        (2, struct.pack("<I", 0xFFFFFFFF) + secs[2][4:], "frame section: count 4294967295"),
        (3, struct.pack("<I", 0xFFFFFFFF) + secs[3][4:], "traceback section: count 4294967295"),
        (4, struct.pack("<Q", 2**62) + secs[4][8:], "trace section: count 4611686018427387904"),
        (3, secs[3][:4] + struct.pack("<I", 0x7FFFFFFF) + secs[3][8:],
         "traceback section: frame counts add up"),
        (1, secs[1][:4] + struct.pack("<I", 0xFFFFFF) + secs[1][8:],
         "string section: string lengths add up"),
    ]
    for sid, body, expected in cases:
        msg = load_error(tmp_path, rewrite(data, sid, body))
        assert expected in msg, msg


def test_out_of_range_indices(tmp_path):
    _, path = sample(tmp_path)
    data = path.read_bytes()
    secs = {s[0]: data[s[2]:s[2] + s[3]] for s in sections(data)}
    nstrings = struct.unpack_from("<I", secs[1])[0]
    nframes = struct.unpack_from("<I", secs[2])[0]
    ntbs = struct.unpack_from("<I", secs[3])[0]
    frames = bytearray(secs[2])
    struct.pack_into("<I", frames, 4, nstrings + 3)
    msg = load_error(tmp_path, rewrite(data, 2, bytes(frames)))
    assert "frame section: frame 0: filename index %d out of range (%d strings)" % (
        nstrings + 3, nstrings) in msg
    tbs = bytearray(secs[3])
    struct.pack_into("<I", tbs, 4 + 8 * ntbs, nframes + 7)
    msg = load_error(tmp_path, rewrite(data, 3, bytes(tbs)))
    assert "traceback section: traceback 0: frame index %d out of range (%d frames)" % (
        nframes + 7, nframes) in msg
    traces = bytearray(secs[4])
    n, flags = struct.unpack_from("<QI", traces)
    assert flags == 3          # RAW has non-zero domains and a size >= 2**32
    struct.pack_into("<I", traces, 16 + 12 * n, ntbs)
    msg = load_error(tmp_path, rewrite(data, 4, bytes(traces)))
    assert "trace section: trace 0: traceback index %d out of range (%d tracebacks)" % (
        ntbs, ntbs) in msg


def test_bad_utf8_and_bad_metadata(tmp_path):
    _, path = sample(tmp_path)
    data = path.read_bytes()
    secs = {s[0]: data[s[2]:s[2] + s[3]] for s in sections(data)}
    strings = bytearray(secs[1])
    n = struct.unpack_from("<I", strings)[0]
    strings[4 + 4 * n] = 0xFF
    assert "string section: string 0 is not valid UTF-8" in load_error(
        tmp_path, rewrite(data, 1, bytes(strings)))
    assert "metadata section: invalid JSON" in load_error(tmp_path, rewrite(data, 5, b"{nope"))
    assert "metadata section: expected a JSON object" in load_error(
        tmp_path, rewrite(data, 5, b"[1]"))


def test_missing_section(tmp_path):
    _, path = sample(tmp_path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, HEADER + ENTRY * 2, 99)       # traceback -> unknown id
    struct.pack_into("<I", data, 32, crc32c(bytes(data[HEADER:HEADER + ENTRY * 5])))
    struct.pack_into("<I", data, 36, crc32c(bytes(data[:36])))
    assert "traceback section: missing" in load_error(tmp_path, bytes(data))


def test_dump_errors(tmp_path):
    snap = memhound.Snapshot(RAW, 5)
    snap.metadata = {"bad": object()}
    with pytest.raises(TypeError, match="not JSON serializable"):
        snap.dump(tmp_path / "x.mhsnap")
    snap.metadata = {}
    with pytest.raises(FileNotFoundError):
        snap.dump(tmp_path / "no" / "dir" / "x.mhsnap")
