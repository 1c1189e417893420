/* base64: strict decoding of RFC 4648 base64 (standard alphabet, '=' padding, no whitespace or line breaks,
 * zero pad bits), so that a byte string has exactly one accepted spelling. */
#ifndef PULSE_UTIL_BASE64_H
#define PULSE_UTIL_BASE64_H

#include <stddef.h>

/* Decodes the n characters at s into *out (malloc'd, n / 4 * 3 bytes at most; "" gives 0 bytes). On bad
 * input returns -1 with err_set("bad base64 ...") naming the first bad 4-character group. */
int base64_decode(const char *s, size_t n, unsigned char **out, size_t *outn);

#endif
