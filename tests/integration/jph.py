"""Reading the JPH files (ISO/IEC 15444-15) GetImageFrame answers for HTJ2K lossless frames, as
a client would, without ahilite's code: the box sequence a JPH file must have, the fields of its
image header, and the codestream its jp2c box holds."""
import struct

SIGNATURE = b'\x00\x00\x00\x0cjP  \r\n\x87\n'


def boxes(data):
    """The top-level boxes of data: [(type, payload)], raising ValueError when they do not tile
    the file exactly."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError('box header cut at offset %d' % pos)
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        head = 8
        if length == 1:
            length = struct.unpack('>Q', data[pos + 8:pos + 16])[0]
            head = 16
        elif length == 0:
            length = len(data) - pos
        if length < head or pos + length > len(data):
            raise ValueError('box %r at offset %d has length %d' % (kind, pos, length))
        out.append((kind.decode('latin-1'), data[pos + head:pos + length]))
        pos += length
    return out


def parse(data):
    """Checks that data is a JPH file and returns (ihdr dict, colr bytes, codestream)."""
    if not data.startswith(SIGNATURE):
        raise ValueError('no JPEG 2000 signature box: %r' % data[:12])
    b = boxes(data)
    kinds = [k for k, _ in b]
    if kinds[:2] != ['jP  ', 'ftyp'] or 'jp2h' not in kinds or kinds[-1] != 'jp2c':
        raise ValueError('boxes %r' % kinds)
    ftyp = b[1][1]
    brand, minor = struct.unpack('>4sI', ftyp[:8])
    compat = [ftyp[i:i + 4] for i in range(8, len(ftyp), 4)]
    if brand != b'jph ' or b'jph ' not in compat:
        raise ValueError('ftyp brand %r, compatible %r' % (brand, compat))
    header = boxes(dict(b)['jp2h'])
    if header[0][0] != 'ihdr':
        raise ValueError('jp2h starts with %r' % header[0][0])
    h, w, nc, bpc, c, unkc, ipr = struct.unpack('>IIHBBBB', header[0][1])
    colr = dict(header).get('colr')
    if colr is None:
        raise ValueError('no colr box in jp2h')
    return ({'height': h, 'width': w, 'components': nc, 'bpc': bpc, 'compression': c},
            colr, b[-1][1])
