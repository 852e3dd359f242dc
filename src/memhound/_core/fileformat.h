/* fileformat.h -- the memhound snapshot file (docs/snapshot-format.md):
 * methods of SnapshotData, registered by its type in snapshot.c.
 *
 * Loading never trusts the file: every count, length and index is checked
 * against the bytes present, so a damaged or foreign file gives a ValueError
 * naming the section, never a crash.
 */
#ifndef MH_FILEFORMAT_H
#define MH_FILEFORMAT_H

#include <Python.h>

/* SnapshotData.dump(path, metadata_json=None, traceback_limit=...). */
PyObject *mh_fileformat_py_dump(PyObject *snap, PyObject *args);
/* SnapshotData.load(path) -> (SnapshotData, metadata_json or None), a classmethod. */
PyObject *mh_fileformat_py_load(PyObject *cls, PyObject *path);
/* SnapshotData._crc32c(data, software=False): the file checksum (test hook). */
PyObject *mh_fileformat_py_crc32c(PyObject *cls, PyObject *args);

#endif
