import Foundation
import Glibc

/// A process as a pid and its start time (field 22 of /proc/PID/stat, in clock ticks since
/// boot) on one boot: a pid alone may be reused, the pair cannot, so a recorded reverter is
/// known dead even when its pid now belongs to another process.
public struct ProcessIdentity: Codable, Equatable, Sendable, CustomStringConvertible {
    public var pid: Int32
    public var startTime: UInt64
    public var bootID: String

    public init(pid: Int32, startTime: UInt64, bootID: String) {
        self.pid = pid
        self.startTime = startTime
        self.bootID = bootID
    }

    public static func current() -> ProcessIdentity? { of(getpid()) }

    /// The identity of a live process; nil when there is none with that pid (or only a zombie).
    public static func of(_ pid: Int32) -> ProcessIdentity? {
        guard let stat = try? AtomicFile.read("/proc/\(pid)/stat"),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After the command name: state, then fields 4 and on; the start time is field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X", let start = UInt64(fields[19]) else { return nil }
        return ProcessIdentity(pid: pid, startTime: start, bootID: BootClock.bootID)
    }

    /// Whether this very process still runs.
    public var isAlive: Bool { Self.of(pid) == self }

    public var description: String { "pid \(pid)" }
}

/// Time for deadlines: CLOCK_BOOTTIME, which moves on during suspend (a confirm window must
/// not stretch over a laptop lid closed) and never jumps with the wall clock (setting the
/// clock back an hour must not delay a revert by an hour).
public enum BootClock {
    /// Nanoseconds since boot.
    public static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_BOOTTIME, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// This boot's random id: a boot clock reading is meaningless on another boot.
    public static let bootID: String = {
        let text = (try? AtomicFile.read("/proc/sys/kernel/random/boot_id")) ?? nil
        return text?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
    }()
}
