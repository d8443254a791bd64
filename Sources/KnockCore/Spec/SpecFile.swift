import Foundation

/// Stage 0: a spec file's bytes to text, for every command that reads a spec. Reads at most
/// `limit` + 1 bytes, so `/dev/zero` or a huge file is refused at once, and says why a file
/// cannot be a spec (a directory, UTF-16, bytes that are not UTF-8) instead of only that it
/// could not be read.
public enum SpecFile {
    /// The largest spec read. The biggest spec knockc can compile (every port a knock) is a
    /// few MiB; 16 MiB leaves room for comments without letting a mistake fill memory.
    public static let limit = 16 << 20

    /// Why a file is not read as a spec.
    public enum Problem: Error, Equatable, Sendable {
        /// open(2) or read(2) failed: the system's words for the errno.
        case system(String)
        case directory
        case tooLarge(limit: Int)
        /// A UTF-16 byte-order mark, or the NUL bytes of UTF-16 text without one.
        case utf16
        /// The first byte that is not UTF-8: its value, 1-based line, and byte on that line.
        case notUTF8(byte: UInt8, line: Int, byteInLine: Int)
    }

    /// The text of the spec at `path`. An empty file or pipe is empty text, which the
    /// parser reports as an empty spec.
    public static func read(_ path: String, limit: Int = SpecFile.limit) throws(Problem) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system(String(cString: strerror(errno))) }
        defer { close(fd) }
        var status = stat()
        if fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFDIR { throw .directory }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while bytes.count <= limit {
            let wanted = min(chunk.count, limit + 1 - bytes.count)
            let count = chunk.withUnsafeMutableBytes { readBytes(fd, $0.baseAddress, wanted) }
            if count < 0 {
                if errno == EINTR { continue }
                throw errno == EISDIR ? .directory : .system(String(cString: strerror(errno)))
            }
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        guard bytes.count <= limit else { throw .tooLarge(limit: limit) }
        return try text(bytes)
    }

    /// `bytes` as UTF-8 text, or why they are not.
    static func text(_ bytes: [UInt8]) throws(Problem) -> String {
        if bytes.starts(with: [0xFF, 0xFE]) || bytes.starts(with: [0xFE, 0xFF]) || looksLikeUTF16(bytes) {
            throw .utf16
        }
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return String(decoding: bytes, as: UTF8.self)
            case .error:
                let lineStart = bytes[..<offset].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
                let line = bytes[..<offset].count(where: { $0 == UInt8(ascii: "\n") }) + 1
                throw .notUTF8(byte: bytes[offset], line: line, byteInLine: offset - lineStart + 1)
            }
        }
    }

    /// UTF-16 text without a byte-order mark: a spec is mostly ASCII, so every other byte of
    /// its start is NUL, and the bytes in between are not.
    static func looksLikeUTF16(_ bytes: [UInt8]) -> Bool {
        let start = bytes.prefix(64)
        guard start.count >= 4 else { return false }
        let even = stride(from: 0, to: start.count - 1, by: 2).map { start[$0] }
        let odd = stride(from: 1, to: start.count, by: 2).map { start[$0] }
        func mostlyNUL(_ half: [UInt8]) -> Bool { half.count(where: { $0 == 0 }) * 4 >= half.count * 3 }
        func noNUL(_ half: [UInt8]) -> Bool { !half.contains(0) }
        return (mostlyNUL(even) && noNUL(odd)) || (mostlyNUL(odd) && noNUL(even))
    }
}

/// read(2), out of reach of `SpecFile.read`'s own name.
private func readBytes(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

extension Diagnostic.Message {
    static func unreadable(_ path: String, _ problem: SpecFile.Problem) -> Self {
        let why = switch problem {
        case .system(let words): words
        case .directory: "it is a directory"
        case .tooLarge(let limit): "it is larger than \(limit >> 20) MiB, more than any spec needs"
        case .utf16: "it is UTF-16 text; save it as UTF-8"
        case .notUTF8(let byte, let line, let byteInLine):
            "it is not UTF-8 text (found the byte 0x\(String(format: "%02X", byte)) at line \(line), byte \(byteInLine)); save it as UTF-8"
        }
        return .init(.error, "cannot read the spec file '\(path)': \(why)")
    }
}
