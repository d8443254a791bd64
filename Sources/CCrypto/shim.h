// Debian's libcrypto (OpenSSL 3, libssl-dev): KnockSecrets' HMACSHA256.swift, the one file
// that imports it, computes HMAC-SHA256 with it.
#include <openssl/evp.h>
#include <openssl/hmac.h>
