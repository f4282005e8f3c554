// JPEG decoding for what libjpeg-turbo 2.1 (8-bit only, no lossless) cannot do: 12-bit lossy JPEG
// (process 4) and lossless JPEG (process 14) at 2..16 bits. DCMTK's dcmjpeg ships the IJG library
// built three times (8, 12 and 16 bits, with the lossless extension); its decoder classes are C++,
// so this file is the small extern "C" shim in front of them. Exceptions and DCMTK's logging stay
// inside.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmjpeg/djcparam.h>
#include <dcmtk/dcmjpeg/djdijg12.h>
#include <dcmtk/dcmjpeg/djdijg16.h>
#include <dcmtk/dcmjpeg/djdijg8.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>

extern "C" {
#include "frames/shim.h"
}

namespace
{

std::once_flag g_quiet;

} // namespace

extern "C" int ahl__ijg_decode(const uint8_t *src, size_t n, int bits, bool convert_ybr,
                               bool is_signed, uint8_t *out, size_t out_len, bool *converted,
                               char *errbuf, size_t errlen)
{
    *converted = false;
    if (n > 0xFFFFFFFFu || out_len > 0xFFFFFFFFu) {
        snprintf(errbuf, errlen, "JPEG frame too large for the IJG decoder");
        return -1;
    }
    // DCMTK logs decoder warnings to stderr by default; a library must not.
    std::call_once(g_quiet, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
    try {
        DJCodecParameter cp(ECC_lossyYCbCr, convert_ybr ? EDC_photometricInterpretation : EDC_never,
                            EUC_default, EPC_default);
        std::unique_ptr<DJDecoder> dec;
        if (bits <= 8)
            dec.reset(new DJDecompressIJG8Bit(cp, convert_ybr));
        else if (bits <= 12)
            dec.reset(new DJDecompressIJG12Bit(cp, convert_ybr));
        else
            dec.reset(new DJDecompressIJG16Bit(cp, convert_ybr));
        OFCondition c = dec->init();
        if (c.good())
            // The IJG source manager only reads from the buffer; DCMTK's signature lacks const.
            c = dec->decode(const_cast<Uint8 *>(src), (Uint32)n, out, (Uint32)out_len,
                            is_signed ? OFTrue : OFFalse);
        if (c == EJ_Suspension) {
            snprintf(errbuf, errlen, "JPEG data ends before the image is complete");
            return -1;
        }
        if (c.bad()) {
            snprintf(errbuf, errlen, "%s", c.text());
            return -1;
        }
        *converted = dec->getDecompressedColorModel() == EPI_RGB && convert_ybr;
        return 0;
    } catch (const std::exception &e) {
        snprintf(errbuf, errlen, "JPEG decoder failed: %s", e.what());
        return -1;
    }
}
