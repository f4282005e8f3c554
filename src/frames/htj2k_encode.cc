// HTJ2K lossless encoding through OpenJPH (C++), exposed to the C code of the frames module as
// ahl__ojph_encode(). Exceptions never cross this boundary: OpenJPH reports errors by calling its
// configured error handler, which ojph_messages.cc replaces with one that throws, and every call
// is wrapped in a try/catch that turns the message into text for the C caller.
//
// Determinism. Frame IDs are content addresses of the encoded bytes, so the same pixels must
// always encode to the same bytes (re-importing a file must not make a new version). OpenJPH
// 0.9.0's SSE2 and AVX2 kernels that move a code-block row into the block buffer
// (ojph::local::sse2_rev_tx_to_cb / avx2_rev_tx_to_cb) process 4 or 8 samples per step without
// a tail: for the last code-block of a subband row whose width is not a multiple of 4 or 8 they
// read up to 7 samples past the row, in the never-written padding of OpenJPH's line buffers, and
// OR them into the block's maximum magnitude. When the block itself is all zero (flat image
// regions: every colour-bar test image), that garbage decides whether the block is coded as
// empty or as one coding pass, so the bytes (never the decoded pixels) depend on what malloc
// handed out earlier; valgrind reports it as "conditional jump depends on uninitialised value"
// in codeblock::encode. Upstream later rewrote these kernels with a masked tail. No codestream
// setting avoids the path (any width that is not a multiple of 8 << levels hits it), so this
// file defines both kernels with the same signatures, correctly bounded; the dynamic linker
// binds OpenJPH's references to them (the library takes their addresses through its GOT, and an
// executable's definition comes first in symbol lookup). Only the reversible kernels are
// replaced: the irreversible ones are never used for lossless encoding. With a fixed OpenJPH
// these definitions are simply unused (later versions renamed the kernels).
#include <openjph/ojph_arch.h> // before ojph_codestream.h, which uses OJPH_EXPORT without it
#include <openjph/ojph_codestream.h>
#include <openjph/ojph_file.h>
#include <openjph/ojph_mem.h>
#include <openjph/ojph_params.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

extern "C" {
#include "frames/shim.h"
}
#include "frames/ojph_messages.h"

namespace
{

uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Inserts a TLM marker segment (one entry per tile-part: 16-bit tile index, 32-bit length) just
// before the first SOT, so that a reader can find every tile-part without scanning, as the DICOM
// HTJ2K RPCL profile expects. Returns a new malloc'd codestream, or NULL when the codestream is
// not shaped as OpenJPH writes it (the caller then fails).
uint8_t *add_tlm(const uint8_t *cs, size_t n, size_t *out_len)
{
    if (n < 4 || cs[0] != 0xFF || cs[1] != 0x4F)
        return nullptr;
    size_t pos = 2;
    while (pos + 4 <= n && !(cs[pos] == 0xFF && cs[pos + 1] == 0x90)) {
        if (cs[pos] != 0xFF)
            return nullptr;
        pos += 2 + ((size_t)cs[pos + 2] << 8 | cs[pos + 3]);
    }
    size_t first_sot = pos;
    // Collect the tile-parts: SOT = FF90 Lsot(2) Isot(2) Psot(4) TPsot TNsot.
    size_t nparts = 0, cap = 8;
    uint32_t *lens = (uint32_t *)malloc(cap * sizeof *lens);
    uint16_t *tiles = (uint16_t *)malloc(cap * sizeof *tiles);
    uint8_t *out = nullptr;
    while (lens && tiles && pos + 12 <= n && cs[pos] == 0xFF && cs[pos + 1] == 0x90) {
        uint32_t psot = be32(cs + pos + 6);
        if (psot < 14 || pos + psot > n)
            goto fail;
        if (nparts == cap) {
            cap *= 2;
            uint32_t *l2 = (uint32_t *)realloc(lens, cap * sizeof *lens);
            if (l2)
                lens = l2;
            uint16_t *t2 = (uint16_t *)realloc(tiles, cap * sizeof *tiles);
            if (t2)
                tiles = t2;
            if (!l2 || !t2)
                goto fail;
        }
        lens[nparts] = psot;
        tiles[nparts] = (uint16_t)(cs[pos + 4] << 8 | cs[pos + 5]);
        nparts++;
        pos += psot;
    }
    if (!lens || !tiles || nparts == 0 || nparts > 10000)
        goto fail;
    {
        size_t ltlm = 4 + 6 * nparts, seg = 2 + ltlm;
        out = (uint8_t *)malloc(n + seg);
        if (!out)
            goto fail;
        memcpy(out, cs, first_sot);
        uint8_t *p = out + first_sot;
        *p++ = 0xFF;
        *p++ = 0x55;
        *p++ = (uint8_t)(ltlm >> 8);
        *p++ = (uint8_t)ltlm;
        *p++ = 0;    // Ztlm: the only TLM segment
        *p++ = 0x60; // Stlm: ST=2 (16-bit tile index), SP=1 (32-bit lengths)
        for (size_t i = 0; i < nparts; i++) {
            *p++ = (uint8_t)(tiles[i] >> 8);
            *p++ = (uint8_t)tiles[i];
            *p++ = (uint8_t)(lens[i] >> 24);
            *p++ = (uint8_t)(lens[i] >> 16);
            *p++ = (uint8_t)(lens[i] >> 8);
            *p++ = (uint8_t)lens[i];
        }
        memcpy(p, cs + first_sot, n - first_sot);
        *out_len = n + seg;
    }
fail:
    free(lens);
    free(tiles);
    return out;
}

} // namespace

