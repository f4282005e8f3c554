// Full-resolution decoding of the HTJ2K codestreams the frames module encodes, through OpenJPH
// (C++), exposed to C as ahl__ojph_verify(): the decode that verifies each encode at import,
// compared with the source row by row as it comes out of the decoder, so no second copy of the
// frame is made.
// OpenJPH's decoder is used here rather than OpenJPEG because it decodes these codestreams in
// under half the time (docs/frames.md#verification); both are conformant HTJ2K decoders, and the
// corpus tests decode every stored frame with both. Exceptions never cross this boundary
// (ojph_messages.h).
#include <openjph/ojph_arch.h> // before ojph_codestream.h, which uses OJPH_EXPORT without it
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_params.h>

#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

extern "C" {
#include "frames/shim.h"
}
#include "frames/ojph_messages.h"

extern "C" int ahl__ojph_verify(const uint8_t *cs, size_t n, const uint8_t *expected,
                                size_t expected_len, uint32_t width, uint32_t height,
                                uint32_t components, uint32_t precision, bool is_signed,
                                uint32_t *decompositions, char *errbuf, size_t errlen)
{
    ahl_ojph::configure_messages();
    uint32_t bps = precision <= 8 ? 1 : 2;
    size_t row_bytes = (size_t)width * components * bps;
    if (row_bytes * height != expected_len || components < 1 || components > 3 || precision < 1 ||
        precision > 16) {
        snprintf(errbuf, errlen, "the expected samples do not fit the frame");
        return -1;
    }
    try {
        std::vector<uint8_t> row(row_bytes);
        ojph::mem_infile file;
        file.open(cs, n);
        ojph::codestream c;
        c.read_headers(&file);
        ojph::param_siz siz = c.access_siz();
        ojph::param_cod cod = c.access_cod();
        ojph::point ext = siz.get_image_extent(), off = siz.get_image_offset();
        bool same = ext.x == width && ext.y == height && off.x == 0 && off.y == 0 &&
                    siz.get_num_components() == components && cod.is_reversible() &&
                    cod.is_using_color_transform() == (components == 3);
        for (uint32_t k = 0; same && k < components; k++) {
            ojph::point ds = siz.get_downsampling(k);
            same = siz.get_bit_depth(k) == precision && siz.is_signed(k) == is_signed &&
                   ds.x == 1 && ds.y == 1;
        }
        if (!same) {
            snprintf(errbuf, errlen,
                     "the codestream is not the frame it was made from (%ux%u at %u,%u, %u "
                     "components of %u bits)",
                     ext.x, ext.y, off.x, off.y, siz.get_num_components(), siz.get_bit_depth(0));
            c.close();
            return -3;
        }
        *decompositions = cod.get_num_decompositions();
        c.set_planar(false);
        c.create();
        // Samples come back with the DC level shift undone; a lossless decode of our own encode
        // never leaves the range of its precision, so a sample outside it is a wrong decode
        // even where its low bits would match.
        int32_t lo = is_signed ? -(1 << (precision - 1)) : 0;
        int32_t hi = is_signed ? (1 << (precision - 1)) - 1 : (1 << precision) - 1;
        for (uint32_t y = 0; y < height; y++) {
            bool in_range = true;
            for (uint32_t k = 0; k < components; k++) {
                ojph::ui32 comp = 0;
                ojph::line_buf *line = c.pull(comp);
                if (comp != k)
                    throw std::runtime_error("OpenJPH gave components out of order");
                const ojph::si32 *sp = line->i32;
                if (bps == 1) {
                    for (uint32_t x = 0; x < width; x++) {
                        in_range &= sp[x] >= lo && sp[x] <= hi;
                        row[(size_t)x * components + k] = (uint8_t)sp[x];
                    }
                } else {
                    for (uint32_t x = 0; x < width; x++) {
                        size_t i = ((size_t)x * components + k) * 2;
                        in_range &= sp[x] >= lo && sp[x] <= hi;
                        row[i] = (uint8_t)sp[x];
                        row[i + 1] = (uint8_t)((uint32_t)sp[x] >> 8);
                    }
                }
            }
            if (!in_range || memcmp(row.data(), expected + y * row_bytes, row_bytes) != 0) {
                snprintf(errbuf, errlen, "row %u of %u decodes to other samples than the source", y,
                         height);
                c.close();
                return -5;
            }
        }
        c.close();
        return 0;
    } catch (const std::bad_alloc &) {
        return -2;
    } catch (const std::exception &e) {
        snprintf(errbuf, errlen, "%s", e.what());
        return -1;
    }
}
