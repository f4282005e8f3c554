"""Independent expectations for `ahilite dump`, computed with pydicom.

Run with the system Python that has pydicom (/usr/bin/python3): it reads DICOM file paths, one per
line, on stdin and prints one JSON line per file:
    {"path": ..., "doc": <expected document without SchemaVersion>}   or
    {"path": ..., "error": "<why HealthImaging could not take it>"}
The document follows the HealthImaging rules that src/dicom/normalize.h states, but is derived
here from pydicom's reading of the file and pydicom's dictionary, never from our C code, so the
two implementations check each other. Levels come from the keyword lists below, written from
HealthImaging's metadata-normalization page (keywords rather than the tags the C table uses).
"""
import base64
import json
import math
import struct
import sys
import warnings

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.datadict import DicomDictionary, dictionary_VM, keyword_for_tag
from pydicom.tag import Tag

warnings.simplefilter("ignore")

PATIENT = set("""
PatientName PatientID IssuerOfPatientID IssuerOfPatientIDQualifiersSequence TypeOfPatientID
PatientBirthDate PatientBirthDateInAlternativeCalendar PatientDeathDateInAlternativeCalendar
PatientAlternativeCalendar PatientSex ReferencedPatientPhotoSequence QualityControlSubject
QualityControlSubjectTypeCodeSequence ReferencedPatientSequence PatientBirthTime
OtherPatientIDsSequence OtherPatientNames EthnicGroup PatientComments PatientSpeciesDescription
PatientSpeciesCodeSequence PatientBreedDescription PatientBreedCodeSequence
BreedRegistrationSequence StrainDescription StrainNomenclature StrainStockSequence
StrainAdditionalInformation StrainCodeSequence GeneticModificationsSequence ResponsiblePerson
ResponsiblePersonRole ResponsibleOrganization PatientIdentityRemoved DeidentificationMethod
DeidentificationMethodCodeSequence SourcePatientGroupIdentificationSequence
GroupOfPatientsIdentificationSequence ClinicalTrialSponsorName ClinicalTrialProtocolID
ClinicalTrialProtocolName ClinicalTrialSiteID ClinicalTrialSiteName ClinicalTrialSubjectID
ClinicalTrialSubjectReadingID ClinicalTrialProtocolEthicsCommitteeName
ClinicalTrialProtocolEthicsCommitteeApprovalNumber EthicsCommitteeApprovalEffectivenessStartDate
EthicsCommitteeApprovalEffectivenessEndDate
""".split())
STUDY = set("""
StudyInstanceUID StudyDate StudyTime ReferringPhysicianName
ReferringPhysicianIdentificationSequence ConsultingPhysicianName
ConsultingPhysicianIdentificationSequence StudyID AccessionNumber IssuerOfAccessionNumberSequence
StudyDescription PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence
NameOfPhysiciansReadingStudy PhysiciansReadingStudyIdentificationSequence
RequestingServiceCodeSequence ReferencedStudySequence ProcedureCodeSequence
ReasonForPerformedProcedureCodeSequence AdmittingDiagnosesDescription
AdmittingDiagnosesCodeSequence PatientAge PatientSize PatientWeight PatientBodyMassIndex
MeasuredAPDimension MeasuredLateralDimension PatientSizeCodeSequence MedicalAlerts Allergies
SmokingStatus PregnancyStatus LastMenstrualDate PatientState PatientSexNeutered Occupation
AdditionalPatientHistory AdmissionID IssuerOfAdmissionIDSequence ServiceEpisodeID
IssuerOfServiceEpisodeIDSequence ServiceEpisodeDescription ReasonForVisit
ReasonForVisitCodeSequence PatientClinicalTrialParticipationSequence ClinicalTrialTimePointID
ClinicalTrialTimePointDescription LongitudinalTemporalOffsetFromEvent
LongitudinalTemporalEventType ConsentForClinicalTrialUseSequence
""".split())
SERIES = set("""
Modality SeriesInstanceUID SeriesNumber Laterality SeriesDate SeriesTime PerformingPhysicianName
PerformingPhysicianIdentificationSequence ProtocolName SeriesDescription
SeriesDescriptionCodeSequence OperatorsName OperatorIdentificationSequence
ReferencedPerformedProcedureStepSequence RelatedSeriesSequence BodyPartExamined PatientPosition
SmallestPixelValueInSeries LargestPixelValueInSeries RequestAttributesSequence
PerformedProcedureStepID PerformedProcedureStepStartDate PerformedProcedureStepStartTime
PerformedProcedureStepEndDate PerformedProcedureStepEndTime PerformedProcedureStepDescription
PerformedProtocolCodeSequence CommentsOnThePerformedProcedureStep AnatomicalOrientationType
TreatmentSessionUID ClinicalTrialCoordinatingCenterName ClinicalTrialSeriesID
ClinicalTrialSeriesDescription Manufacturer InstitutionName InstitutionAddress StationName
InstitutionalDepartmentName InstitutionalDepartmentTypeCodeSequence ManufacturerModelName
ManufacturerDeviceClassUID DeviceSerialNumber DeviceUID GantryID UDISequence SoftwareVersions
SpatialResolution DateOfLastCalibration TimeOfLastCalibration PixelPaddingValue
FrameOfReferenceUID PositionReferenceIndicator
""".split())

