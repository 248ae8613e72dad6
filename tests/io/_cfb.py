"""A minimal writer of OLE2 compound files (MS-CFB version 3, 512-byte sectors).

olefile only reads these files, so the Xradia fixtures are written here:
header + DIFAT (in the header, <= 109 FAT sectors), FAT, mini FAT and mini
stream for streams < 4096 bytes, and a directory whose siblings form a binary
search tree ordered as the spec demands (name length, then upper-case name).
"""

from __future__ import annotations

import struct

SECTOR = 512
MINI = 64
CUTOFF = 4096
FREESECT, ENDOFCHAIN, FATSECT, NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def _pad(data: bytes, size: int) -> bytes:
    return data + b"\x00" * (-len(data) % size)


class _Node:
    def __init__(self, name, kind, data=b""):
        self.name, self.kind, self.data = name, kind, data  # kind: 1 storage, 2 stream, 5 root
        self.children: dict[str, _Node] = {}
        self.start, self.sid = ENDOFCHAIN, 0
        self.left = self.right = self.child = NOSTREAM


def _tree(streams):
    root = _Node("Root Entry", 5)
    for path, data in streams.items():
        parts = path.split("/")
        node = root
        for part in parts[:-1]:
            node = node.children.setdefault(part.upper(), _Node(part, 1))
        node.children[parts[-1].upper()] = _Node(parts[-1], 2, bytes(data))
    return root


def _flatten(root):
    nodes, stack = [], [root]
    while stack:
        node = stack.pop(0)
        node.sid = len(nodes)
        nodes.append(node)
        stack.extend(node.children.values())
    return nodes


def _link_siblings(node):
    kids = sorted(node.children.values(), key=lambda n: (len(n.name), n.name.upper()))

    def balanced(items):
        if not items:
            return NOSTREAM
        mid = len(items) // 2
        items[mid].left = balanced(items[:mid])
        items[mid].right = balanced(items[mid + 1:])
        return items[mid].sid

    node.child = balanced(kids)
    for kid in kids:
        _link_siblings(kid)


def _dir_entry(node) -> bytes:
    name = node.name.encode("utf-16-le") + b"\x00\x00"
    assert len(name) <= 64, node.name
    size = len(node.data)
    return (name.ljust(64, b"\x00") + struct.pack("<HBB", len(name), node.kind, 1)
            + struct.pack("<III", node.left, node.right, node.child) + b"\x00" * 16
            + struct.pack("<I", 0) + b"\x00" * 16 + struct.pack("<IQ", node.start, size))


def _empty_entry() -> bytes:
    return (b"\x00" * 64 + struct.pack("<HBB", 0, 0, 0) + struct.pack("<III", NOSTREAM,
            NOSTREAM, NOSTREAM) + b"\x00" * 36 + struct.pack("<IQ", 0, 0))


def write_cfb(path, streams: dict[str, bytes]) -> None:
    """Write ``streams`` ({"Storage/Sub/Stream": bytes}) as an OLE2 compound file."""
    root = _tree(streams)
    nodes = _flatten(root)
    _link_siblings(root)
    streams_ = [n for n in nodes if n.kind == 2]
    small = [n for n in streams_ if len(n.data) < CUTOFF]
    big = [n for n in streams_ if len(n.data) >= CUTOFF]

    mini_data, minifat = b"", []
    for node in small:
        n = max(1, -(-len(node.data) // MINI))
        node.start = len(minifat)
        minifat += list(range(node.start + 1, node.start + n)) + [ENDOFCHAIN]
        mini_data += _pad(node.data or b"\x00", MINI)

    sectors: list[bytes] = []
    fat: list[int] = []

    def allocate(data: bytes) -> int:
        chunks = [data[i:i + SECTOR] for i in range(0, len(data), SECTOR)] or [b""]
        start = len(sectors)
        for k, chunk in enumerate(chunks):
            sectors.append(chunk.ljust(SECTOR, b"\x00"))
            fat.append(start + k + 1 if k < len(chunks) - 1 else ENDOFCHAIN)
        return start

    for node in big:
        node.start = allocate(node.data)
    root.start = allocate(mini_data) if mini_data else ENDOFCHAIN
    root.data = b"\x00" * len(mini_data)  # root's size is the mini stream's size
    minifat_bytes = b"".join(struct.pack("<I", v) for v in minifat)
    minifat_start = allocate(minifat_bytes) if minifat else ENDOFCHAIN
    n_minifat = len(sectors) - minifat_start if minifat else 0
    dir_bytes = b"".join(_dir_entry(n) for n in nodes)
    dir_bytes += _empty_entry() * (-(len(nodes)) % (SECTOR // 128))
    dir_start = allocate(dir_bytes)

    n_fat = 1
    while (len(sectors) + n_fat) > n_fat * (SECTOR // 4):
        n_fat += 1
    assert n_fat <= 109, "fixture too large for a header-only DIFAT"
    fat_start = len(sectors)
    fat += [FATSECT] * n_fat
    fat += [FREESECT] * (n_fat * (SECTOR // 4) - len(fat))
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat)
    sectors += [fat_bytes[i:i + SECTOR] for i in range(0, len(fat_bytes), SECTOR)]

    difat = [fat_start + i for i in range(n_fat)] + [FREESECT] * (109 - n_fat)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
              + struct.pack("<IIIIIIIII", 0, n_fat, dir_start, 0, CUTOFF, minifat_start,
                            n_minifat, ENDOFCHAIN, 0)
              + b"".join(struct.pack("<I", v) for v in difat))
    assert len(header) == SECTOR
    with open(path, "wb") as fh:
        fh.write(header)
        fh.writelines(sectors)
