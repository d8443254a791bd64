import Glibc

/// A program started with posix_spawn, optionally in a process group of its own, and stopped
/// as a group: the one spawner of knockc's hooks (and meant for its other subprocesses).
///
/// Hand-written rather than swift-subprocess 1.0.2: its teardown sends the final SIGKILL only
/// while the main process is alive and stops as soon as that process exits, so a child that
/// ignores SIGTERM outlives a shell that does not (the issue-10 defect again); it is also
/// async only, where the hook runner and `knockc`'s commands are synchronous. What this one
/// adds over a bare posix_spawn is `stopGroup(grace:)` and closing every inherited
/// descriptor above stderr in the child.
public struct ChildProcess: Sendable {
    /// The process ID, and the group ID when started with `ownProcessGroup`.
    public let pid: pid_t
    public let ownProcessGroup: Bool

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `argv[0]` (an absolute path) with stdin from /dev/null.
    /// - Parameters:
    ///   - environment: the whole environment; nil passes the caller's on.
    ///   - standardOutput, standardError: descriptors to put in place of 1 and 2; nil keeps them.
    ///   - ownProcessGroup: a group of its own, so `stopGroup` reaches whatever it starts.
    public static func spawn(_ argv: [String], environment: [String: String]? = nil,
                             standardOutput: Int32? = nil, standardError: Int32? = nil,
                             ownProcessGroup: Bool = false) throws(SpawnError) -> ChildProcess {
        guard let program = argv.first else { throw SpawnError(description: "no program") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let standardOutput { posix_spawn_file_actions_adddup2(&actions, standardOutput, 1) }
        if let standardError { posix_spawn_file_actions_adddup2(&actions, standardError, 2) }
        // Whatever another thread opened without FD_CLOEXEC (a metrics connection between
        // accept and fcntl, a netlink socket) stays out of the child.
        if let closeFrom = addCloseFrom { _ = closeFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handling and no blocked signals, whatever the caller set.
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let result: Int32
        if let environment {
            let cEnvironment = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { cEnvironment.forEach { free($0) } }
            result = posix_spawn(&pid, program, &actions, &attributes, cArguments, cEnvironment)
        } else {
            result = posix_spawn(&pid, program, &actions, &attributes, cArguments, environ)
        }
        guard result == 0 else { throw SpawnError(description: "cannot run \(program): \(String(cString: strerror(result)))") }
        return ChildProcess(pid: pid, ownProcessGroup: ownProcessGroup)
    }

    /// Waits until the process has exited or `deadline` has come; true when it has exited.
    /// It is left unreaped (a zombie), so its ID, which is also its group's, cannot be reused
    /// by another process while `stopGroup` may still signal that group.
    public func waitForExit(until deadline: ContinuousClock.Instant) -> Bool {
        var pause: useconds_t = 1_000
        while true {
            var info = siginfo_t()
            let result = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
            if result == 0, info._sifields._sigchld.si_pid == pid { return true }
            if result == -1, errno != EINTR { return true }
            if ContinuousClock.now >= deadline { return false }
            usleep(pause)
            pause = min(pause * 2, 50_000)
        }
    }

    /// Waits for the process and reaps it: the exit status, or 128 + the signal that ended it.
    @discardableResult
    public func reap() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return 127 }
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Stops the whole group, whatever its leader does: SIGTERM to the group, up to `grace` for
    /// every member to go, then SIGKILL to the group if any is left, and the leader reaped.
    /// A member that left the group (setsid, a daemon) is beyond reach; cgroups would be needed.
    public func stopGroup(grace: Duration) {
        precondition(ownProcessGroup, "stopGroup needs a process group of the child's own")
        kill(-pid, SIGTERM)
        let deadline = ContinuousClock.now.advanced(by: grace)
        var pause: useconds_t = 1_000
        while !Self.liveMembers(ofGroup: pid).isEmpty, ContinuousClock.now < deadline {
            usleep(pause)
            pause = min(pause * 2, 50_000)
        }
        // Unconditional: the leader may have exited on SIGTERM while a member ignored it. Its
        // zombie still holds the group's ID, so this cannot reach anyone else.
        kill(-pid, SIGKILL)
        reap()
    }

    /// Processes of group `group` that are not zombies, from /proc.
    public static func liveMembers(ofGroup group: pid_t) -> [pid_t] {
        guard let directory = opendir("/proc") else { return [] }
        defer { closedir(directory) }
        var members: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = pid_t(name), let stat = readSmallFile("/proc/\(name)/stat") else { continue }
            // After the command name in parentheses: state, ppid, pgrp.
            guard let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, fields[0] != "Z", pid_t(fields[2]) == group else { continue }
            members.append(pid)
        }
        return members
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1_024)
        let count = read(fd, &buffer, buffer.count)
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc 2.34's posix_spawn_file_actions_addclosefrom_np, which Swift's Glibc module does
    /// not declare; nil on an older libc, where only FD_CLOEXEC keeps descriptors in.
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()
}
