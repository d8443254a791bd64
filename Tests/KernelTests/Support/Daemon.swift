import Foundation
import Glibc
import KnockProcess
@testable import KnockTestSupport

/// A long-running program a test starts (sshd, knockd), its stdout and stderr in a log file,
/// stopped with everything it started when the test ends.
///
/// Spawned by `ChildProcess`, in a process group of its own, rather than Foundation's
/// `Process`: Process learns that a child ended when a socket the child inherited closes, and
/// a daemon that closes every inherited descriptor as it starts (sshd does) would have it wait
/// on the thread that reaps every other program the tests run. `ChildProcess` also closes
/// every descriptor above stderr in the child, so the daemon holds no other test's pipes.
final class Daemon: @unchecked Sendable {
    let name: String
    let logPath: String
    private let child: ChildProcess
    private let lock = NSLock()
    private var running = true

    struct NotReady: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `arguments` (an absolute path first) with its output appended to `logPath`.
    init(_ name: String, _ arguments: [String], logPath: String) throws {
        self.name = name
        self.logPath = logPath
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw NotReady(description: "cannot open \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        child = try ChildProcess.spawn(arguments, standardOutput: log, standardError: log, ownProcessGroup: true)
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Whether it has exited (it stays unreaped until `stop`).
    var hasExited: Bool { child.waitForExit(until: .now) }

    /// Polls `isReady` until it holds, within `seconds`; stops the daemon and throws with its
    /// log when it does not, or when the daemon exits first.
    func waitUntil(within seconds: Double, _ what: String, _ isReady: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while try !isReady() {
            guard !hasExited, Date() < deadline else {
                stop()
                throw NotReady(description: "\(name) did not \(what) within \(seconds) s: \(log)")
            }
            usleep(20_000)
        }
    }

    /// SIGTERM to its group, up to 5 s for it to go, then SIGKILL; reaped. Once.
    func stop() {
        guard lock.withLock({ () -> Bool in defer { running = false }; return running }) else { return }
        child.stopGroup(grace: .seconds(5))
    }

    deinit { stop() }
}
