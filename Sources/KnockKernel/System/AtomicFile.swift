import Foundation
import Glibc

/// Whole-file writes that a reader sees either before or after, never half done, and that
/// leave no file behind when the writer is killed part-way except a temporary whose name says
/// whose it was: `.NAME.tmp.PID`. `sweepTemporaries` removes those of dead processes.
public enum AtomicFile {
    /// Writes `text` to `path` with `mode`, through a temporary in the same directory, fsync
    /// and rename. Never follows a link at the temporary's name.
    public static func write(_ text: String, to path: String, mode: mode_t = 0o600) throws(SystemError) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = "\(directory)/.\(name).tmp.\(getpid())"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("cannot write \(path)") }
        var failure: SystemError?
        if !Descriptor.writeAll(fd, text) { failure = SystemError("cannot write \(path)") }
        if failure == nil, fchmod(fd, mode) != 0 || fsync(fd) != 0 { failure = SystemError("cannot write \(path)") }
        if close(fd) != 0, failure == nil { failure = SystemError("cannot write \(path)") }
        if failure == nil, rename(temporary, path) != 0 { failure = SystemError("cannot write \(path)") }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }

    /// Reads a small file whole; nil when it does not exist.
    public static func read(_ path: String) throws(SystemError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw SystemError("cannot read \(path)")
        }
        defer { close(fd) }
        guard let text = Descriptor.readAll(fd) else { throw SystemError("cannot read \(path)") }
        return text
    }

    /// Removes `path`; a file that is already gone is not an error.
    public static func remove(_ path: String) throws(SystemError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw SystemError("cannot remove \(path)") }
    }

    /// Removes the temporaries in `directory` that writers killed part-way left behind.
    public static func sweepTemporaries(in directory: String) {
        guard let entries = opendir(directory) else { return }
        defer { closedir(entries) }
        while let entry = readdir(entries) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("."), let marker = name.range(of: ".tmp.", options: .backwards),
                  let pid = pid_t(name[marker.upperBound...]) else { continue }
            if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH { unlink("\(directory)/\(name)") }
        }
    }
}
