/* Image frames: decode the pixel data of an imported DICOM instance one frame at a time, store each
 * frame the way AWS HealthImaging does (HTJ2K lossless, JPEG 2000 lossless for data stores created
 * with that format, or the original bytes for the lossy syntaxes HealthImaging keeps) and compute
 * the per-frame metadata HealthImaging records. Where the stored bytes go is blob/framestore.h's
 * business; this module does no I/O.
 *
 * Calling sequence at import, per instance:
 *
 *     struct ahl_pixel_desc d;
 *     ahl_pixel_desc_from_dataset(&file->ds, file->transfer_syntax, &d, err);
 *     -- encapsulated: map fragments to frames once
 *     struct ahl_frame_span *spans = calloc(d.number_of_frames, sizeof *spans);
 *     bool bad_bot;   -- a Basic Offset Table that does not match: warn InvalidOffsetTable
 *     ahl_frames_map_fragments(&file->pixel, d.number_of_frames, read_fn, ctx, spans, &bad_bot,
 *                              err);
 *     for each frame i:
 *         -- the frame's bytes: native, ahl_native_frame_extract(); encapsulated,
 *         -- ahl_frames_gather(&file->pixel, &spans[i], read_fn, ctx, &bytes, &n, err)
 *         struct ahl_stored_frame sf;
 *         ahl_frame_transcode(&d, bytes, n, &sf, err);       -- decode, encode, metadata
 *         ahl_frame_id(sf.stored_transfer_syntax, sf.data, sf.len, sf.id);  -- blob/framestore.h
 *         ahl_framestore_put(&fs, sf.id, sf.data, sf.len, err);
 *         -- record sf.id, sf.min_pixel, sf.max_pixel, sf.frame_size_in_bytes, sf.levels[] and
 *         -- sf.stored_transfer_syntax in the instance's metadata
 *         ahl_stored_frame_release(&sf);
 *
 * and at GetImageFrame: ahl_framestore_open_verified() by id, answered with the
 * Content-Type ahl_frame_content_type(StoredTransferSyntaxUID).
 *
 * Storage policy (what HealthImaging's "supported transfer syntaxes" page says, followed here):
 * - Stored as-is (StoredTransferSyntaxUID = the source syntax, bytes = the frame's fragments
 *   concatenated): JPEG Baseline 1.2.840.10008.1.2.4.50, JPEG 2000 (lossy allowed)
 *   1.2.840.10008.1.2.4.91, HTJ2K (lossy allowed) 1.2.840.10008.1.2.4.203. Transcoding these
 *   losslessly would only bloat them; metadata (min/max, checksums) is computed on their decode.
 *   Binary segmentations (BitsAllocated 1) are stored as-is in Explicit VR Little Endian form
 *   (1.2.840.10008.1.2.1, the frame's bits packed from the frame's first pixel, LSB first).
 * - Everything else (native LE/BE/deflated, RLE, JPEG extended/lossless, JPEG-LS, JPEG 2000
 *   lossless, HTJ2K lossless) is decoded and re-encoded, in a data store created with
 *   losslessStorageFormat JPEG_2000_LOSSLESS as JPEG 2000 lossless (1.2.840.10008.1.2.4.90,
 *   ahl_j2k_encode, verified by an OpenJPEG decode, the settings below less TLM), otherwise as
 *   HTJ2K lossless with RPCL progression (StoredTransferSyntaxUID 1.2.840.10008.1.2.4.202):
 *   reversible 5/3 wavelet, 64x64 code blocks, RPCL, up to 5 decomposition levels (fewer for
 *   images under 32 pixels on a side, so the lowest level is at least 1 pixel), the reversible
 *   colour transform for 3-sample images, one tile, and a TLM marker segment. Signed data is
 *   encoded as signed components with the precision of BitsStored, so the stored frame decodes
 *   to exactly the source samples.
 *   JPEG extended (.4.51) and JPEG-LS near-lossless (.4.81) are lossy at the source; they are
 *   transcoded as HealthImaging does, losslessly with respect to their decoded pixels.
 *
 * The canonical raw frame (what decoders produce and what checksums are computed over):
 * - samples little-endian, 1 byte each when the precision (BitsStored) is <= 8, else 2 bytes;
 * - colour pixel-interleaved (R G B R G B ...) whatever the source PlanarConfiguration;
 * - signed samples sign-extended to the container (two's complement); unsigned samples with the
 *   bits above HighBit cleared (DICOM says they are not part of the pixel value);
 * - photometric values as stored: MONOCHROME1 is not inverted, PALETTE COLOR keeps its indices,
 *   YBR_FULL keeps its Y/Cb/Cr values. YBR_FULL_422 native data is expanded to full-resolution
 *   YBR_FULL (each chroma pair repeated for both pixels, no colour conversion), which is what
 *   DICOM toolkits hand out. Decoders that apply a colour transform because the codestream says so
 *   (JPEG YCbCr -> RGB by libjpeg / IJG, JPEG 2000 ICT/RCT) report "RGB" in ahl_raw_frame.
 *   photometric; the importer should then record the photometric of the stored frame.
 * - 32-bit samples (BitsAllocated 32) and float pixel data are not supported (AHL_EUNSUPPORTED).
 *
 * Per-frame metadata (HealthImaging's ImageFrames entries):
 * - ID: 32 lowercase hex digits, the first 128 bits of SHA-256(stored transfer syntax UID, a NUL,
 *   SHA-256(stored bytes)). A content address: re-importing the same instance, copying an
 *   image set or making a new version references the same blob, and the write is idempotent.
 *   This relies on encoding being deterministic: the same canonical frame always encodes to the
 *   same bytes, whatever the heap held before (htj2k_encode.cc replaces two OpenJPH 0.9.0
 *   kernels that broke this).
 *   Consequence for deletion: a frame id may be referenced by several image sets, so a blob may
 *   only be deleted once no version of any image set references it (reachability, not ownership).
 * - FrameSizeInBytes: the size of the stored (encoded) frame, i.e. the bytes GetImageFrame returns.
 * - MinPixelValue / MaxPixelValue: over all samples of the decoded frame, as signed values when
 *   PixelRepresentation is 1.
 * - PixelDataChecksumFromBaseToFullResolution: one {Width, Height, Checksum} per resolution level
 *   of the stored frame, lowest first, full size last; Checksum = CRC32 (zlib) of the canonical raw
 *   buffer of the stored frame decoded at that level (OpenJPEG, opj_set_decoded_resolution_factor).
 *   For the frames this module encodes they are computed from the one verification decode by the
 *   forward wavelet transform, which gives the same numbers without a decode per level
 * (level_checksums.c). Frames stored as-is in a non-wavelet syntax (JPEG baseline, native) have one
 * entry, full size; for 1-bit frames its checksum is over the stored (packed) bytes and min/max are
 * 0 or 1.
 *
 * Limits: rows and columns <= 65535, samples per pixel 1 or 3, a decoded frame <= 1 GiB.
 * Thread safety: every function may be called from several threads at once on different objects.
 */
