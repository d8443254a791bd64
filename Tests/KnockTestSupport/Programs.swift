import Foundation

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
@discardableResult
func runProgram(_ arguments: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String, error: String) {
    _ = testRunDirectory
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    let error = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let result = (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    if result.0 != 0 && !allowFailure {
        throw ProgramFailure(description: "\(arguments.joined(separator: " ")) exited \(result.0): \(result.2)")
    }
    return result
}
