import Foundation
import Glibc
import KnockCore
import KnockKernel
@testable import KnockTestSupport
import Testing

/// `RulesetDiff` called as a library: the unified diff of two texts needs no kernel; the diff
/// of a live table against a spec runs in a test namespace and a throwaway one.
struct RulesetDiffTests {
    @Test("two equal texts have no diff")
    func equalTextsAreNil() throws {
        #expect(try RulesetDiff.unified("table inet knockc {\n}", labelled: "old", "table inet knockc {\n}", labelled: "new") == nil)
    }

    @Test("a diff is unified, carries both labels, and marks the removed and the added line")
    func differentTexts() throws {
        let difference = try #require(try RulesetDiff.unified("a\nb\nc", labelled: "live table inet knockc", "a\nB\nc", labelled: "compiled spec.yaml"))
        #expect(difference == """
            --- live table inet knockc
            +++ compiled spec.yaml
            @@ -1,3 +1,3 @@
             a
            -b
            +B
             c

            """)
    }

    @Test("an empty old side (no live table) shows every line as new")
    func emptyOldSide() throws {
        let difference = try #require(try RulesetDiff.unified("", labelled: "old", "x\ny", labelled: "new"))
        #expect(difference.hasSuffix("@@ -0,0 +1,2 @@\n+x\n+y\n"), "\(difference)")
    }
}

@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct RulesetDiffKernelTests {
    static let namespace = ThrowawayNamespace(knockc: CommandLineTests.knockc)

    @Test("the live table against a spec's compiled table: nil for the spec it came from, the new lines for another")
    func liveAgainstCompiled() throws {
        try Testbed.with { bed in
            try bed.apply(try String(contentsOfFile: CommandLineTests.ssh, encoding: .utf8))
            let (same, changed) = try bed.server.perform {
                let diff = RulesetDiff(namespace: Self.namespace)
                return (try diff.difference(table: "knockc", specPath: CommandLineTests.ssh),
                        try diff.difference(table: "knockc", specPath: CommandLineTests.several))
            }
            #expect(same == nil)
            let difference = try #require(changed)
            #expect(difference.hasPrefix("--- live table inet knockc\n+++ compiled \(CommandLineTests.several)\n"))
            #expect(difference.contains("\n+\t\t\t") && difference.contains(" comment \"admin-web "))
        }
    }

    @Test("a knockc that cannot run in the throwaway namespace is a namespace failure, not the kernel's verdict")
    func unrunnableKnockcIsNoVerdict() throws {
        try Testbed.with { bed in
            let missing = "/nonexistent/knockc-\(getpid())"
            let failure = try bed.server.perform { () -> RulesetDiff.Failure? in
                do throws(RulesetDiff.Failure) {
                    _ = try RulesetDiff(namespace: ThrowawayNamespace(knockc: missing)).difference(table: "knockc", specPath: CommandLineTests.ssh)
                    return nil
                } catch {
                    return error
                }
            }
            guard case .namespaceUnavailable(let setup) = failure else {
                Issue.record("expected a namespace failure, got \(String(describing: failure))")
                return
            }
            #expect(setup.reason.hasPrefix("unshare: ") && setup.reason.contains(missing), "\(setup.reason)")
        }
    }
}
