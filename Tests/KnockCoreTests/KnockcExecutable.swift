import Foundation
import Testing

/// The knockc executable built beside this test bundle, for tests of what the binary itself
/// does: exit codes, crashes, reading files and pipes.
enum KnockcExecutable {
    static let path = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("knockc").path

    /// The path, or nil when there is no executable. Locally that is a warning (a filtered
    /// build may not link it); under CI=true it fails the test, since CI must run it.
    static func required(sourceLocation: Testing.SourceLocation = #_sourceLocation) -> String? {
        if FileManager.default.isExecutableFile(atPath: path) { return path }
        let message = "no knockc executable beside the tests at \(path); build it with `swift build --build-tests`"
        if ProcessInfo.processInfo.environment["CI"] == "true" {
            Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
        } else {
            Issue.record(Comment(rawValue: "skipped: " + message), severity: .warning, sourceLocation: sourceLocation)
        }
        return nil
    }

    struct Result {
        var status: Int32
        var signaled: Bool
        var stderr: String
    }

    /// Runs knockc with `arguments`; `input`, when given, is written to its stdin, which is
    /// then closed (an empty `input` is an empty pipe). Past `limit` the process is killed
    /// (and reported signaled), so a knockc that hangs fails the test instead of holding it.
    static func run(_ executable: String, _ arguments: [String], input: Data? = nil, limit: TimeInterval = 60) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let error = Pipe()
        process.standardError = error
        process.standardOutput = FileHandle.nullDevice
        let stdin = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        try process.run()
        let watchdog = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: watchdog)
        defer { watchdog.cancel() }
        if let input {
            try stdin.fileHandleForWriting.write(contentsOf: input)
            try stdin.fileHandleForWriting.close()
        }
        var stderr = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // A crash prints a whole backtrace; its one telling line is enough here.
        if let failure = stderr.split(separator: "\n").first(where: { $0.contains("runtime failure") }) { stderr = String(failure) }
        return Result(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal, stderr: stderr)
    }
}
