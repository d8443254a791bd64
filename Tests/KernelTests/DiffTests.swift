import Foundation
import Glibc
import KnockCore
@testable import KnockTestSupport
import Testing

/// `diff` reads the live table's definitions without its state: nothing on disk, and no work
/// in proportion to the elements that outsiders can make the kernel hold.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct DiffTests {
    /// Fills the server's progress4 set with `count` elements from 198.18.0.0/15.
    func fillProgress(_ bed: Testbed, count: Int) throws {
        var elements: [String] = []
        elements.reserveCapacity(count)
        for index in 0..<count {
            elements.append("198.\(18 + index >> 16).\((index >> 8) & 255).\(index & 255) . 0.0.1.1 timeout 1h")
        }
        try bed.applyScript("add element inet knockc progress4 { \(elements.joined(separator: ", ")) }\n")
    }

    @Test("diff writes nothing to /tmp, so no local user can read or plant the listings")
    func diffWritesNoFiles() throws {
        try Testbed.with { bed in
            try bed.apply(try String(contentsOfFile: CommandLineTests.ssh, encoding: .utf8))
            // /tmp is an empty file system of its own in a mount namespace of its own. The
            // build and the spec may live under /tmp (a CI clone), so copies run from /run.
            let copies = "/run/knockc-test-\(getpid())-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: copies) }
            try FileManager.default.createDirectory(atPath: copies, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: CommandLineTests.knockc, toPath: copies + "/knockc")
            try FileManager.default.copyItem(atPath: CommandLineTests.several, toPath: copies + "/several.yaml")
            let result = try runProgram(["ip", "netns", "exec", bed.server.name, "unshare", "-m", "sh", "-c", """
                mount -t tmpfs tmpfs /tmp || exit 99
                "$1" diff "$2"; echo "status=$?"
                ls -A /tmp
                """, "sh", copies + "/knockc", copies + "/several.yaml"], allowFailure: true)
            #expect(result.output.contains("\n+\t\t\t") && result.output.contains(" comment \"admin-web "), "\(result.output)\(result.error)")
            let lines = result.output.split(separator: "\n")
            let tail = lines.drop(while: { line in !line.hasPrefix("status=") })
            #expect(tail.first == "status=1", "\(result.output)")
            #expect(tail.dropFirst().isEmpty, "left in /tmp: \(tail.dropFirst())")
        }
    }

    @Test("diff and apply --confirm do not read the dynamic sets: 65,536 knocks in progress neither show nor slow them")
    func diffIgnoresLiveElements() throws {
        try Testbed.with { bed in
            let run = "/run/knockc-test-\(getpid())-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: run) }
            let environment = ["env", "KNOCKC_RUN_DIR=\(run)"]
            let applied = try runProgram(["ip", "netns", "exec", bed.server.name] + environment + [CommandLineTests.knockc, "apply", CommandLineTests.ssh], allowFailure: true)
            try #require(applied.status == 0, "\(applied.error)")
            try fillProgress(bed, count: 65_536)

            var started = Date()
            let same = try runProgram(["ip", "netns", "exec", bed.server.name, CommandLineTests.knockc, "diff", CommandLineTests.ssh], allowFailure: true)
            let diffSeconds = Date().timeIntervalSince(started)
            #expect(same.status == 0, "\(same.output)\(same.error)")
            #expect(same.output.isEmpty)

            started = Date()
            let confirm = try runProgram(["ip", "netns", "exec", bed.server.name] + environment
                + [CommandLineTests.knockc, "apply", CommandLineTests.several, "--confirm", "1s"], allowFailure: true)
            let confirmSeconds = Date().timeIntervalSince(started)
            #expect(confirm.status == 5, "\(confirm.error)")
            print("diff with 65,536 live elements: \(String(format: "%.2f", diffSeconds)) s; apply --confirm 1s: \(String(format: "%.2f", confirmSeconds)) s")
        }
    }
}
