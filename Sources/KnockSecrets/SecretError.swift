import Glibc

/// Why a secret file was refused, or could not be read or written. Every message names the
/// path and says what to do; none holds a byte of any secret.
public enum SecretError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing exists at the path.
    case missing(path: String)
    /// The path names something other than a regular file: a link, a directory, a FIFO.
    case notRegularFile(path: String, kind: FileKind)
    /// The file belongs to another user than the one required.
    case wrongOwner(path: String, owner: uid_t, required: uid_t)
    /// The file's group or others have some permission on it; `mode` holds its permission bits.
    case accessibleByOthers(path: String, mode: mode_t)
    /// The file holds fewer bytes than a secret needs.
    case tooShort(path: String, length: Int, minimum: Int)
    /// The file holds more bytes than any key would: probably the wrong file.
    case tooLong(path: String, maximum: Int)
    /// `keygen` found something at the path, a dangling link included, and left it alone.
    case alreadyExists(path: String)
    /// A system call failed on the path.
    case cannotRead(path: String, errno: Int32)
    case cannotWrite(path: String, errno: Int32)

    /// What a path names, when it is not a regular file.
    public enum FileKind: String, Sendable {
        case symbolicLink = "a symbolic link"
        case directory = "a directory"
        case fifo = "a FIFO"
        case socket = "a socket"
        case characterDevice = "a character device"
        case blockDevice = "a block device"
        case unknown = "not a regular file"

        init(mode: mode_t) {
            self = switch mode & S_IFMT {
            case S_IFLNK: .symbolicLink
            case S_IFDIR: .directory
            case S_IFIFO: .fifo
            case S_IFSOCK: .socket
            case S_IFCHR: .characterDevice
            case S_IFBLK: .blockDevice
            default: .unknown
            }
        }
    }

    public var description: String {
        switch self {
        case .missing(let path):
            "secret \(path) does not exist (`knockc keygen \(path)` writes one)"
        case .notRegularFile(let path, let kind):
            "secret \(path) is \(kind.rawValue); it must be a regular file"
        case .wrongOwner(let path, let owner, let required):
            "secret \(path) is owned by \(Self.user(owner)); it must be owned by \(Self.user(required))"
        case .accessibleByOthers(let path, let mode):
            "secret \(path) has mode \(Self.octal(mode)), which lets its group or others at it: run chmod 600 \(path)"
        case .tooShort(let path, let length, let minimum):
            "secret \(path) holds \(length) bytes; a secret needs at least \(minimum) (`knockc keygen` writes 32 random bytes)"
        case .tooLong(let path, let maximum):
            "secret \(path) holds more than \(maximum) bytes; a secret is a short key, so this is probably the wrong file"
        case .alreadyExists(let path):
            "\(path) already exists; knockc never overwrites a secret: remove it first, or choose another path"
        case .cannotRead(let path, let errno):
            "cannot read secret \(path): \(String(cString: strerror(errno)))"
        case .cannotWrite(let path, let errno):
            "cannot write secret \(path): \(String(cString: strerror(errno)))"
        }
    }

    private static func user(_ uid: uid_t) -> String { uid == 0 ? "root (uid 0)" : "uid \(uid)" }

    /// As chmod and ls spell it: 0640.
    private static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
