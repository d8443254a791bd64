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
        #expect(script == golden, "\(name): the compiled ruleset differs from golden.nft")
    }

    @Test func thereAreGoldenCases() {
        #expect(Self.cases.count >= 3)
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
