"""Chunk checksums of the sample store and their verification.

Every array the store writes ends its codec chain with zarr v3's ``crc32c``
codec (a CRC-32C of the encoded chunk, appended as 4 bytes: zarr checks it on
every read), and every chunk is written, empty ones included
(``write_empty_chunks``), so that a deleted chunk cannot pass for an empty
one.  When a group is marked complete its marker records how many chunk files
each array holds (``marker["chunks"]``).  :func:`verify_store` then checks
each array without decompressing anything: every chunk of the grid is
present, and every chunk's stored CRC-32C matches its bytes.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ._markers import DONE_DIR, MARKER, normalize_group, store_root

__all__ = ["ChunkProblem", "VerifyReport", "verify_store", "checksum_encoding",
           "chunk_counts", "CHECKSUM"]

CHECKSUM = "crc32c"
#: A quick verification (before a rerun skips a group) reads every chunk of a group up
#: to this size and a sample of the chunks of larger ones (CRC-32C runs at GB/s: the
#: cost is the read; gpu_bench/RESULTS.store.md).
QUICK_FULL_BYTES = 256 * 2**20
#: Chunks per array read by a quick verification of a large group (evenly spaced,
#: first and last included); every chunk's presence is still checked.
QUICK_SAMPLE = 32


def _compressors():
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return ZstdCodec(level=0, checksum=False), Crc32cCodec()


def checksum_encoding(names, encoding: dict | None = None) -> dict:
    """Per-variable zarr encoding with the ``crc32c`` codec last and empty chunks written.

    Parameters
    ----------
    names : iterable of str
        Every variable (data and coordinates) to be written.
    encoding : dict, optional
        The caller's per-variable encoding; its ``compressors`` are kept (zstd
        when none) and ``crc32c`` is appended unless already there.
    """
    from zarr.codecs import Crc32cCodec

    encoding = dict(encoding or {})
    out = {}
    for name in names:
        enc = dict(encoding.pop(name, None) or {})
        given = enc.get("compressors")
        comps = tuple(given if isinstance(given, (list, tuple)) else [given]) \
            if given is not None else _compressors()[:1]
        if not any(isinstance(c, Crc32cCodec) for c in comps):
            comps = (*comps, Crc32cCodec())
        enc.update(compressors=comps, write_empty_chunks=True)
        out[name] = enc
    out.update(encoding)  # names not in the data: xarray reports them
    return out


def _array_dirs(group_path: Path):
    for entry in sorted(os.scandir(group_path), key=lambda e: e.name):
        meta = Path(entry.path) / "zarr.json"
        if entry.is_dir() and meta.is_file():
            try:
                kind = json.loads(meta.read_text()).get("node_type")
            except (OSError, ValueError):
                kind = "array"  # unreadable metadata: verify_store reports it
            if kind == "array":
                yield entry.name, Path(entry.path)


def _chunk_files(array_dir: Path) -> dict[str, int]:
    """Chunk key -> size in bytes of every chunk file of an array directory."""
    files = {}
    for top, dirs, names in os.walk(array_dir):
        dirs[:] = [d for d in dirs if d != DONE_DIR]
        rel = Path(top).relative_to(array_dir).as_posix()
        for name in names:
            if top == str(array_dir) and name == "zarr.json" or name.endswith(".partial"):
                continue
            key = name if rel == "." else f"{rel}/{name}"
            files[key] = os.stat(os.path.join(top, name)).st_size
    return files


def chunk_counts(group_path) -> dict[str, int]:
    """Number of chunk files of each array directly in a group directory."""
    return {name: len(_chunk_files(path)) for name, path in _array_dirs(Path(group_path))}


@dataclass(frozen=True)
class ChunkProblem:
    """One damaged chunk (or array) found by :func:`verify_store`.

    ``kind``: ``"missing"`` (a chunk file of the grid is absent), ``"corrupt"``
    (its CRC-32C does not match, or it is shorter than the checksum) or
    ``"unreadable"`` (metadata or a chunk without checksum that fails to decode).
    """

    group: str
    array: str
    chunk: str
    kind: str
    detail: str = ""

    def line(self) -> str:
        where = f"{self.group}/{self.array}" + (f" chunk {self.chunk}" if self.chunk else "")
        return f"{self.kind.upper():<10} {where}" + (f": {self.detail}" if self.detail else "")


@dataclass
class VerifyReport:
    """What :func:`verify_store` checked and found."""

    store: str
    quick: bool = False
    groups: list[str] = field(default_factory=list)
    problems: list[ChunkProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chunks_total: int = 0
    chunks_read: int = 0
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        """No missing, corrupt or unreadable chunk."""
        return not self.problems

    @property
    def damaged_groups(self) -> list[str]:
        return sorted({p.group for p in self.problems})

    def format(self, *, limit: int = 20) -> str:
        """Human-readable text (at most ``limit`` problem lines per array)."""
        how = "quick (presence of every chunk, checksums of a sample of large groups)" \
            if self.quick else "full (presence and checksum of every chunk)"
        lines = [f"verify {self.store}: {how}; {len(self.groups)} group(s), "
                 f"{self.chunks_total} chunks, {self.chunks_read} read "
                 f"({self.bytes_read / 2**20:.1f} MiB)"]
        by_array: dict[tuple, list] = {}
        for p in self.problems:
            by_array.setdefault((p.group, p.array), []).append(p)
        for items in by_array.values():
            lines += [f"  {p.line()}" for p in items[:limit]]
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more in {items[0].group}/"
                             f"{items[0].array}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("verify: OK" if self.ok else
                     f"verify: {len(self.problems)} problem(s) in group(s) "
                     f"{', '.join(self.damaged_groups)}")
        return "\n".join(lines)


def _crc_ok(path: str) -> tuple[bool, int, str]:
    import google_crc32c

    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4:
        return False, len(data), f"{len(data)} bytes, shorter than its 4-byte checksum"
    stored = int.from_bytes(data[-4:], "little")
    ok = google_crc32c.value(data[:-4]) == stored
    return ok, len(data), "" if ok else "CRC-32C mismatch (bytes changed after writing)"


def _sample(keys: list[str], n: int) -> list[str]:
    if len(keys) <= n:
        return keys
    step = (len(keys) - 1) / (n - 1)
    return [keys[round(i * step)] for i in range(n)]


def _verify_array(report, group, name, path: Path, files: dict[str, int], recorded,
                  quick_sample: bool) -> None:
    import zarr

    try:
        arr = zarr.open_array(str(path), mode="r", zarr_format=3)
    except Exception as exc:  # any metadata damage: named, not raised
        report.problems.append(ChunkProblem(group, name, "", "unreadable",
                                            f"array metadata: {exc}".splitlines()[0]))
        return
    grid = [arr.metadata.encode_chunk_key(i)
            for i in itertools.product(*(range(n) for n in arr.cdata_shape))]
    present = [k for k in grid if k in files]
    report.chunks_total += len(grid)
    if recorded is None:
        report.notes.append(f"{group}/{name}: no chunk record (group unfinished or written "
                            "before checksums): a missing chunk reads as fill value unnoticed")
    elif recorded >= len(grid):
        report.problems += [ChunkProblem(group, name, k, "missing", "chunk file absent")
                            for k in grid if k not in files]
    elif len(present) < recorded:
        report.problems.append(ChunkProblem(group, name, "?", "missing",
                                            f"{recorded - len(present)} of the {recorded} "
                                            "chunk files written are absent"))
    if arr.metadata.codecs[-1].to_dict().get("name") != CHECKSUM:
        report.notes.append(f"{group}/{name}: no {CHECKSUM} codec (written before checksums)"
                            + ("" if quick_sample else "; chunks decoded instead"))
        if not quick_sample:
            _decode_all(report, group, name, arr, grid, files)
        return
    for key in _sample(present, QUICK_SAMPLE) if quick_sample else present:
        ok, size, why = _crc_ok(str(path / key))
        report.chunks_read += 1
        report.bytes_read += size
        if not ok:
            report.problems.append(ChunkProblem(group, name, key, "corrupt", why))


def _decode_all(report, group, name, arr, grid, files) -> None:
    """Decode every chunk of an array without checksums (a store from before them)."""
    for idx, key in zip(itertools.product(*(range(n) for n in arr.cdata_shape)), grid):
        if key not in files:
            continue
        try:
            arr.get_block_selection(idx)
        except Exception as exc:  # zstd/bytes errors vary by codec
            report.problems.append(ChunkProblem(group, name, key, "unreadable",
                                                str(exc).splitlines()[0]))
        report.chunks_read += 1
        report.bytes_read += files[key]


def _group_meta(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())


def _groups_below(root: Path, groups) -> list[str]:
    """The given groups and their sub-groups (every group when ``groups`` is None)."""
    out = []
    starts = [root] if groups is None else [root / normalize_group(g) for g in groups]
    for start in starts:
        if not (start / "zarr.json").is_file():
            raise KeyError(f"store {str(root)!r} has no group "
                           f"{start.relative_to(root).as_posix()!r}")
        for top, dirs, names in os.walk(start):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if "zarr.json" not in names:
                continue
            try:
                kind = _group_meta(Path(top)).get("node_type")
            except (OSError, ValueError):
                kind = None  # a top group is reported; deeper, the parent reports it
            if kind != "group":
                dirs[:] = []
                if kind is not None or Path(top).parent != root:
                    continue
            if Path(top) != root:
                out.append(Path(top).relative_to(root).as_posix())
    return sorted(set(out))


def verify_store(store_path, *, groups=None, quick: bool = False) -> VerifyReport:
    """Check that every chunk of the store's arrays is present and intact.

    Parameters
    ----------
    store_path : str or path-like
    groups : iterable of str, optional
        Groups to check (with their sub-groups); default every group.
    quick : bool
        Check every chunk's presence but read (CRC-32C) only the chunks of
        groups up to ``QUICK_FULL_BYTES`` (256 MiB) and ``QUICK_SAMPLE`` (32)
        evenly spaced chunks per array of larger groups: what a rerun does
        before it skips a complete group.

    Returns
    -------
    VerifyReport
        ``problems``: one :class:`ChunkProblem` per missing, corrupt or
        unreadable chunk (group, array, chunk key such as ``c/0/1/2``);
        ``notes``: what could not be checked (arrays without checksums or
        without a chunk record); ``ok``; ``format()``.
    """
    root = store_root(store_path)
    if not (root / "zarr.json").is_file():
        raise FileNotFoundError(f"no zarr v3 store at {str(root)!r}")
    report = VerifyReport(store=str(root), quick=quick)
    for group in _groups_below(root, groups):
        path = root / group
        try:
            meta = _group_meta(path)
        except (OSError, ValueError) as exc:
            report.problems.append(ChunkProblem(group, "", "", "unreadable",
                                                f"group metadata zarr.json: {exc}"))
            continue
        if meta.get("node_type") != "group":
            continue
        report.groups.append(group)
        marker = (meta.get("attributes") or {}).get(MARKER) or {}
        recorded = marker.get("chunks") if marker.get("state") == "complete" else None
        arrays = [(name, p, _chunk_files(p)) for name, p in _array_dirs(path)]
        size = sum(sum(files.values()) for _, _, files in arrays)
        for name, apath, files in arrays:
            count = None if recorded is None else recorded.get(name)
            _verify_array(report, group, name, apath, files, count,
                          quick and size > QUICK_FULL_BYTES)
    return report
