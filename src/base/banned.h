/* Functions that are easy to misuse are compile errors in our code. Include this header last in
 * every .c file of ours (after the system headers it would otherwise break). Use instead:
 * strcpy/strcat/strncpy -> ahl_buf_* or memcpy with an explicit bound; sprintf -> snprintf;
 * strtok -> strtok_r or a hand-written scanner; gmtime/localtime -> the _r forms; atoi -> strtol
 * with range checks. */
#ifndef AHL_BASE_BANNED_H
#define AHL_BASE_BANNED_H

#define AHL__BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) AHL__BANNED(strcpy)
#undef strcat
#define strcat(x, y) AHL__BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) AHL__BANNED(strncpy)
#undef sprintf
#define sprintf(...) AHL__BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) AHL__BANNED(vsprintf)
#undef strtok
#define strtok(x, y) AHL__BANNED(strtok)
#undef gmtime
#define gmtime(t) AHL__BANNED(gmtime)
#undef localtime
#define localtime(t) AHL__BANNED(localtime)
#undef atoi
#define atoi(s) AHL__BANNED(atoi)

#endif /* AHL_BASE_BANNED_H */
