/* Stored instances as DICOM again: one instance of one version of an image set rebuilt as a
 * Part-10 file, for `ahilite export` and for DICOMweb's instance, series and study retrieve
 * (docs/dicomweb.md#retrieve). The attributes come from the version's metadata document
 * (dicom/p10write.h writes them), the pixel data from the frame store, and the record of edits
 * from the set's earlier versions:
 *
 *   - Pixel data, decoded (the default): each stored frame is read (checked against its content
 *     address), decoded to canonical samples (frames/frames.h) and laid out as native pixel data
 *     in Explicit VR Little Endian as the instance's Image Pixel attributes say (BitsAllocated,
 *     PlanarConfiguration); frames kept as they came (BitsAllocated 1) are copied. For lossless
 *     sources the samples are the source's, bit for bit.
 *   - Pixel data, stored: the file's transfer syntax is the instance's StoredTransferSyntaxUID and
 *     each stored frame is one fragment of encapsulated pixel data, byte for byte (a stored native
 *     syntax is written natively).
 *   - Original Attributes Sequence (0400,0561), PS3.3 C.12.1.1.9: for each version after the
 *     first, up to the one written, that changed attributes of the instance (any level), one item
 *     holding the values they had before it in ModifiedAttributesSequence (0400,0550) (an
 *     attribute the version added: empty), AttributeModificationDateTime (the version's creation
 *     time, UTC), ModifyingSystem "ahilite", ReasonForTheAttributeModification "CORRECT" and an
 *     empty SourceOfPreviousValues. The items follow any the document already holds. An
 *     instance never changed gets no sequence from us.
 *
 * Frames are handled one at a time: a file is never held in memory whole.
 */
#ifndef AHL_EXPORT_EXPORT_H
#define AHL_EXPORT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/err.h"
#include "blob/framestore.h"
#include "dicom/p10write.h"
#include "meta/meta.h"

/* Most versions read for one history: the documents of a set with more are compared over its
 * latest AHL_EXPORT_MAX_HISTORY versions only (docs/decisions.md#original-attributes). */
#define AHL_EXPORT_MAX_HISTORY 1000

struct ahl_export_opts {
    bool stored;             /* the stored frames, encapsulated; false: decoded, native */
    const json_t *originals; /* the items ahl_export_history made for this instance, or NULL */
};

/* The transfer syntax an instance node ({"DICOM", "ImageFrames", "StoredTransferSyntaxUID"})
 * is written in: Explicit VR Little Endian, or with stored its StoredTransferSyntaxUID (HTJ2K
 * lossless RPCL when the node has none). */
const char *ahl_export_transfer_syntax(const json_t *instance, bool stored);

/* Writes instance sop of doc (a version's document) to sink as a Part-10 file. fs is the frame
 * store (NULL only for an instance without frames). 0; AHL_ENOTFOUND (no such instance),
 * AHL_EINVAL (Image Pixel attributes that do not describe the frames, a value the file cannot
 * hold), AHL_EUNSUPPORTED (a layout not written yet: 4:2:2 native, BitsAllocated 32),
 * AHL_ECORRUPT (a damaged stored frame), AHL_ETOOBIG, AHL_ENOMEM, or what sink returns. The sink
 * may have received part of the file on failure. */
int ahl_export_instance(struct ahl_framestore *fs, const json_t *doc, const char *sop,
                        const struct ahl_export_opts *opts, ahl_p10_sink_fn sink, void *sink_ctx,
                        struct ahl_err *err);

/* One stored frame of instance (as above) decoded into native pixel data (Explicit VR Little
 * Endian, the instance's layout) in a new malloc'd buffer of *len bytes. Errors as
 * ahl_export_instance. */
int ahl_export_frame_native(const json_t *instance, const uint8_t *stored, size_t n, uint8_t **out,
                            size_t *len, struct ahl_err *err);

/* The Original Attributes Sequence items of version `version` (0: the latest) of a set, per
 * instance: *out is a new object {SOPInstanceUID: [item, ...]} holding only instances some later
 * version changed (document form: keyword keys, DICOMVRs beside hex keys). series (and sop):
 * only that series (and instance), read as a part of each version's document; NULL for all.
 * The documents are read two at a time, none when the version is the set's first. 0, or the
 * engine's errors (AHL_ENOTFOUND...). */
int ahl_export_history(struct ahl_meta *m, const char *datastore_id, const char *imageset_id,
                       uint64_t version, const char *series, const char *sop, json_t **out,
                       struct ahl_err *err);

#endif /* AHL_EXPORT_EXPORT_H */
