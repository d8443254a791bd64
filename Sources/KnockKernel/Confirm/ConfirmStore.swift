import KnockCore
import Foundation
import Glibc

/// Where `apply`, `apply --confirm`, `confirm` and the detached reverter keep what they share,
/// per network namespace: `ROOT/INODE/` (default ROOT `/run/knockc`, mode 0700, files 0600).
/// - `netns-cookie`: the namespace's cookie; a different one means the inode was reused, and
///   every file here belonged to a namespace that is gone;
/// - `TABLE.yaml`: the spec of the last successful apply;
/// - `TABLE.previous.yaml`: while an apply is pending, the spec a revert restores (absent
///   when there was no table before);
/// - `TABLE.candidate.yaml`: while an apply is pending, its spec, which a confirm records;
/// - `TABLE.pending`: the `ConfirmRecord`, JSON;
/// - `TABLE.lock`: held while the record changes, so a confirm and a revert cannot both win.
public struct ConfirmStore: Sendable {
    public static let defaultRoot = "/run/knockc"

    public let table: String
    public let directory: String

    /// Opens (creating it) the current namespace's directory under `root`, clears it when it
    /// belonged to an earlier namespace with the same inode, and sweeps what killed writers
    /// and vanished namespaces left.
    public init(table: String, root: String = ConfirmStore.defaultRoot) throws(SystemError) {
        let namespace = try NetworkNamespaceKey.current()
        self.table = table
        directory = "\(root)/\(namespace.inode)"
        try Self.makeDirectory(root)
        try Self.makeDirectory(directory)
        let cookieFile = "\(directory)/netns-cookie"
        let cookie = (try? AtomicFile.read(cookieFile)).flatMap { $0.flatMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        if cookie != namespace.cookie {
            if cookie != nil { Self.removeFiles(in: directory) }
            try AtomicFile.write("\(namespace.cookie)\n", to: cookieFile)
        }
        AtomicFile.sweepTemporaries(in: directory)
        Self.sweepVanishedNamespaces(in: root, keeping: namespace.inode)
    }

    public var recordPath: String { "\(directory)/\(table).yaml" }
    public var previousPath: String { "\(directory)/\(table).previous.yaml" }
    public var candidatePath: String { "\(directory)/\(table).candidate.yaml" }
    /// The grants the pending apply ended, which a revert puts back.
    var endedGrantsPath: String { "\(directory)/\(table).ended-grants" }
    var statePath: String { "\(directory)/\(table).pending" }
    var lockPath: String { "\(directory)/\(table).lock" }

    /// The spec text of the last successful apply in this namespace, if one was recorded.
    public func recordedSpec() -> String? { (try? AtomicFile.read(recordPath)) ?? nil }

    public func record(specText: String) throws(SystemError) { try AtomicFile.write(specText, to: recordPath) }

    public func forgetRecord() throws(SystemError) { try AtomicFile.remove(recordPath) }

    /// The confirm record; nil when there is none (or it is unreadable, which reads as none:
    /// a half-written record cannot exist, since records are replaced by rename).
    public func confirmRecord() -> ConfirmRecord? {
        guard let text = (try? AtomicFile.read(statePath)) ?? nil else { return nil }
        return try? JSONDecoder().decode(ConfirmRecord.self, from: Data(text.utf8))
    }

    public func write(_ record: ConfirmRecord) throws(SystemError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(record)) ?? Data()
        try AtomicFile.write(String(decoding: data, as: UTF8.self) + "\n", to: statePath)
    }

