/* Process-wide logging to stderr: one line per call, prefixed with an ISO-8601 UTC time and the
 * level. The level threshold is the only process-wide state (set once at start-up). Thread-safe:
 * each line is written with a single write(2). */
#ifndef AHL_BASE_LOG_H
#define AHL_BASE_LOG_H

enum ahl_log_level { AHL_LOG_DEBUG, AHL_LOG_INFO, AHL_LOG_WARN, AHL_LOG_ERROR };

/* Lines below level are dropped. The default is AHL_LOG_INFO. */
void ahl_log_set_level(enum ahl_log_level level);
void ahl_log(enum ahl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ahl_debug(...) ahl_log(AHL_LOG_DEBUG, __VA_ARGS__)
#define ahl_info(...) ahl_log(AHL_LOG_INFO, __VA_ARGS__)
#define ahl_warn(...) ahl_log(AHL_LOG_WARN, __VA_ARGS__)
#define ahl_error(...) ahl_log(AHL_LOG_ERROR, __VA_ARGS__)

#endif /* AHL_BASE_LOG_H */
