import Foundation
import Glibc

/// `--metrics-textfile PATH`: the `/metrics` text as a file for node_exporter's textfile
/// collector, which needs no listening socket.
///
/// The file is replaced whole: the text goes to a temporary file in the same directory
/// (`.NAME.knockc-tmp`, one fixed name, so a temporary left by a killed watcher is removed by
/// the next write rather than piling up), is fsynced, made 0644, and renamed over PATH. A
/// reader sees the old file or the new one, never a part. The temporary is created with
/// O_EXCL | O_NOFOLLOW after removing any old one, so a link planted there is never followed.
public struct MetricsTextfile {
    public let path: String
    public let temporaryPath: String
    /// Rewritten at least this often while nothing changes, so the file's mtime
    /// (node_textfile_mtime_seconds) shows the watcher is alive.
    public var refresh: Swift.Duration
    private var written: (text: String, at: ContinuousClock.Instant)?

    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(path: String, refresh: Swift.Duration = .seconds(60)) {
        self.path = path
        let url = URL(fileURLWithPath: path)
        temporaryPath = url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".knockc-tmp").path
        self.refresh = refresh
    }

    /// Writes `text` if it differs from the last write or that is `refresh` old; true if written.
    @discardableResult
    public mutating func update(_ text: String, now: ContinuousClock.Instant = .now) throws(WriteError) -> Bool {
        if let written, written.text == text, now - written.at < refresh { return false }
        try Self.replace(path, through: temporaryPath, with: text)
        written = (text, now)
        return true
    }

    static func replace(_ path: String, through temporary: String, with text: String) throws(WriteError) {
        func failure(_ step: String, _ file: String) -> WriteError {
            WriteError(description: "cannot \(step) \(file): \(String(cString: strerror(errno)))")
        }
        if unlink(temporary) != 0, errno != ENOENT { throw failure("remove the stale", temporary) }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("create", temporary) }
        var done = false
        defer {
            if !done { unlink(temporary) }
        }
        do {
            defer { close(fd) }
            // The umask must not make it unreadable for node_exporter's user.
            guard fchmod(fd, 0o644) == 0 else { throw failure("set the mode of", temporary) }
            var bytes = Array(text.utf8)[...]
            while !bytes.isEmpty {
                let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { throw failure("write", temporary) }
                bytes = bytes.dropFirst(count)
            }
            guard fsync(fd) == 0 else { throw failure("sync", temporary) }
        }
        guard rename(temporary, path) == 0 else { throw failure("rename \(temporary) to", path) }
        done = true
        // The rename itself survives a crash once the directory is synced.
        let directory = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