#ifndef AHL_FRAMES_FRAMES_H
#define AHL_FRAMES_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/codec.h"
#include "base/err.h"
#include "dicom/dataset.h"

/* Transfer syntaxes this module speaks of. */
#define AHL_TS_IMPLICIT_LE "1.2.840.10008.1.2"
#define AHL_TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define AHL_TS_DEFLATED_LE "1.2.840.10008.1.2.1.99"
#define AHL_TS_EXPLICIT_BE "1.2.840.10008.1.2.2"
#define AHL_TS_JPEG_BASELINE "1.2.840.10008.1.2.4.50"
#define AHL_TS_JPEG_EXTENDED "1.2.840.10008.1.2.4.51"
#define AHL_TS_JPEG_LOSSLESS "1.2.840.10008.1.2.4.57"
#define AHL_TS_JPEG_LOSSLESS_SV1 "1.2.840.10008.1.2.4.70"
#define AHL_TS_JPEGLS_LOSSLESS "1.2.840.10008.1.2.4.80"
#define AHL_TS_JPEGLS_NEAR "1.2.840.10008.1.2.4.81"
#define AHL_TS_J2K_LOSSLESS "1.2.840.10008.1.2.4.90"
#define AHL_TS_J2K "1.2.840.10008.1.2.4.91"
#define AHL_TS_HTJ2K_LOSSLESS "1.2.840.10008.1.2.4.201"
#define AHL_TS_HTJ2K_RPCL "1.2.840.10008.1.2.4.202"
#define AHL_TS_HTJ2K "1.2.840.10008.1.2.4.203"
#define AHL_TS_RLE "1.2.840.10008.1.2.5"

