/* DICOM JSON metadata mappings: StartDICOMImportJob's importConfiguration
 * (dicomJsonMetadataImportConfiguration.dicomMetadataMappings), which names, per study or per
 * study and series, a DICOM JSON file (PS3.18 F.2) under the job's inputS3Uri whose attributes
 * enrich or override those of the DICOM files the job imports (docs/import.md#metadata-mappings).
 *
 * Three steps, each its own call:
 *   1. At StartDICOMImportJob, ahl_mapping_check_config() checks the mappings beyond the model's
 *      shape: valid UIDs, paths relative to the input prefix, no study (and series) mapped twice.
 *   2. When a job runs, each mapped file is read and ahl_mapping_parse() turns it into the
 *      attributes it sets, per level, keyed and valued as the HealthImaging document has them
 *      (normalize.h). Only Patient- and Study-level attributes may be set by a study mapping, and
 *      Series-level ones too by a study-and-series mapping; each attribute must pass the rules of
 *      UpdateImageSetMetadata without force (meta/rules.h): no UID changes, no sequences, no
 *      multi-valued values, values that fit their VR, no generated keys or pixel data. A file that
 *      breaks any rule is refused whole.
 *   3. ahl_mapping_set_apply() overlays, in the importer, a normalized single-instance document
 *      with the mappings of its study, then those of its study and series (the more specific
 *      mapping wins), before the import limits and the grouping key are computed. An instance whose
 *      study or series has a mapping whose file could not be used fails with a message naming the
 *      file, so that no set is imported half enriched.
 *
 * The DICOM JSON parser takes outside input: files are capped at AHL_MAPPING_MAX_BYTES, JSON
 * nesting is bounded by jansson, and no element is walked recursively (sequences are refused).
 */
#ifndef AHL_IMPORT_MAPPING_H
#define AHL_IMPORT_MAPPING_H

#include <stddef.h>

#include <jansson.h>

#include "base/err.h"

#define AHL_MAPPING_MAX_BYTES ((size_t)1 << 20) /* one metadata file */
#define AHL_MAPPING_MAX 1000                    /* mappings per job, as the model allows */
#define AHL_MAPPING_UID_MAX 512                 /* the model's longest UID in a mapping */

/* Checks mappings, the JSON array dicomMetadataMappings of the request (the codec has checked the
 * model's types, lengths and patterns). 0, or AHL_EINVAL with a message naming the entry:
 * an empty or invalid StudyInstanceUID or SeriesInstanceUID (VR UI), a metadataFilePath that is
 * absolute or has empty, "." or ".." segments, the same study (and series) mapped twice, more
 * than AHL_MAPPING_MAX entries. */
int ahl_mapping_check_config(const json_t *mappings, struct ahl_err *err);

/* The key of the object a mapping names: input_prefix (the inputS3Uri's key prefix) joined with
 * path by one '/'. AHL_ETOOBIG when it does not fit in cap. */
int ahl_mapping_object_key(const char *input_prefix, const char *path, char *out, size_t cap);

/* Parses one DICOM JSON metadata file (a dataset object, or an array holding exactly one) mapped
 * to study_uid (and series_uid, or NULL) into *out: {"Patient": {...}, "Study": {...},
 * "Series": {...}}, each level present only when the file sets one of its attributes, each an
 * object keyword -> value in the document's form (normalize.h). 0; AHL_EINVAL / AHL_EPARSE /
 * AHL_ETOOBIG with a message naming the attribute; AHL_ENOMEM. */
int ahl_mapping_parse(const char *text, size_t len, const char *study_uid, const char *series_uid,
                      json_t **out, struct ahl_err *err);

struct ahl_mapping_set;

/* An empty set (NULL when out of memory). */
struct ahl_mapping_set *ahl_mapping_set_new(void);
/* NULL is accepted. */
void ahl_mapping_set_free(struct ahl_mapping_set *s);
/* Adds the mapping of study_uid (and series_uid, or NULL) read from file (its object key, for
 * messages): levels as ahl_mapping_parse made them (the set takes the reference), or NULL with
 * problem saying why the file could not be used. 0 or AHL_ENOMEM. */
int ahl_mapping_set_add(struct ahl_mapping_set *s, const char *study_uid, const char *series_uid,
                        const char *file, json_t *levels, const char *problem);
/* Overlays doc, a normalized single-instance document, with the mappings of its study and then of
 * its study and series. 0 (also when none applies); AHL_EINVAL when one of them could not be used,
 * err naming its file and why; AHL_ENOMEM. NULL s: nothing to do. */
int ahl_mapping_set_apply(const struct ahl_mapping_set *s, json_t *doc, struct ahl_err *err);

#endif /* AHL_IMPORT_MAPPING_H */
