import Glibc

extension Secret {
    /// Bytes that `generate(at:)` writes: 256 bits.
    public static let generatedLength = 32

    /// Writes a new secret of `generatedLength` random bytes to `path`, for `knockc keygen`.
    ///
    /// The file is created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, so nothing that
    /// already exists at the path is overwritten or followed, a dangling link included. The
    /// bytes come from getentropy(3), which is getrandom(2) with no flags: it blocks until the
    /// kernel's pool has been seeded once, then never. The file and its directory are fsync'd
    /// before this returns; on any failure the new file is removed.
    public static func generate(at path: String) throws(SecretError) {
        var bytes = [UInt8](repeating: 0, count: generatedLength)
        defer { explicit_bzero(&bytes, bytes.count) }
        guard getentropy(&bytes, bytes.count) == 0 else { throw .cannotWrite(path: path, errno: errno) }

        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw errno == EEXIST ? .alreadyExists(path: path) : .cannotWrite(path: path, errno: errno)
        }
        var failure: Int32?
        // The umask can only take bits away from 0600; fchmod makes it exactly 0600.
        if fchmod(fd, 0o600) != 0 { failure = errno }
        var written = 0
        while failure == nil, written < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0, errno == EINTR { continue }
            if count < 0 { failure = errno } else { written += count }
        }
        if failure == nil, fsync(fd) != 0 { failure = errno }
        if close(fd) != 0, failure == nil { failure = errno }
        if failure == nil { failure = syncDirectory(of: path) }
        if let failure {
            unlink(path)
            throw .cannotWrite(path: path, errno: failure)
        }
    }

    /// fsyncs the directory holding `path`, so that the new name survives a crash; the errno
    /// of a failure.
    private static func syncDirectory(of path: String) -> Int32? {
        let directory = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return fsync(fd) == 0 ? nil : errno
    }
}
