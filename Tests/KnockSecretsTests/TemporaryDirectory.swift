import Foundation
import Glibc

/// A directory of the test's own from mkdtemp, removed with everything in it by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("\(NSTemporaryDirectory())/knockc-secrets-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        path = String(cString: made)
    }

    /// Runs `body` with a fresh directory and removes it afterwards, whatever `body` does.
    static func with<Result>(_ body: (TemporaryDirectory) throws -> Result) throws -> Result {
        let directory = try TemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory.path) }
        return try body(directory)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `bytes` to `name` with `mode`, as a secret file would be, and returns its path.
    @discardableResult
    func write(_ bytes: [UInt8], to name: String, mode: mode_t = 0o600) throws -> String {
        let path = file(name)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)), chmod(path, mode) == 0 else {
            throw POSIXError(.EIO)
        }
        return path
    }
}
