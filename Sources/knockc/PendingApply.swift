import Foundation
import Glibc
import KnockCore
import KnockKernel

/// What `apply --confirm`, `confirm` and the detached reverter share, on disk under
/// `/run/knockc/NETNS/` (NETNS is the network namespace's inode, so namespaces never mix):
/// - `TABLE.yaml`: the spec of the last successful apply;
/// - `TABLE.previous.yaml`: while an apply is pending, the spec a revert restores;
/// - `TABLE.pending`: `pending DEADLINE`, then `confirmed`, `reverted` or `failed: WHY`;
/// - `TABLE.lock`: held while the state changes, so a confirm and a revert cannot both win.
struct PendingApply {
    let table: String
    let directory: URL

    init(table: String) throws {
        let namespace = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")) ?? "net:[unknown]"
        let inode = namespace.filter(\.isNumber)
        let root = ProcessInfo.processInfo.environment["KNOCKC_RUN_DIR"] ?? "/run/knockc"
        directory = URL(fileURLWithPath: root).appendingPathComponent(inode.isEmpty ? "unknown" : inode)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        self.table = table
    }

    var recordURL: URL { directory.appendingPathComponent("\(table).yaml") }
    /// The spec a pending revert restores; absent when there was no table before.
    var previousURL: URL { directory.appendingPathComponent("\(table).previous.yaml") }
    private var stateURL: URL { directory.appendingPathComponent("\(table).pending") }
    private var lockURL: URL { directory.appendingPathComponent("\(table).lock") }

    enum State: Equatable {
        case none
        case pending(deadline: Date)
        case confirmed
        case reverted
        case failed(String)
    }

    /// The spec text of the last successful apply in this namespace, if knockc recorded one.
    func recordedSpec() -> String? { try? String(contentsOf: recordURL, encoding: .utf8) }

    func record(specText: String) throws {
        try specText.write(to: recordURL, atomically: true, encoding: .utf8)
    }

    func forgetRecord() { try? FileManager.default.removeItem(at: recordURL) }

    func state() -> State {
        guard let text = try? String(contentsOf: stateURL, encoding: .utf8) else { return .none }
        let words = text.split(separator: " ", maxSplits: 1).map(String.init)
        switch words.first {
        case "pending": return .pending(deadline: Date(timeIntervalSince1970: Double(words.last ?? "") ?? 0))
        case "confirmed": return .confirmed
        case "reverted": return .reverted
        case "failed:": return .failed(words.count > 1 ? words[1] : "")
        default: return .none
        }
    }

    func setState(_ state: State) throws {
        let text: String
        switch state {
        case .none: try? FileManager.default.removeItem(at: stateURL); return
        case .pending(let deadline): text = "pending \(deadline.timeIntervalSince1970)"
        case .confirmed: text = "confirmed"
        case .reverted: text = "reverted"
        case .failed(let why): text = "failed: \(why)"
        }
        try text.write(to: stateURL, atomically: true, encoding: .utf8)
    }

    /// Runs `body` while holding the table's lock.
    func locked<T>(_ body: () throws -> T) throws -> T {
        let fd = open(lockURL.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ValidationErrorText("cannot open \(lockURL.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