#define AHL_FRAME_MAX_DIM 65535u
#define AHL_FRAME_MAX_BYTES ((size_t)1 << 30)
#define AHL_FRAME_MAX_LEVELS 8

/* How a transfer syntax's pixel data is coded. */
enum ahl_frame_codec {
    AHL_CODEC_UNSUPPORTED = 0,
    AHL_CODEC_NATIVE, /* implicit/explicit LE, deflated (the reader inflates), explicit BE */
    AHL_CODEC_RLE,    /* RLE Lossless, our own decoder */
    AHL_CODEC_JPEG,   /* .4.50 .4.51 .4.57 .4.70: libjpeg-turbo or DCMTK's IJG 8/12/16 */
    AHL_CODEC_JPEGLS, /* .4.80 .4.81: CharLS */
    AHL_CODEC_J2K,    /* .4.90 .4.91 and HTJ2K .4.201-.4.203: OpenJPEG */
};

/* The Image Pixel module values of an instance and its transfer syntax. */
struct ahl_pixel_desc {
    uint32_t rows, columns;
    uint16_t samples_per_pixel;
    uint16_t bits_allocated, bits_stored, high_bit;
    uint16_t pixel_representation; /* 0 unsigned, 1 two's complement */
    uint16_t planar_configuration; /* 0 interleaved, 1 planar (native and RLE only) */
    uint32_t number_of_frames;     /* 1 when the element is absent */
    char photometric[17];          /* PhotometricInterpretation, padding removed */
    char transfer_syntax[65];
};

/* A frame in canonical form (see the top comment). Owned by the caller; release with
 * ahl_raw_frame_release(). */
struct ahl_raw_frame {
    uint32_t width, height;
    uint16_t components;       /* 1 or 3 */
    uint16_t bytes_per_sample; /* 1 or 2 */
    uint16_t precision;        /* significant bits per sample, 1..16 */
    bool is_signed;
    char photometric[17]; /* of the decoded samples (may be "RGB" for a YBR source) */
    uint8_t *data;        /* width * height * components * bytes_per_sample bytes */
    size_t len;
};

/* One resolution level of a stored frame. */
struct ahl_frame_level {
    uint32_t width, height;
    uint32_t checksum; /* CRC32 of the canonical raw buffer at this level */
};

/* A frame ready to store, and its ImageFrames metadata. Release with ahl_stored_frame_release(). */
struct ahl_stored_frame {
    char id[33]; /* 32 lowercase hex + NUL: left empty here; the content address ahl_frame_id
                    (blob/framestore.h) gives */
    char stored_transfer_syntax[65]; /* StoredTransferSyntaxUID */
    char photometric[17];     /* PhotometricInterpretation of the stored frame's decode ("RGB" when
                                 the source codec converted YBR; see the top comment) */
    const char *content_type; /* static, for GetImageFrame */
    uint8_t *data;            /* the bytes to store and serve */
    size_t len;
    uint64_t frame_size_in_bytes;                        /* FrameSizeInBytes == len */
    int64_t min_pixel, max_pixel;                        /* MinPixelValue, MaxPixelValue */
    struct ahl_frame_level levels[AHL_FRAME_MAX_LEVELS]; /* lowest resolution first */
    size_t n_levels;
};

/* How a data store stores the frames it encodes (its losslessStorageFormat). */
enum ahl_lossless_format {
    AHL_LOSSLESS_HTJ2K = 0, /* HTJ2K lossless RPCL, 1.2.840.10008.1.2.4.202 (the default) */
    AHL_LOSSLESS_J2K,       /* JPEG 2000 lossless, 1.2.840.10008.1.2.4.90 */
};

/* "HTJ2K" (or "" or NULL, a data store recorded before the format was) and
 * "JPEG_2000_LOSSLESS": 0 with *out set; anything else AHL_EINVAL naming it. */
int ahl_lossless_format_parse(const char *name, enum ahl_lossless_format *out, struct ahl_err *err);

/* The StoredTransferSyntaxUID of frames encoded in a format. */
const char *ahl_lossless_format_syntax(enum ahl_lossless_format fmt);

/* ---- describing the input ---- */

/* The codec of a transfer syntax UID (trailing NUL/space padding tolerated). */
enum ahl_frame_codec ahl_frame_codec_of(const char *transfer_syntax);

