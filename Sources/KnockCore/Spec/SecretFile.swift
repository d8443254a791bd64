import Foundation

/// What `check` can say about a secret file without reading it: the file's kind, size,
/// mode and owner, from `lstat`. The bytes are read only where they are used (apply, the
/// client), through KnockSecrets, which applies the same rules to the opened file.
public enum SecretFile {
    /// The fewest bytes a secret may have.
    public static let minimumLength = 32
    /// Permission bits a secret may not have: any for its group or others.
    public static let forbiddenPermissions: mode_t = 0o077

    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case notAbsolute(String)
        case missing(String, reason: String)
        case notRegularFile(String)
        case tooShort(String, length: Int)
        case readableByOthers(String, mode: mode_t)
        case wrongOwner(String, uid: uid_t)

        public var description: String {
            switch self {
            case .notAbsolute(let path):
                "secret '\(path)' is not an absolute path"
            case .missing(let path, let reason):
                "cannot read secret \(path): \(reason); make one with `knockc keygen \(path)`"
            case .notRegularFile(let path):
                "secret \(path) is not a regular file (a link, a directory or a device is refused)"
            case .tooShort(let path, let length):
                "secret \(path) has \(length) bytes; a secret has at least \(SecretFile.minimumLength) random bytes (`knockc keygen`)"
            case .readableByOthers(let path, let mode):
                "secret \(path) has mode \(String(mode & 0o777, radix: 8)), so others may read it; run `chmod 600 \(path)`"
            case .wrongOwner(let path, let uid):
                "secret \(path) is owned by uid \(uid); it must belong to root (or to the user who runs knockc)"
            }
        }
    }

    /// Why the file at `path` cannot be a secret, or nil when it can. It must be a regular
    /// file (not a link), at least `minimumLength` bytes, without group or other permission
    /// bits, owned by root or by the user checking it.
    public static func problem(at path: String) -> Problem? {
        guard path.hasPrefix("/") else { return .notAbsolute(path) }
        var status = stat()
        guard lstat(path, &status) == 0 else { return .missing(path, reason: String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else { return .notRegularFile(path) }
        guard status.st_size >= minimumLength else { return .tooShort(path, length: Int(status.st_size)) }
        guard status.st_mode & forbiddenPermissions == 0 else { return .readableByOthers(path, mode: status.st_mode) }
        guard status.st_uid == 0 || status.st_uid == geteuid() else { return .wrongOwner(path, uid: status.st_uid) }
        return nil
    }
}
