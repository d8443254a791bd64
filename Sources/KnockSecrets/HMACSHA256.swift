import Glibc

/// HMAC-SHA256 (RFC 2104 over SHA-256), computed by Debian's libcrypto (OpenSSL 3).
///
/// libcrypto is opened on first use rather than linked: only apply and the client derive
/// tokens, and a linked libcrypto cost every knockc process, the watcher included, 1.5 MiB
/// of resident memory (1,460 KiB of its 24 MiB idle; the watcher's target is 30 MiB at
/// 100,000 grants). Swift-crypto would compile BoringSSL on CI's 2 cores instead.
enum HMACSHA256 {
    /// Bytes in an authentication code.
    static let length = 32

    /// `HMAC()` and `EVP_sha256()` of <openssl/hmac.h> and <openssl/evp.h>.
    private typealias HMACFunction = @convention(c) (OpaquePointer?, UnsafeRawPointer?, Int32, UnsafePointer<UInt8>?, Int,
                                                     UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt32>?) -> UnsafeMutablePointer<UInt8>?
    private typealias DigestFunction = @convention(c) () -> OpaquePointer?

    /// libcrypto's two functions, looked up once. libssl3 (which every Debian with OpenSSL
    /// has, and which libssl-dev pulls in) provides the library.
    private static let functions: (hmac: HMACFunction, sha256: DigestFunction) = {
        guard let library = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL) else {
            preconditionFailure("cannot load libcrypto.so.3 (Debian package libssl3): \(String(cString: dlerror()))")
        }
        guard let hmac = dlsym(library, "HMAC"), let sha256 = dlsym(library, "EVP_sha256") else {
            preconditionFailure("libcrypto.so.3 has no HMAC or EVP_sha256")
        }
        return (unsafeBitCast(hmac, to: HMACFunction.self), unsafeBitCast(sha256, to: DigestFunction.self))
    }()

    /// HMAC-SHA256 of `message` under `key`. libcrypto clears its own copies of the key before
    /// it returns.
    static func authenticationCode(key: UnsafeRawBufferPointer, message: [UInt8]) -> [UInt8] {
        precondition(!key.isEmpty && key.count <= Int(Int32.max), "an HMAC key of \(key.count) bytes")
        var code = [UInt8](repeating: 0, count: length)
        var written: UInt32 = 0
        let (hmac, sha256) = functions
        // The one-shot HMAC(), which OpenSSL 3 keeps (its HMAC_CTX functions are deprecated).
        let result = message.withUnsafeBufferPointer { message in
            code.withUnsafeMutableBufferPointer { code in
                hmac(sha256(), key.baseAddress, Int32(key.count), message.baseAddress, message.count, code.baseAddress, &written)
            }
        }
        // Fails only when libcrypto cannot allocate a context; there is no answer to fall back on.
        precondition(result != nil && written == UInt32(length), "libcrypto's HMAC-SHA256 failed")
        return code
    }
}
