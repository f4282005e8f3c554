/* Synthetic CT-like documents; see synth.h. The attribute set follows a typical CT image:
 * file meta, SOP common, image plane, image pixel, CT image and VOI LUT modules, plus
 * HealthImaging's ImageFrames entry. */
#include "synth/synth.h"

#include <stdio.h>

#include "base/banned.h"

void ahl_synth_study_uid(uint32_t seed, char out[64])
{
    snprintf(out, 64, "1.2.826.0.1.3680043.10.%u.1", (unsigned)seed);
}

void ahl_synth_series_uid(uint32_t seed, unsigned s, char out[64])
{
    snprintf(out, 64, "1.2.826.0.1.3680043.10.%u.2.%u", (unsigned)seed, s + 1);
}

void ahl_synth_instance_uid(uint32_t seed, unsigned s, unsigned i, char out[64])
{
    snprintf(out, 64, "1.2.826.0.1.3680043.10.%u.3.%u.%u", (unsigned)seed, s + 1, i + 1);
}

json_t *ahl_synth_instance(uint32_t seed, unsigned s, unsigned i)
{
    char uid[64], num[32], pos[32], id[33];
    ahl_synth_instance_uid(seed, s, i, uid);
    snprintf(num, sizeof num, "%u", i + 1);
    snprintf(pos, sizeof pos, "%.6f", -125.0 - 0.625 * i);
    snprintf(id, sizeof id, "%08x%08x%08x%08x", (unsigned)seed, s, i,
             (unsigned)(seed ^ i * 2654435761u));
    json_error_t jerr;
    json_t *o = json_pack_ex(
        &jerr, 0,
        "{s:{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[sss],s:s,s:s,s:s,s:s,s:s,s:s,s:[sss],"
        "s:[ssssss],s:s,s:s,s:s,s:i,s:i,s:[ss],s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:s,s:s,s:[s],s:[s],"
        "s:s,s:s,s:s,s:s,s:s,s:n,s:s,s:s},"
        "s:{},s:s,s:s,s:[{s:s,s:[{s:i,s:i,s:I},{s:i,s:i,s:I}],s:i,s:i,s:i}]}",
        "DICOM", "FileMetaInformationGroupLength", 196, "FileMetaInformationVersion",
        "AAE=", "MediaStorageSOPClassUID", "1.2.840.10008.5.1.4.1.1.2",
        "MediaStorageSOPInstanceUID", uid, "TransferSyntaxUID", "1.2.840.10008.1.2.1",
        "ImplementationClassUID", "1.2.826.0.1.3680043.10.1", "ImplementationVersionName",
        "AHILITE_SYNTH", "SOPClassUID", "1.2.840.10008.5.1.4.1.1.2", "SOPInstanceUID", uid,
        "ImageType", "ORIGINAL", "PRIMARY", "AXIAL", "InstanceNumber", num, "AcquisitionNumber",
        "1", "AcquisitionDate", "20240314", "AcquisitionTime", "101530.250000", "ContentDate",
        "20240314", "ContentTime", "101531.000000", "ImagePositionPatient", "-250.000000",
        "-250.000000", pos, "ImageOrientationPatient", "1.000000", "0.000000", "0.000000",
        "0.000000", "1.000000", "0.000000", "SliceLocation", pos, "SliceThickness", "0.625",
        "PhotometricInterpretation", "MONOCHROME2", "SamplesPerPixel", 1, "Rows", 512,
        "PixelSpacing", "0.976562", "0.976562", "Columns", 512, "BitsAllocated", 16, "BitsStored",
        12, "HighBit", 11, "PixelRepresentation", 0, "RescaleIntercept", "-1024", "RescaleSlope",
        "1", "RescaleType", "HU", "KVP", "120", "WindowCenter", "40", "WindowWidth", "400",
        "ConvolutionKernel", "STANDARD", "XRayTubeCurrent", "250", "ExposureTime", "500",
        "FilterType", "BODY FILTER", "ReconstructionDiameter", "500.000000", "ImageComments",
        "LossyImageCompression", "00", "BurnedInAnnotation", "NO", "DICOMVRs",
        "StoredTransferSyntaxUID", "1.2.840.10008.1.2.4.202", "ChecksumType", "DECOMPRESSED",
        "ImageFrames", "ID", id, "PixelDataChecksumFromBaseToFullResolution", "Width", 256,
        "Height", 256, "Checksum", (json_int_t)(2598394845u ^ i), "Width", 512, "Height", 512,
        "Checksum", (json_int_t)(1227709180u ^ (i * 7919u)), "MinPixelValue", 0, "MaxPixelValue",
        3071, "FrameSizeInBytes", 524288);
    return o;
}

json_t *ahl_synth_doc(unsigned nseries, unsigned ninstances, uint32_t seed)
{
    char study[64], uid[64], num[16];
    ahl_synth_study_uid(seed, study);
    json_t *series = json_object();
    json_t *doc = json_pack(
        "{s:{s:{s:s,s:s,s:s,s:s}},s:{s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s},s:o}}", "Patient", "DICOM",
        "PatientName", "DOE^JANE", "PatientID", "SYN-0001", "PatientBirthDate", "19700101",
        "PatientSex", "F", "Study", "DICOM", "StudyInstanceUID", study, "StudyDate", "20240314",
        "StudyTime", "101500", "AccessionNumber", "ACC0001", "StudyID", "1", "StudyDescription",
        "CT CHEST", "ReferringPhysicianName", "SMITH^J", "Series", series);
    if (!doc)
        return NULL;
    for (unsigned s = 0; s < nseries; s++) {
        ahl_synth_series_uid(seed, s, uid);
        snprintf(num, sizeof num, "%u", s + 1);
        json_t *inst = json_object();
        json_t *sn =
            json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s},s:o}", "DICOM", "SeriesInstanceUID",
                      uid, "Modality", "CT", "SeriesNumber", num, "SeriesDescription",
                      "AXIAL 0.625", "BodyPartExamined", "CHEST", "Manufacturer", "ACME",
                      "FrameOfReferenceUID", study, "PatientPosition", "HFS", "Instances", inst);
        if (!sn || json_object_set_new(series, uid, sn) < 0)
            goto fail;
        for (unsigned i = 0; i < ninstances; i++) {
            char iuid[64];
            ahl_synth_instance_uid(seed, s, i, iuid);
            json_t *o = ahl_synth_instance(seed, s, i);
            if (!o || json_object_set_new(inst, iuid, o) < 0)
                goto fail;
        }
    }
    return doc;
fail:
    json_decref(doc);
    return NULL;
}