// The replacements described at the top. Same contract as OpenJPH's generic kernel: convert
// `count` samples to sign-magnitude shifted up to the top of the 32-bit word, store them, and OR
// the magnitudes into max_val (one of the 8 lanes the SIMD find_max_val ORs together). The
// destination row is padded to a multiple of 8 entries (OpenJPH's code-block stride), which the
// original kernels filled from the over-read; we fill it with zeros so nothing downstream sees
// unwritten memory either.
namespace ojph
{
namespace local
{
__attribute__((visibility("default"))) void
sse2_rev_tx_to_cb(const void *sp, ui32 *dp, ui32 K_max, float delta_inv, ui32 count, ui32 *max_val);
__attribute__((visibility("default"))) void
avx2_rev_tx_to_cb(const void *sp, ui32 *dp, ui32 K_max, float delta_inv, ui32 count, ui32 *max_val);
} // namespace local
} // namespace ojph

static void bounded_rev_tx_to_cb(const void *sp, ojph::ui32 *dp, ojph::ui32 K_max, ojph::ui32 count,
                                 ojph::ui32 *max_val)
{
    const ojph::si32 *p = (const ojph::si32 *)sp;
    ojph::ui32 shift = 31 - K_max, tmax = 0;
    for (ojph::ui32 i = 0; i < count; i++) {
        ojph::si32 v = p[i];
        ojph::ui32 sign = v < 0 ? 0x80000000u : 0;
        ojph::ui32 mag = (v < 0 ? 0u - (ojph::ui32)v : (ojph::ui32)v) << shift;
        dp[i] = sign | mag;
        tmax |= mag;
    }
    for (ojph::ui32 i = count; i % 8 != 0; i++)
        dp[i] = 0;
    max_val[0] |= tmax;
}

void ojph::local::sse2_rev_tx_to_cb(const void *sp, ui32 *dp, ui32 K_max, float, ui32 count,
                                    ui32 *max_val)
{
    bounded_rev_tx_to_cb(sp, dp, K_max, count, max_val);
}

void ojph::local::avx2_rev_tx_to_cb(const void *sp, ui32 *dp, ui32 K_max, float, ui32 count,
                                    ui32 *max_val)
{
    bounded_rev_tx_to_cb(sp, dp, K_max, count, max_val);
}

extern "C" int ahl__ojph_encode(const uint8_t *samples, uint32_t width, uint32_t height,
                                uint32_t components, uint32_t bytes_per_sample, uint32_t precision,
                                bool is_signed, uint32_t decompositions, bool colour_transform,
                                uint8_t **out, size_t *out_len, char *errbuf, size_t errlen)
{
    *out = nullptr;
    *out_len = 0;
    ahl_ojph::configure_messages();
    try {
        ojph::codestream cs;
        ojph::param_siz siz = cs.access_siz();
        siz.set_image_extent(ojph::point(width, height));
        siz.set_num_components(components);
        for (uint32_t c = 0; c < components; c++)
            siz.set_component(c, ojph::point(1, 1), precision, is_signed);
        siz.set_image_offset(ojph::point(0, 0));
        siz.set_tile_size(ojph::size(width, height));
        siz.set_tile_offset(ojph::point(0, 0));

        ojph::param_cod cod = cs.access_cod();
        cod.set_num_decomposition(decompositions);
        cod.set_block_dims(64, 64);
        cod.set_progression_order("RPCL");
        cod.set_color_transform(colour_transform && components == 3);
        cod.set_reversible(true);
        cs.set_planar(false);

        ojph::mem_outfile file;
        file.open(65536 + (size_t)width * height * components * bytes_per_sample / 2);
        cs.write_headers(&file);

        ojph::ui32 next = 0;
        ojph::line_buf *line = cs.exchange(nullptr, next);
        size_t row_samples = (size_t)width * components;
        for (uint32_t y = 0; y < height; y++) {
            const uint8_t *row = samples + (size_t)y * row_samples * bytes_per_sample;
            for (uint32_t c = 0; c < components; c++) {
                if (next != c)
                    throw std::runtime_error("OpenJPH asked for components out of order");
                ojph::si32 *dst = line->i32;
                if (bytes_per_sample == 1) {
                    for (uint32_t x = 0; x < width; x++) {
                        uint8_t v = row[(size_t)x * components + c];
                        dst[x] = is_signed ? (ojph::si32)(int8_t)v : (ojph::si32)v;
                    }
                } else {
                    for (uint32_t x = 0; x < width; x++) {
                        size_t i = ((size_t)x * components + c) * 2;
                        uint16_t v = (uint16_t)(row[i] | row[i + 1] << 8);
                        dst[x] = is_signed ? (ojph::si32)(int16_t)v : (ojph::si32)v;
                    }
                }
                line = cs.exchange(line, next);
            }
        }
        cs.flush();
        size_t n = (size_t)file.tell();
        *out = add_tlm(file.get_data(), n, out_len);
        cs.close();
        if (!*out) {
            snprintf(errbuf, errlen, "OpenJPH wrote a codestream without the expected SOT layout");
            return -1;
        }
        return 0;
    } catch (const std::bad_alloc &) {
        free(*out);
        *out = nullptr;
        return -2;
    } catch (const std::exception &e) {
        free(*out);
        *out = nullptr;
        snprintf(errbuf, errlen, "%s", e.what());
        return -1;
    }
}
