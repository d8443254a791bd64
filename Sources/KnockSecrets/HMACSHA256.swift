import CCrypto

/// HMAC-SHA256 (RFC 2104 over SHA-256), computed by Debian's libcrypto (OpenSSL 3). The only
/// file that imports CCrypto: no C type leaves it.
enum HMACSHA256 {
    /// Bytes in an authentication code.
    static let length = 32

    /// HMAC-SHA256 of `message` under `key`. libcrypto clears its own copies of the key before
    /// it returns.
    static func authenticationCode(key: UnsafeRawBufferPointer, message: [UInt8]) -> [UInt8] {
        precondition(!key.isEmpty && key.count <= Int(Int32.max), "an HMAC key of \(key.count) bytes")
        var code = [UInt8](repeating: 0, count: length)
        var written: UInt32 = 0
        // The one-shot HMAC(), which OpenSSL 3 keeps (its HMAC_CTX functions are deprecated).
        let result = message.withUnsafeBufferPointer { message in
            code.withUnsafeMutableBufferPointer { code in
                HMAC(EVP_sha256(), key.baseAddress, Int32(key.count), message.baseAddress, message.count, code.baseAddress, &written)
            }
        }
        // Fails only when libcrypto cannot allocate a context; there is no answer to fall back on.
        precondition(result != nil && written == UInt32(length), "libcrypto's HMAC-SHA256 failed")
        return code
    }
}