/* Fills d from the dataset's Image Pixel module (Rows, Columns, SamplesPerPixel, BitsAllocated,
 * BitsStored, HighBit, PixelRepresentation, PhotometricInterpretation, PlanarConfiguration,
 * NumberOfFrames) and the given transfer syntax, then validates it (ahl_pixel_desc_check).
 * Binary values are little-endian per dataset.h. 0, AHL_EPARSE (missing or malformed element,
 * named in err) or AHL_EUNSUPPORTED. */
int ahl_pixel_desc_from_dataset(const struct ahl_dcm_dataset *ds, const char *transfer_syntax,
                                struct ahl_pixel_desc *d, struct ahl_err *err);

/* Checks that d describes something this module can handle: sizes within limits, BitsAllocated
 * 1, 8 or 16, 1 <= BitsStored <= BitsAllocated, HighBit == BitsStored - 1, SamplesPerPixel 1 or 3,
 * a known transfer syntax. 0, AHL_EPARSE or AHL_EUNSUPPORTED with the reason in err. */
int ahl_pixel_desc_check(const struct ahl_pixel_desc *d, struct ahl_err *err);

/* A description of single-frame pixel data made from its parts, as a tool or test that makes its
 * own pixels needs it: HighBit is bits_stored - 1, planar configuration 0, one frame. Strings
 * longer than their fields are cut (ahl_pixel_desc_check then refuses them). */
struct ahl_pixel_desc ahl_pixel_desc_make(uint32_t rows, uint32_t columns,
                                          uint16_t samples_per_pixel, uint16_t bits_allocated,
                                          uint16_t bits_stored, uint16_t pixel_representation,
                                          const char *photometric, const char *transfer_syntax);

/* Bytes of one native frame as stored in the file (for BitsAllocated 1: the frame's bits rounded
 * up to whole bytes). 0 when d is invalid. */
uint64_t ahl_native_frame_size(const struct ahl_pixel_desc *d);

/* Copies native frame `index` out of the whole native pixel data value (pixel, pixel_len) into a
 * new malloc'd buffer (*out, *out_len), so that ahl_frame_decode/_transcode see the frame from
 * its first byte. For BitsAllocated 1 frames need not start on a byte boundary; the bits are
 * shifted down. AHL_EPARSE when the value is too short for the frame. */
int ahl_native_frame_extract(const struct ahl_pixel_desc *d, const uint8_t *pixel, size_t pixel_len,
                             uint32_t index, uint8_t **out, size_t *out_len, struct ahl_err *err);

/* ---- encapsulated pixel data: which fragments make which frame ---- */

/* Reads n bytes at offset of the (inflated) stream the fragment offsets refer to. Returns 0 or a
 * negative AHL_E* code. Short reads are errors. */
typedef int (*ahl_frames_read_fn)(void *ctx, uint64_t offset, void *buf, size_t n);

struct ahl_frame_span {
    size_t first;   /* index into px->fragments */
    size_t count;   /* fragments of this frame, >= 1 */
    uint64_t bytes; /* sum of their lengths */
};

/* Maps the fragments of px to number_of_frames frames (spans[number_of_frames]):
 * 1. with a Basic Offset Table of number_of_frames entries, each entry must point at a fragment
 *    boundary (entries are offsets from the first fragment's item tag; each item is 8 + length);
 * 2. else with exactly number_of_frames fragments, one fragment per frame;
 * 3. else by scanning: a fragment that starts with a JPEG SOI (FF D8), a J2K SOC+SIZ (FF 4F FF 51)
 *    or a JP2 signature box starts a new frame (read_fn reads those first bytes; NULL skips this
 *    step). With number_of_frames == 1 all fragments form the one frame.
 * *invalid_offset_table (when not NULL) is set when the file has a Basic Offset Table that is not
 * empty yet does not describe the frames (another number of entries than frames, an entry off a
 * fragment boundary, not starting at 0, not ascending): the table is then ignored and the frames
 * come from steps 2-3. HealthImaging imports such a file with warning 45330 InvalidOffsetTable.
 * An empty table is valid (DICOM makes it optional).
 * 0, or AHL_EPARSE saying why the fragments cannot be matched to frames. */
int ahl_frames_map_fragments(const struct ahl_dcm_pixel *px, uint32_t number_of_frames,
                             ahl_frames_read_fn read_fn, void *ctx, struct ahl_frame_span *spans,
                             bool *invalid_offset_table, struct ahl_err *err);

