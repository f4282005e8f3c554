/* Internals shared by the files of src/aws (not a public header). */
#ifndef AHL_AWS_AWS_INTERNAL_H
#define AHL_AWS_AWS_INTERNAL_H

/* libcurl's global initialisation, once per process (http.c): 0 or AHL_EINTERNAL. */
int ahl__aws_curl_init(void);

#endif /* AHL_AWS_AWS_INTERNAL_H */
