#!/usr/bin/env python3
"""Makes the binary files of specs/static-site/ (the static-site fixture).

They are committed; this script says how they were made and remakes them:
  tests/make_static_site.py [SITE_DIR]   (default: specs/static-site)
The images need cjpeg, cwebp and avifenc (Debian: libjpeg-turbo-progs, webp,
libavif-bin); the large file needs nothing. Every output is a function of
this script alone: the pixels and the pseudo-random bytes are computed here.
"""
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import zlib

W, H = 16, 16


def pixels():
    """A 16x16 RGB gradient, row by row."""
    return [[(x * 16, y * 16, 128) for x in range(W)] for y in range(H)]


def png(rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\0" + bytes(c for px in row for c in px) for row in rows)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def ppm(rows):
    return b"P6\n%d %d\n255\n" % (W, H) + bytes(c for row in rows for px in row for c in px)


def pseudo_random(n):
    """n bytes of SHA-256 in counter mode: incompressible and reproducible."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"asmsrv static fixture %d" % i).digest()
        i += 1
    return bytes(out[:n])


def main():
    site = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "specs", "static-site")
    img = os.path.join(site, "assets", "img")
    os.makedirs(img, exist_ok=True)
    os.makedirs(os.path.join(site, "media"), exist_ok=True)
    rows = pixels()
    with open(os.path.join(img, "pixel.png"), "wb") as f:
        f.write(png(rows))
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "pixels.ppm")
        with open(src, "wb") as f:
            f.write(ppm(rows))
        subprocess.run(["cjpeg", "-quality", "75", "-outfile", os.path.join(img, "photo.jpg"), src], check=True)
        subprocess.run(["cwebp", "-quiet", "-q", "75", src, "-o", os.path.join(img, "photo.webp")], check=True)
        subprocess.run(["avifenc", "--min", "20", "--max", "30", "-s", "10", os.path.join(img, "pixel.png"),
                        os.path.join(img, "photo.avif")], check=True, stdout=subprocess.DEVNULL)
    # Over 1 MiB, not text: 1.2 MiB.
    with open(os.path.join(site, "media", "big.bin"), "wb") as f:
        f.write(pseudo_random(1258291))


if __name__ == "__main__":
    main()
