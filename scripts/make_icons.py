"""Draws the app icons (PNG, no dependencies). Run once; the PNGs are committed."""
import math
import struct
import sys
import zlib


def png(size, pixel):
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            row.extend(pixel(x, y, size))
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def icon(x, y, size):
    # Dark square; an amber ring (the network) around three linked nodes.
    cx = cy = size / 2
    dx, dy = x + 0.5 - cx, y + 0.5 - cy
    r = math.hypot(dx, dy) / size
    bg = (15, 23, 42, 255)
    amber = (245, 158, 11, 255)
    sky = (56, 189, 248, 255)
    if 0.36 <= r <= 0.41:
        return amber
    for k in range(3):
        a = math.pi / 2 + k * 2 * math.pi / 3
        nx, ny = cx + math.cos(a) * size * 0.2, cy - math.sin(a) * size * 0.2
        if math.hypot(x + 0.5 - nx, y + 0.5 - ny) <= size * 0.07:
            return sky
    if r <= 0.2 and abs(r - 0.1) < 0.012:
        return sky
    return bg


out = sys.argv[1] if len(sys.argv) > 1 else "public/icons"
for s in (192, 512):
    with open(f"{out}/icon-{s}.png", "wb") as f:
        f.write(png(s, icon))
