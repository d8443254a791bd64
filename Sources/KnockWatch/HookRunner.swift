import Foundation
import Glibc
import KnockCore
import KnockProcess
import Logging

/// Runs `on_grant` and `on_expire` hooks off the watcher's loop, a few at a time, each with a
/// deadline. A hook that fails or hangs is logged and stopped; it never holds up the reading
/// of the sets or the other hooks beyond its own slot.
///
/// Each hook runs without a shell, in its own process group, with stdin from /dev/null and
/// stdout sent to stderr: stdout is the watcher's JSON event stream and must carry nothing
/// else. At its timeout the group gets SIGTERM, and SIGKILL after `killGrace` if any member
/// is left, so a child that ignores SIGTERM goes too (`ChildProcess.stopGroup`).
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

    /// How long a stopped hook's group gets between SIGTERM and SIGKILL.
    static let killGrace: Swift.Duration = .seconds(2)

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
        let started = ContinuousClock.now
        var environment = job.environment
        environment["PATH"] = environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        let child: ChildProcess
        do {
            // stdout is the watcher's JSON event stream: the hook's goes to stderr.
            child = try ChildProcess.spawn(job.command.arguments, environment: environment, standardOutput: 2, ownProcessGroup: true)
        } catch {
            logger.error("hook could not start: \(error)", metadata: metadata)
            return .failed
        }
        let deadline = started.advanced(by: .milliseconds(timeout.milliseconds))
        guard child.waitForExit(until: deadline) else {
            // The whole group, whatever its leader does: a child that ignores SIGTERM too.
            child.stopGroup(grace: Self.killGrace)
            logger.error("hook timed out after \(timeout) and was stopped", metadata: metadata)
            return .timedOut
        }
        let status = child.reap()
        let elapsed = (ContinuousClock.now - started).components
        let seconds = String(format: "%.3f", Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
        if status == 0 {
            logger.debug("hook finished", metadata: metadata.merging(["seconds": "\(seconds)"]) { $1 })
            return .succeeded
        }
        logger.warning("hook failed with status \(status)", metadata: metadata.merging(["seconds": "\(seconds)"]) { $1 })
        return .failed
    }
}
