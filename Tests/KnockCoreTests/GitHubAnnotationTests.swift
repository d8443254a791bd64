import Foundation
@testable import KnockCore
import Testing

/// `check --format github`: diagnostics as GitHub Actions workflow commands.
struct GitHubAnnotationTests {
    @Test("a diagnostic becomes ::error file=,line=,col=::message, its notes in the message, escaped as the runner reads it")
    func commands() {
        let note = Diagnostic(.init(.note, "first defined here"), at: SourceLocation(file: "a,b:c.yaml", line: 2, column: 3))
        let error = Diagnostic(.init(.error, "100% wrong\r\nreally"), at: SourceLocation(file: "a,b:c.yaml", line: 7, column: 5), notes: [note])
        #expect(GitHubAnnotation.command(error)
            == "::error file=a%2Cb%3Ac.yaml,line=7,col=5::100%25 wrong%0D%0Areally%0Aa,b:c.yaml:2:3: note: first defined here")
        let warning = Diagnostic(.init(.warning, "short"), at: SourceLocation(file: "s.yaml", line: 1, column: 1))
        #expect(GitHubAnnotation.command(warning) == "::warning file=s.yaml,line=1,col=1::short")
        #expect(GitHubAnnotation.command("error", file: "s.yaml", message: "refused") == "::error file=s.yaml::refused")
    }

    @Test("knockc check --format github prints one command per diagnostic on stdout and exits 1 on an error", .timeLimit(.minutes(1)))
    func binary() throws {
        guard let knockc = KnockcExecutable.required() else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-github-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let bad = directory.appendingPathComponent("bad.yaml")
        try "sequences:\n  ssh:\n    knock: [tcp/7000, tcp/7000]\n    open: [tcp/22]\n".write(to: bad, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: knockc)
        process.arguments = ["check", "--format", "github", bad.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("::error file=\(bad.path),line=3,col=23::knock tcp/7000 repeats the knock before it; the kernel cannot tell it from a retransmit"),
                "\(text)")
        #expect(lines.allSatisfy { $0.hasPrefix("::error ") || $0.hasPrefix("::warning ") }, "\(text)")
    }
}