/* Concatenates the fragments of one frame (a span from ahl_frames_map_fragments) into a new
 * malloc'd buffer (*out, *len), reading them with read_fn. AHL_ETOOBIG beyond
 * AHL_FRAME_MAX_BYTES; read_fn's error (with the fragment named in err) when a read fails, where
 * AHL_EPARSE means a short read (the fragment runs past the end of the file). */
int ahl_frames_gather(const struct ahl_dcm_pixel *px, const struct ahl_frame_span *span,
                      ahl_frames_read_fn read_fn, void *ctx, uint8_t **out, size_t *len,
                      struct ahl_err *err);

/* ---- what a frame costs ---- */

/* The most memory one frame may take to transcode (ahl_frame_transcode_cost_as): frames estimated
 * above it are refused with AHL_ETOOBIG before anything is read or decoded. A 4096x4096 RGB
 * 16-bit frame costs about 0.6 GiB; a 16384x16384 16-bit frame (512 MiB decoded) about 3 GiB. */
#define AHL_FRAME_MAX_COST ((uint64_t)2 << 30)

/* The peak memory, in bytes, that ahl_frame_transcode takes for one frame of d whose source
 * bytes are src_len long: the source, the decoded frame, OpenJPEG's decode of the stored
 * codestream (32-bit samples plus its tile and wavelet buffers, measured at about 6 bytes per
 * sample) and the comparison copy. An estimate from the description alone, so an importer can
 * refuse or wait for memory before it reads the frame. 0 when d is invalid. */
uint64_t ahl_frame_transcode_cost(const struct ahl_pixel_desc *d, uint64_t src_len);

/* The same for a data store whose lossless frames are stored in fmt: JPEG 2000 lossless costs
 * more, OpenJPEG's encoder holding the image and its tile as 32-bit samples and a buffer for the
 * coded tile (measured at about 11 bytes per sample over the source and the decoded frame, on a
 * 2048x2048 16-bit frame of noise; 12 are counted). */
uint64_t ahl_frame_transcode_cost_as(const struct ahl_pixel_desc *d, uint64_t src_len,
                                     enum ahl_lossless_format fmt);

/* Checks a frame's estimated cost (for a data store of format fmt) against AHL_FRAME_MAX_COST: 0
 * with *cost set (when cost is not NULL), or AHL_ETOOBIG with the size and the estimate in err. */
int ahl_frame_cost_check_as(const struct ahl_pixel_desc *d, uint64_t src_len,
                            enum ahl_lossless_format fmt, uint64_t *cost, struct ahl_err *err);

/* ---- decoding ---- */

/* Decodes one frame (native: the frame's bytes from ahl_native_frame_extract; encapsulated: the
 * frame's fragments concatenated) into the canonical form. 0, AHL_EPARSE (corrupt input: what and
 * where in err), AHL_EUNSUPPORTED, AHL_ETOOBIG or AHL_ENOMEM. Never reads outside src[0..n). */
int ahl_frame_decode(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                     struct ahl_raw_frame *out, struct ahl_err *err);

/* The individual decoders behind ahl_frame_decode, exposed for tests and fuzzing. Each checks the
 * codestream's geometry against d (rows, columns, samples, precision) and fails on a mismatch. */
int ahl_decode_native(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                      struct ahl_raw_frame *out, struct ahl_err *err);
int ahl_decode_rle(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                   struct ahl_raw_frame *out, struct ahl_err *err);
int ahl_decode_jpeg(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                    struct ahl_raw_frame *out, struct ahl_err *err);
int ahl_decode_jpegls(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                      struct ahl_raw_frame *out, struct ahl_err *err);
/* J2K, JP2 and HTJ2K. reduce: discard that many resolution levels (0 = full size); the output is
 * then the reduced image, as OpenJPEG's opj_set_decoded_resolution_factor gives it. */
int ahl_decode_j2k(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n, uint32_t reduce,
                   struct ahl_raw_frame *out, struct ahl_err *err);

/* Frees out->data and zeroes *out. Accepts a zeroed frame. */
void ahl_raw_frame_release(struct ahl_raw_frame *f);

/* Lays out a decoded (canonical) frame as native pixel data of d (Explicit VR Little Endian):
 * BitsAllocated/8 bytes per sample (8 or 16), planar or interleaved as d->planar_configuration
 * says, into out, which holds ahl_native_frame_size(d) bytes. AHL_ECORRUPT when the frame's
 * geometry is not d's, AHL_EUNSUPPORTED when it decoded to another photometric interpretation or
 * d's BitsAllocated is neither 8 nor 16. */
