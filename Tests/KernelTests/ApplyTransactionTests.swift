import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct ApplyTransactionTests {
    @Test("a ruleset the kernel refuses leaves the live ruleset byte-identical and names the line")
    func refusedApplyChangesNothing() throws {
        try Testbed.with { bed in
            let spec = try #require(Pipeline.check(try String(contentsOfFile: examplePath("ssh.yaml"), encoding: .utf8), file: "ssh.yaml").0)
            try bed.applyScript(Pipeline.nftScript(for: spec))
            let before = try bed.serverRuleset()
            #expect(before.contains("table inet knockc"))

            // The parser accepts this; only the kernel finds that the chain does not exist.
            let script = Pipeline.nftScript(for: spec)
            let lines = script.split(separator: "\n", omittingEmptySubsequences: false)
            let refusedIndex = try #require(lines.firstIndex { $0.contains(": jump knock4_tcp_8000") })
            let broken = script.replacingOccurrences(of: ": jump knock4_tcp_8000,", with: ": jump knock4_tcp_8001,")
            let error = try #require(throws: NftError.self) { try bed.applyScript(broken) }

            #expect(error.message.contains(":\(refusedIndex + 1):"), "\(error.message)")
            #expect(error.message.contains("knock4_tcp_8001"))
            #expect(try bed.serverRuleset() == before)
        }
    }

    @Test("applying twice gives the same ruleset, and other tables are left alone")
    func reapplyIsIdempotentAndScoped() throws {
        try Testbed.with { bed in
            try runProgram(["ip", "netns", "exec", bed.server.name, "nft", "add table inet admin; add chain inet admin keep"])
            let spec = try #require(Pipeline.check(try String(contentsOfFile: examplePath("ssh.yaml"), encoding: .utf8), file: "ssh.yaml").0)
            try bed.applyScript(Pipeline.nftScript(for: spec))
            let first = try bed.serverRuleset()
            try bed.applyScript(Pipeline.nftScript(for: spec))
            #expect(try bed.serverRuleset() == first)
            #expect(first.contains("table inet admin"))
        }
    }
}

/// A file in the repository's `examples/` folder.
func examplePath(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples").appendingPathComponent(name).path
}
