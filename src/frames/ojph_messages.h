// OpenJPH's message handlers for the frames module's C++ files (htj2k_encode.cc,
// htj2k_decode.cc): OpenJPH reports an error by calling its configured error handler, and ours
// throws std::runtime_error with the message, which each entry point catches and turns into text
// for its C caller; warnings and information are dropped. configure_messages() installs them,
// once per process; call it before any OpenJPH call.
#ifndef AHL_FRAMES_OJPH_MESSAGES_H
#define AHL_FRAMES_OJPH_MESSAGES_H

namespace ahl_ojph
{
void configure_messages();
} // namespace ahl_ojph

#endif // AHL_FRAMES_OJPH_MESSAGES_H
