import Glibc
import KnockCore

/// The bytes of a secret file, for the derivations of rotating knocks and SPA tokens.
///
/// The bytes never leave this module: `description`, `debugDescription`, `dump` and every
/// error show only the path (`secret from /etc/knockc/ssh.key`). They live in memory of their
/// own, which is zeroed when the last reference goes.
public final class Secret: @unchecked Sendable {
    /// Fewer bytes than this are refused: 256 bits, SHA-256's own strength.
    /// `check` applies the same rules to the path (`SecretFile`); the file's own checks here
    /// run on the opened descriptor.
    public static let minimumLength = SecretFile.minimumLength
    /// More bytes than this are refused: a key, not a document, so a longer file is probably a
    /// wrong path.
    public static let maximumLength = 4096

    /// The file the secret was read from.
    public let path: String
    /// Never written after init; `@unchecked Sendable` rests on that.
    private let storage: UnsafeMutableRawBufferPointer

    /// Reads the secret at `path`, refusing what would make it guessable or someone else's.
    ///
    /// The rules: a regular file (not a link: opened with O_NOFOLLOW), no permission at all
    /// for group or others (mode 0600 or stricter), owned by `requiredOwner` unless that is
    /// nil, and `minimumLength` to `maximumLength` bytes. Every byte of the file is the secret,
    /// a trailing newline included. The server requires root (`requiredOwner: 0`); a client
    /// requires its own user (`getuid()`), as ssh does with private keys.
    ///
    /// The checks look at the opened descriptor (fstat), so the file cannot be swapped between
    /// the check and the read. O_NONBLOCK keeps a FIFO at the path from hanging the open.
    /// The secret of a spec on the server: owned by root when root reads it (apply, diff,
    /// watch), or by the user running an unprivileged test of its own.
    public static func ofServer(at path: String) throws(SecretError) -> Secret {
        try Secret(contentsOf: path, requiredOwner: geteuid() == 0 ? 0 : geteuid())
    }

    public init(contentsOf path: String, requiredOwner: uid_t?) throws(SecretError) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            let error = errno
            var link = stat()
            switch error {
            case ENOENT: throw .missing(path: path)
            case ELOOP where lstat(path, &link) == 0 && link.st_mode & S_IFMT == S_IFLNK:
                throw .notRegularFile(path: path, kind: .symbolicLink)
            default: throw .cannotRead(path: path, errno: error)
            }
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .cannotRead(path: path, errno: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw .notRegularFile(path: path, kind: SecretError.FileKind(mode: status.st_mode))
        }
        if let requiredOwner, status.st_uid != requiredOwner {
            throw .wrongOwner(path: path, owner: status.st_uid, required: requiredOwner)
        }
        guard status.st_mode & SecretFile.forbiddenPermissions == 0 else { throw .accessibleByOthers(path: path, mode: status.st_mode & 0o7777) }

        // One byte more than allowed tells a long file from one of exactly the maximum.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.maximumLength + 1, alignment: 1)
        defer {
            explicit_bzero(buffer.baseAddress!, buffer.count)
            buffer.deallocate()
        }
        var length = 0
        while length < buffer.count {
            let count = read(fd, buffer.baseAddress! + length, buffer.count - length)
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw .cannotRead(path: path, errno: errno) }
            if count == 0 { break }
            length += count
        }
        guard length <= Self.maximumLength else { throw .tooLong(path: path, maximum: Self.maximumLength) }
        guard length >= Self.minimumLength else { throw .tooShort(path: path, length: length, minimum: Self.minimumLength) }

        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 1)
        storage.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[..<length]))
        self.path = path
    }

    deinit {
        explicit_bzero(storage.baseAddress!, storage.count)
        storage.deallocate()
    }

    /// The secret's bytes, for the HMAC key; they must not outlive `body`.
    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try body(UnsafeRawBufferPointer(storage))
    }
}

extension Secret: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `secret from PATH`, never the bytes.
    public var description: String { "secret from \(path)" }
    public var debugDescription: String { description }
    /// Only the path, so that `dump` and debuggers show no byte.
    public var customMirror: Mirror { Mirror(self, children: ["path": path], displayStyle: .class) }
}