TEXT = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
SINGLE_TEXT = {"LT", "ST", "UT", "UR"}
NUMBERS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"}
BYTES_WIDTH = {"OB": 1, "UN": 1, "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def key_for(tag):
    """Keyword when it names this one tag, else None (hex key)."""
    if tag.is_private:
        return None
    if tag in DicomDictionary:
        return DicomDictionary[tag][4] or None
    # Repeating groups keep the keyword only in their base group (5000, 6000).
    if tag.group in (0x5000, 0x6000):
        return keyword_for_tag(tag) or None
    return None


def text_piece(s, keep_padding):
    s = s.rstrip("\0")
    if s.strip(" ") == "":
        return None
    return s if keep_padding else s.rstrip(" ")


def is_multi(tag, known):
    if not known:
        return None
    try:
        return dictionary_VM(tag) != "1"
    except KeyError:
        return None


class Oracle:
    def __init__(self, big_endian):
        self.big_endian = big_endian
        self.keys = {}  # "GGGGEEEE" -> the key this tag has in the document, at any depth

    def value(self, ds, tag, known):
        """(value, vr) of ds[tag] by the HealthImaging rules; value None means JSON null."""
        raw = ds.get_item(tag)  # before ds[tag], which replaces the raw element
        rawbytes = raw.value if isinstance(raw, RawDataElement) else None
        elem = ds[tag]
        vr = elem.VR
        multi = is_multi(tag, known)
        if tag.is_private and not tag.is_private_creator and isinstance(raw, RawDataElement) \
                and raw.VR in (None, "UN"):
            # No private dictionary in HealthImaging: implicit-VR or UN private values stay
            # bytes (pydicom would type them from its own private dictionary).
            if not rawbytes:
                return None, "UN"
            return base64.b64encode(rawbytes).decode("ascii"), "UN"
        if vr == "SQ":
            if len(elem.value) == 0:
                return None, vr
            return [self.dataset(item) for item in elem.value], vr
        if elem.is_empty and (rawbytes is None or len(rawbytes) == 0):
            return None, vr
        if vr in ("IS", "DS"):
            # padding kept: from the raw bytes
            text = rawbytes.decode("latin-1") if rawbytes is not None else str(elem.value)
            text = text.rstrip("\0")
            if text == "":
                return None, vr
            if multi is None:
                multi = "\\" in text
            if not multi:
                return text_piece(text, True), vr
            return [text_piece(p, True) for p in text.split("\\")], vr
        if vr in TEXT:
            vals = elem.value
            if isinstance(vals, (list, pydicom.multival.MultiValue)):
                vals = [str(v) if v is not None else "" for v in vals]
            else:
                vals = [str(vals)]
            if multi is None:
                multi = len(vals) > 1 and vr not in SINGLE_TEXT
            if vr in SINGLE_TEXT or not multi:
                joined = "\\".join(vals)
                if joined.rstrip(" \0") == "":
                    return None, vr
                return joined.rstrip(" \0"), vr
            return [text_piece(v, False) for v in vals], vr
        if vr in NUMBERS or vr == "AT":
            vals = elem.value
            if not isinstance(vals, (list, pydicom.multival.MultiValue)):
                vals = [vals]
            out = []
            for v in vals:
                if vr == "AT":
                    out.append("%08X" % int(v))
                elif vr in ("FL", "FD"):
                    out.append(None if not math.isfinite(v) else float(v))
                else:
                    out.append(int(v))
            if len(out) == 0:
                return None, vr
            if multi or len(out) > 1:
                return out, vr
            return out[0], vr
        # bytes
        data = elem.value if isinstance(elem.value, bytes) else bytes(elem.value)
        width = BYTES_WIDTH.get(vr, 1)
        if self.big_endian and width > 1:
            data = b"".join(data[i:i + width][::-1] for i in range(0, len(data), width))
        return base64.b64encode(data).decode("ascii"), vr

    def dataset(self, ds):
        out, vrs = {}, {}
        for tag in sorted(ds.keys()):
            tag = Tag(tag)
            if int(tag) in PIXEL_TAGS:
                continue
            kw = key_for(tag)
            value, vr = self.value(ds, tag, kw is not None)
            key = kw or "%08X" % int(tag)
            self.keys["%08X" % int(tag)] = key
            out[key] = value
            if kw is None:
                vrs[key] = vr
        if vrs:
            out["DICOMVRs"] = vrs
        return out


def frames(ds):
    if not any(int(t) in PIXEL_TAGS for t in ds.keys()):
        return []
    n = int(ds.get("NumberOfFrames", 1) or 1)
    ts = ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2") if hasattr(ds, "file_meta") else "1.2.840.10008.1.2"
    if not pydicom.uid.UID(ts).is_compressed:
        bits = ds.Rows * ds.Columns * ds.get("SamplesPerPixel", 1) * ds.BitsAllocated
        if ds.get("PhotometricInterpretation", "") in ("YBR_FULL_422", "YBR_PARTIAL_422"):
            bits = bits // 3 * 2
        return [{"FrameSizeInBytes": (bits + 7) // 8}] * n
    bot_len = struct.unpack("<I", ds.PixelData[4:8])[0]
    fp = pydicom.filebase.DicomBytesIO(ds.PixelData[8 + bot_len:])
    fp.is_little_endian = True
    frags = list(pydicom.encaps.generate_pixel_data_fragment(fp))
    bot = struct.unpack("<%dI" % (bot_len // 4), ds.PixelData[8:8 + bot_len])
    if n == len(frags):
        return [{"FrameSizeInBytes": len(f)} for f in frags]
    if n == 1:
        return [{"FrameSizeInBytes": sum(len(f) for f in frags)}]
    if len(bot) == n:
        pos, sizes = 0, [0] * n
        for f in frags:
            i = max(k for k in range(n) if bot[k] <= pos)
            sizes[i] += len(f)
            pos += len(f) + 8
        return [{"FrameSizeInBytes": s} for s in sizes]
    return [{}] * n


def expected(path):
    ds = pydicom.dcmread(path, force=True)
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not str(ds.get(kw, "") or "").strip(" \0"):
            return {"error": kw}
    big = not ds.is_little_endian
    o = Oracle(big)
    levels = {"Patient": {}, "Study": {}, "Series": {}, "Instance": {}}
    vrs = {}
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        meta_o = Oracle(False)
        for tag in sorted(meta.keys()):
            tag = Tag(tag)
            kw = key_for(tag)
            value, vr = meta_o.value(meta, tag, True)
            levels["Instance"][kw or "%08X" % int(tag)] = value
            if kw is None:
                vrs["%08X" % int(tag)] = vr
    for tag in sorted(ds.keys()):
        tag = Tag(tag)
        if int(tag) in PIXEL_TAGS or tag.group == 2:
            continue
        kw = key_for(tag)
        value, vr = o.value(ds, tag, kw is not None)
        o.keys["%08X" % int(tag)] = kw or "%08X" % int(tag)
        if kw is None:
            key = "%08X" % int(tag)
            vrs[key] = vr
            levels["Instance"][key] = value
        elif kw in PATIENT:
            levels["Patient"][kw] = value
        elif kw in STUDY:
            levels["Study"][kw] = value
        elif kw in SERIES:
            levels["Series"][kw] = value
        else:
            levels["Instance"][kw] = value
    uid = lambda kw: str(ds[kw].value).strip(" \0")
    return {"keys": o.keys, "doc": {
        "Patient": {"DICOM": levels["Patient"]},
        "Study": {"DICOM": levels["Study"], "Series": {uid("SeriesInstanceUID"): {
            "DICOM": levels["Series"], "Instances": {uid("SOPInstanceUID"): {
                "DICOM": levels["Instance"], "DICOMVRs": vrs, "ImageFrames": frames(ds)}}}}}}}


def main():
    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            result = expected(path)
        except Exception as e:  # pydicom could not read it: the test decides what that means
            result = {"pydicom_error": "%s: %s" % (type(e).__name__, e)}
        result["path"] = path
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