    /// Runs `body` while holding the table's lock.
    public func locked<T>(_ body: () throws -> T) throws -> T {
        var fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        // A state directory gone read-only must not stop a revert: flock needs no write access.
        if fd < 0 && errno == EROFS { fd = open(lockPath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) }
        guard fd >= 0 else { throw SystemError("cannot open \(lockPath)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw SystemError("cannot lock \(lockPath)") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    private static func makeDirectory(_ path: String) throws(SystemError) {
        if mkdir(path, 0o700) == 0 { return }
        guard errno == EEXIST else { throw SystemError("cannot create \(path)") }
        var status = stat()
        guard lstat(path, &status) == 0 else { throw SystemError("cannot read \(path)") }
        guard (status.st_mode & S_IFMT) == S_IFDIR else { throw SystemError("cannot use \(path), which is not a directory", errno: ENOTDIR) }
        // What is in it decides what a revert installs: only its owner may write there.
        guard status.st_uid == geteuid(), status.st_mode & 0o022 == 0 else {
            throw SystemError("cannot use \(path): it belongs to uid \(status.st_uid) (this is uid \(geteuid())) or others may write to it", errno: EPERM)
        }
    }

    private static func removeFiles(in directory: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            unlink("\(directory)/\(name)")
        }
    }

    /// Directories of namespaces that no longer exist. A pending confirm is never among them:
    /// its reverter is a process inside that namespace, which keeps it alive.
    private static func sweepVanishedNamespaces(in root: String, keeping current: UInt64) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { UInt64($0) != nil && UInt64($0) != current }
        guard !names.isEmpty else { return }
        let live = NetworkNamespaceKey.liveInodes()
        for name in names where !live.contains(UInt64(name)!) {
            removeFiles(in: "\(root)/\(name)")
            rmdir("\(root)/\(name)")
        }
    }
}

/// Where a pending `apply --confirm` stands. Only the reverter writes `pending`, with its own
/// identity, so the record never says pending unless a reverter started; whoever reads a
/// pending record whose reverter is gone recovers (`PendingConfirm.recoverOrphan`).
public struct ConfirmRecord: Codable, Equatable, Sendable {
    public enum Phase: String, Codable, Sendable {
        /// The applier has written the previous and candidate specs and waits for its
        /// reverter; the new table is not installed yet.
        case arming
        /// The reverter runs; the new table is (or is about to be) live.
        case pending
        case confirmed
        /// The previous table is back (at the deadline, or because the reverter died).
        case reverted
        /// The revert was attempted and failed; `detail` says why.
        case failed
        /// Ended without a revert: the install failed, or `apply --force` took over.
        case ended
    }

    public var phase: Phase
    /// `BootClock` nanoseconds at which the previous table comes back; 0 until installed.
    public var deadline: UInt64
    public var windowMilliseconds: Int
    /// Whether the applier installed the new table; the window runs from then.
    public var installed: Bool?
    public var bootID: String
    public var applier: ProcessIdentity?
    public var reverter: ProcessIdentity?
    public var detail: String?

    public init(phase: Phase, deadline: UInt64, windowMilliseconds: Int, installed: Bool? = nil, bootID: String = BootClock.bootID,
                applier: ProcessIdentity? = nil, reverter: ProcessIdentity? = nil, detail: String? = nil) {
        self.phase = phase
        self.deadline = deadline
        self.installed = installed
        self.windowMilliseconds = windowMilliseconds
        self.bootID = bootID
        self.applier = applier
        self.reverter = reverter
        self.detail = detail
    }
}

/// The grants an apply --confirm ended, as the store keeps them until the confirm or the
/// revert: each with the boot-clock instant it runs out, so the time a revert gives back is
/// what it had left, whatever the wall clock did meanwhile.
struct EndedGrantsFile: Codable, Equatable {
    struct Entry: Codable, Equatable {
        var source: String
        var port: String
        var timeoutMilliseconds: Int64
        var expiresAtBootNanoseconds: UInt64
    }

    var grants: [Entry]

    init(_ grants: [Grant], now: UInt64) {
        self.grants = grants.map {
            Entry(source: $0.source.text, port: $0.port.description, timeoutMilliseconds: $0.timeout.milliseconds,
                  expiresAtBootNanoseconds: now + UInt64(max(0, $0.expires.milliseconds)) * 1_000_000)
        }
    }

    /// The grants with the time they have left at `now`; those that ran out meanwhile, or do
    /// not parse, are left out.
    func grants(at now: UInt64) -> [Grant] {
        grants.compactMap { entry in
            guard entry.expiresAtBootNanoseconds > now + 1_000_000, let source = IPAddress.parse(entry.source),
                  let port = try? TransportPort(parsing: entry.port) else { return nil }
            return Grant(source: source, port: port, timeout: Duration(milliseconds: entry.timeoutMilliseconds),
                         expires: Duration(milliseconds: Int64((entry.expiresAtBootNanoseconds - now) / 1_000_000)))
        }
    }
}
