import Foundation
import Glibc
import KnockCore
import Logging

/// Runs `on_grant` and `on_expire` hooks off the watcher's loop, a few at a time, each with a
/// deadline. A hook that fails or hangs is logged and stopped; it never holds up the reading
/// of the sets or the other hooks beyond its own slot.
///
/// Each hook runs without a shell, in its own process group (so a timeout stops its children
/// too), with stdin from /dev/null and stdout sent to stderr: stdout is the watcher's JSON
/// event stream and must carry nothing else.
public final class HookRunner: @unchecked Sendable {
    /// One run of a hook.
    public struct Job: Sendable {
        public var command: HookCommand
        /// `KNOCKC_*` variables; PATH is added.
        public var environment: [String: String]
        /// What the log lines call this run, as "on_grant for 192.0.2.2".
        public var label: String

        public init(command: HookCommand, environment: [String: String], label: String) {
            self.command = command
            self.environment = environment
            self.label = label
        }
    }

    /// How runs ended, for the metrics and for tests.
    public struct Tally: Equatable, Sendable {
        public var succeeded = 0
        public var failed = 0
        public var timedOut = 0
        /// Jobs dropped because the queue was full.
        public var dropped = 0

        public init(succeeded: Int = 0, failed: Int = 0, timedOut: Int = 0, dropped: Int = 0) {
            self.succeeded = succeeded
            self.failed = failed
            self.timedOut = timedOut
            self.dropped = dropped
        }
    }

    private let timeout: Duration
    private let logger: Logger
    private let queueLimit: Int
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var running = 0
    private var tally = Tally()

    /// How long a stopped hook gets between SIGTERM and SIGKILL.
    static let killGrace: Double = 2

    /// - Parameters:
    ///   - slots: hooks that may run at once; a hung hook holds one slot until its timeout.
    ///   - queueLimit: jobs waiting for a slot; past this, new jobs are dropped and logged,
    ///     so a burst of events cannot grow the watcher's memory without bound.
    public init(timeout: Duration, slots: Int = 8, queueLimit: Int = 1024, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
        self.queueLimit = queueLimit
        for index in 0..<max(1, slots) {
            // The workers keep the runner alive: they wait on its condition for as long as
            // the process runs (a runner is made once, by `knockc watch`).
            let thread = Thread { [self] in self.work() }
            thread.name = "knockc-hook-\(index)"
            thread.start()
        }
    }

    /// Queues `job`; returns at once.
    public func submit(_ job: Job) {
        condition.lock()
        defer { condition.unlock() }
        guard queue.count < queueLimit else {
            tally.dropped += 1
            logger.error("hook dropped: too many waiting", metadata: ["hook": "\(job.label)", "waiting": "\(queue.count)"])
            return
        }
        queue.append(job)
        condition.signal()
    }

    public var counts: Tally {
        condition.lock()
        defer { condition.unlock() }
        return tally
    }

    /// Whether a hook is running now.
    var isRunningAny: Bool {
        condition.lock()
        defer { condition.unlock() }
        return running > 0
    }

    /// Waits until no hook is queued or running, or until `deadline`; true when idle.
    public func waitUntilIdle(deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !queue.isEmpty || running > 0 {
            guard condition.wait(until: deadline) else { return false }
        }
        return true
    }

    private func work() {
        while true {
            condition.lock()
            while queue.isEmpty { condition.wait() }
            let job = queue.removeFirst()
            running += 1
            condition.unlock()

            let outcome = run(job)

            condition.lock()
            running -= 1
            switch outcome {
            case .succeeded: tally.succeeded += 1
            case .failed: tally.failed += 1
            case .timedOut: tally.timedOut += 1
            }
            condition.broadcast()
            condition.unlock()
        }
    }

    private enum Outcome { case succeeded, failed, timedOut }

    private func run(_ job: Job) -> Outcome {
        let metadata: Logger.Metadata = ["hook": "\(job.label)", "program": "\(job.command.program)"]
        let started = Date()
        let pid: pid_t
        do {
            pid = try Self.spawn(job)
        } catch {
            logger.error("hook could not start: \(error)", metadata: metadata)
            return .failed
        }
        let deadline = started.addingTimeInterval(Double(timeout.milliseconds) / 1000)
        if let status = Self.wait(pid, until: deadline) {
            let seconds = String(format: "%.3f", Date().timeIntervalSince(started))
            if status == 0 {
                logger.debug("hook finished", metadata: metadata.merging(["seconds": "\(seconds)"]) { $1 })
                return .succeeded
            }
            logger.warning("hook failed with status \(status)", metadata: metadata.merging(["seconds": "\(seconds)"]) { $1 })
            return .failed
        }
        // Its whole process group: a shell script's children go too.
        kill(-pid, SIGTERM)
        if Self.wait(pid, until: Date().addingTimeInterval(Self.killGrace)) == nil {
            kill(-pid, SIGKILL)
            _ = Self.wait(pid, until: .distantFuture)
        }
        logger.error("hook timed out after \(timeout) and was stopped", metadata: metadata)
        return .timedOut
    }

    /// The exit status (128 + signal when killed), or nil when `deadline` came first.
    private static func wait(_ pid: pid_t, until deadline: Date) -> Int32? {
        var pause: useconds_t = 1_000
        while true {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            if result == -1 && errno != EINTR { return 127 }
            if Date() >= deadline { return nil }
            usleep(pause)
            pause = min(pause * 2, 50_000)
        }
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    private static func spawn(_ job: Job) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 2, 1)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, default signal handling and no blocked signals.
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment = job.environment
        environment["PATH"] = environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        let argv = job.command.arguments.map { strdup($0) } + [nil]
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, job.command.program, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError(description: String(cString: strerror(result))) }
        return pid
    }
}