int ahl_raw_frame_to_native(const struct ahl_pixel_desc *d, const struct ahl_raw_frame *raw,
                            uint8_t *out, struct ahl_err *err);

/* ---- encoding ---- */

/* Encodes a canonical frame as an HTJ2K lossless RPCL codestream (settings in the top comment)
 * into a new malloc'd buffer. 0, AHL_EINVAL (frame not canonical), AHL_ENOMEM or AHL_EINTERNAL
 * (the encoder failed; message in err). */
int ahl_htj2k_encode(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                     struct ahl_err *err);

/* Encodes a canonical frame as a JPEG 2000 lossless codestream (1.2.840.10008.1.2.4.90) with
 * OpenJPEG: a raw codestream (no JP2 boxes), reversible 5/3 wavelet, the same decomposition
 * levels as ahl_htj2k_encode, 64x64 code blocks, RPCL, one tile, one quality layer, the
 * reversible colour transform for 3 samples, signed components with the precision of BitsStored.
 * Errors as ahl_htj2k_encode. */
int ahl_j2k_encode(const struct ahl_raw_frame *f, uint8_t **out, size_t *out_len,
                   struct ahl_err *err);

/* ---- import: one source frame to one stored frame ---- */

/* ahl_frame_transcode for a data store whose lossless frames are stored in fmt: the same policy
 * (the syntaxes kept as they are stay so), with frames to encode encoded by ahl_j2k_encode for
 * AHL_LOSSLESS_J2K and verified by a full decode with OpenJPEG. A JPEG 2000 lossless source is
 * decoded and encoded again like any other lossless source (docs/decisions.md#j2k-source-frames).
 */
int ahl_frame_transcode_as(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                           enum ahl_lossless_format fmt, struct ahl_stored_frame *out,
                           struct ahl_err *err);

/* Decodes, applies the storage policy, encodes, verifies and computes the metadata of one frame
 * for a data store of the default format (HTJ2K). The stored HTJ2K is decoded back at full
 * resolution (OpenJPH) and compared with the source decode before success is returned, so a stored
 * frame is always bit-exact; a mismatch, or a codestream the decoder refuses, is AHL_EINTERNAL and
 * nothing is returned to store. */
int ahl_frame_transcode(const struct ahl_pixel_desc *d, const uint8_t *src, size_t n,
                        struct ahl_stored_frame *out, struct ahl_err *err);

/* Computes min/max over f's samples (signed-aware). f must be non-empty. */
void ahl_raw_frame_minmax(const struct ahl_raw_frame *f, int64_t *min, int64_t *max);

/* Fills out->levels / n_levels for an already stored frame (out->data, out->len,
 * out->stored_transfer_syntax), decoding it at each resolution level. */
int ahl_stored_frame_checksums(const struct ahl_pixel_desc *d, struct ahl_stored_frame *out,
                               struct ahl_err *err);

/* Frees out->data and zeroes *out. Accepts a zeroed struct. */
void ahl_stored_frame_release(struct ahl_stored_frame *f);

/* The Content-Type GetImageFrame answers for a stored transfer syntax (NULL or "" means
 * .4.202): image/jph, image/jpeg, image/j2c, image/jphc, application/octet-stream, ...,
 * following HealthImaging's table; application/octet-stream for anything unknown. */
const char *ahl_frame_content_type(const char *stored_transfer_syntax);

/* ---- JPH files ---- */

/* Appends to out the boxes that make a stored HTJ2K codestream a JPH file (ISO/IEC 15444-15): the
 * signature, ftyp (brand 'jph '), jp2h (ihdr, colr; bpcc when component depths differ) and the
 * jp2c box header; the codestream's codestream_len bytes follow them unchanged. head holds the
 * codestream's first head_len bytes, at least through its SIZ marker segment (SIZ is 41 + 3 bytes
 * per component, right after SOC). At most AHL_JPH_HEADER_MAX bytes are appended. 0, AHL_ECORRUPT
 * (no SIZ where it must be: the stored codestream is damaged), AHL_EUNSUPPORTED (not 1 or 3
 * components), AHL_ENOMEM. */
#define AHL_JPH_HEADER_MAX 128
int ahl_jph_header(const uint8_t *head, size_t head_len, uint64_t codestream_len,
                   struct ahl_buf *out, struct ahl_err *err);

#endif /* AHL_FRAMES_FRAMES_H */
