import Foundation
import Glibc
import KnockProcess

/// A program that exited non-zero; the description holds its stderr.
struct ProgramFailure: Error, CustomStringConvertible {
    var description: String
}

/// knockc's state directory (`KNOCKC_RUN_DIR`) for every program the tests run: one of this
/// test process's own, removed when it exits, so a test's apply never leaves records in the
/// machine's /run/knockc. A test that sets its own keeps it.
let testRunDirectory: String = {
    let path = "/run/knockc-tests-\(getpid())"
    setenv("KNOCKC_RUN_DIR", path, 0)
    atexit { _ = try? FileManager.default.removeItem(atPath: "/run/knockc-tests-\(getpid())") }
    return path
}()

/// Runs a program and returns its output; throws with its stderr when it fails.
///
/// Spawned by `ChildProcess` rather than Foundation's `Process`: Process learns that a child
/// ended when a socket the child inherited closes, then waits for it (blocking) on the one
/// thread that reaps every Process; ssh and sshd close every inherited descriptor as they
/// start, which held up every other test's programs for as long as they ran. Both pipes are
/// read together, so a program that fills one while the test reads the other cannot stall.
@discardableResult
func runProgram(_ arguments: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String, error: String) {
    _ = testRunDirectory
    let output = try ProgramPipe()
    let error = try ProgramPipe()
    let child: ChildProcess
    do {
        child = try ChildProcess.spawn(["/usr/bin/env"] + arguments, standardOutput: output.writing, standardError: error.writing)
    } catch {
        throw ProgramFailure(description: "\(arguments.joined(separator: " ")): \(error)")
    }
    output.closeWriting()
    error.closeWriting()
    let (stdout, stderr) = ProgramPipe.readToEnd(output, error)
    let result = (child.reap(), String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    if result.0 != 0 && !allowFailure {
        throw ProgramFailure(description: "\(arguments.joined(separator: " ")) exited \(result.0): \(result.2)")
    }
    return result
}

/// A pipe whose ends no other child inherits (FD_CLOEXEC; the spawn puts the writing end in
/// place of stdout or stderr), closed when dropped.
final class ProgramPipe {
    let reading: Int32
    private(set) var writing: Int32

    init() throws {
        var ends: [Int32] = [-1, -1]
        // pipe2 is not in Swift's Glibc module; the moment before FD_CLOEXEC is harmless, as
        // every spawner here (ChildProcess, Foundation's Process) closes what is above stderr.
        guard pipe(&ends) == 0 else { throw ProgramFailure(description: "pipe: \(String(cString: strerror(errno)))") }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        reading = ends[0]
        writing = ends[1]
    }

    func closeWriting() {
        if writing >= 0 { close(writing) }
        writing = -1
    }

    deinit {
        closeWriting()
        close(reading)
    }

    /// Everything both pipes carry, read as it comes until both reach end of file.
    static func readToEnd(_ first: ProgramPipe, _ second: ProgramPipe) -> ([UInt8], [UInt8]) {
        var collected: [[UInt8]] = [[], []]
        var open = [true, true]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while open.contains(true) {
            var fds = [first.reading, second.reading].enumerated().map { index, fd in
                pollfd(fd: open[index] ? fd : -1, events: Int16(POLLIN), revents: 0)
            }
            guard poll(&fds, 2, -1) >= 0 || errno == EINTR else { break }
            for index in 0..<2 where open[index] && fds[index].revents != 0 {
                let count = read(fds[index].fd, &buffer, buffer.count)
                if count > 0 {
                    collected[index].append(contentsOf: buffer[0..<count])
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    open[index] = false
                }
            }
        }
        return (collected[0], collected[1])
    }
}
