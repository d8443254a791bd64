import Foundation
@testable import KnockCore
import Testing

/// One folder per scenario under `Golden/`, numbered from basic to advanced: `spec.yaml` and
/// the `golden.nft` it must compile to. `KNOCKC_RECORD_GOLDEN=1 swift test` rewrites the
/// goldens and fails, so that every change to them is read before it is committed.
struct GoldenTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static var cases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    /// How many scenarios there are now; a folder removed by mistake must fail a test.
    static let scenarioCount = 8

    @Test("spec compiles to its golden nft text", arguments: cases)
    func golden(_ name: String) throws {
        let directory = Self.folder.appendingPathComponent(name)
        let yaml = try String(contentsOf: directory.appendingPathComponent("spec.yaml"), encoding: .utf8)
        let (spec, diagnostics) = Pipeline.check(yaml, file: "spec.yaml")
        let compiled = try #require(spec, "\(diagnostics)")
        let script = Pipeline.nftScript(for: compiled)
        let goldenURL = directory.appendingPathComponent("golden.nft")

        if ProcessInfo.processInfo.environment["KNOCKC_RECORD_GOLDEN"] == "1" {
            try script.write(to: goldenURL, atomically: true, encoding: .utf8)
            Issue.record("recorded \(name)/golden.nft; read the diff, then run the tests without KNOCKC_RECORD_GOLDEN")
            return
        }
        let golden = try String(contentsOf: goldenURL, encoding: .utf8)
        if script != golden {
            let diff = try Self.unifiedDiff(golden, script, labels: ("\(name)/golden.nft", "compiled"))
            Issue.record("\(name): the compiled ruleset differs from golden.nft\n\(diff)")
        }
    }

    /// `diff -u` of two texts, so that a failing golden shows the lines that changed rather
    /// than two whole rulesets.
    static func unifiedDiff(_ expected: String, _ actual: String, labels: (String, String)) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("knockc-golden-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let expectedURL = directory.appendingPathComponent("expected")
        let actualURL = directory.appendingPathComponent("actual")
        try expected.write(to: expectedURL, atomically: false, encoding: .utf8)
        try actual.write(to: actualURL, atomically: false, encoding: .utf8)

        let diff = Process()
        diff.executableURL = URL(fileURLWithPath: "/usr/bin/diff")
        diff.arguments = ["-u", "--label", labels.0, "--label", labels.1, expectedURL.path, actualURL.path]
        let output = Pipe()
        diff.standardOutput = output
        try diff.run()
        // Read before waiting: a diff larger than the pipe's buffer would otherwise block.
        let text = output.fileHandleForReading.readDataToEndOfFile()
        diff.waitUntilExit()
        return String(decoding: text, as: UTF8.self)
    }

    @Test("a golden failure shows a unified diff of golden and compiled text")
    func unifiedDiffOfGoldenAndCompiled() throws {
        let diff = try Self.unifiedDiff("table\n  a\n  b\n", "table\n  a\n  c\n", labels: ("01-x/golden.nft", "compiled"))
        #expect(diff == """
            --- 01-x/golden.nft
            +++ compiled
            @@ -1,3 +1,3 @@
             table
               a
            -  b
            +  c

            """)
        #expect(try Self.unifiedDiff("same\n", "same\n", labels: ("a", "b")).isEmpty)
    }

    /// Every folder counts: they are numbered 01, 02, ... with no gap, there are at least as many
    /// as `scenarioCount`, and each holds its spec and its golden. So removing or renaming one,
    /// or failing to read the folder, fails here rather than running fewer cases.
    @Test func everyGoldenFolderIsACase() throws {
        let cases = Self.cases
        #expect(cases.count >= Self.scenarioCount, "found \(cases.count) golden folders: \(cases)")
        for (index, name) in cases.enumerated() {
            #expect(name.hasPrefix(String(format: "%02d-", index + 1)), "golden folder \(name) is not number \(index + 1)")
            let directory = Self.folder.appendingPathComponent(name)
            for file in ["spec.yaml", "golden.nft"] {
                #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent(file).path), "\(name) has no \(file)")
            }
        }
    }

    @Test("compiling is deterministic and ignores the order of sequences in the spec")
    func deterministic() throws {
        let forward = "sequences:\n  a: {knock: [tcp/1, udp/3, tcp/2], open: [tcp/22]}\n  b: {knock: [tcp/5, udp/3, tcp/4], open: [tcp/80]}"
        let backward = "sequences:\n  b: {knock: [tcp/5, udp/3, tcp/4], open: [tcp/80]}\n  a: {knock: [tcp/1, udp/3, tcp/2], open: [tcp/22]}"
        let one = Pipeline.nftScript(for: try #require(Pipeline.check(forward, file: "f").0))
        let two = Pipeline.nftScript(for: try #require(Pipeline.check(backward, file: "b").0))
        #expect(one == two)
    }
}
