import Glibc

/// Runs a program to completion with posix_spawn and waitpid. Foundation's Process waits
/// through a run-loop socket that was seen to fail after a second child here, hanging the
/// command; this has no such moving parts. Output goes into in-memory files, so no pipe can
/// fill up and stall the child, and nothing is left on disk. Unlike `KnockProcess`'s
/// `ChildProcess`, the child keeps the descriptors it is meant to inherit: diff(1) reads its
/// two inputs as `/dev/fd/N`.
enum Subprocess {
    struct Result: Sendable {
        var status: Int32
        var output: String
        var errors: String
    }

    /// The program could not be started at all.
    struct SpawnFailure: Error, Sendable, CustomStringConvertible {
        var description: String
    }

    static func run(_ executable: String, _ arguments: [String]) throws(SpawnFailure) -> Result {
        let output: MemoryFile
        let errors: MemoryFile
        do {
            output = try MemoryFile("knockc-out")
            errors = try MemoryFile("knockc-err")
        } catch {
            throw SpawnFailure(description: "\(error)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output.fd, 1)
        posix_spawn_file_actions_adddup2(&actions, errors.fd, 2)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw SpawnFailure(description: "cannot run \(executable): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitStatus, output: output.contents(), errors: errors.contents())
    }
}
