import Foundation
import Glibc
import KnockCore
@testable import KnockKernel
import Testing

/// The watcher's and apply's read-only netlink path, against the kernel's own answers.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct NetlinkDumpTests {
    @Test("a dump of several batches lists every element once, with times in milliseconds; a lookup finds one element")
    func dumpAndLookup() throws {
        try Testbed.with { bed in
            try bed.apply(KnockSemanticsTests.spec)
            // 3,000 grants: far more than one netlink batch holds. They must not expire during
            // the dump: a set that changes between batches is dumped with gaps and repeats.
            let elements = (0..<3000).map { "198.18.\($0 / 250).\($0 % 250 + 1) . 6 . 22 timeout 1h expires 59m30s500ms" }
            try bed.applyScript("add element inet knockc granted4 { \(elements.joined(separator: ", ")) }\n")
            let (count, distinct, expiries, found, missing) = try bed.server.perform {
                let dump = try NetlinkDump()
                var keys: Set<[UInt8]> = []
                var count = 0
                var expiries: [UInt64] = []
                _ = try dump.forEachElement(table: "knockc", set: "granted4") { element in
                    count += 1
                    keys.insert(Array(element.key))
                    if let expires = element.expires { expiries.append(expires) }
                }
                let present: [UInt8] = [198, 18, 0, 1, 6, 0, 0, 0, 0, 22, 0, 0]
                let absent: [UInt8] = [198, 18, 0, 1, 6, 0, 0, 0, 0, 23, 0, 0]
                return (count, keys.count, expiries,
                        try dump.containsElement(table: "knockc", set: "granted4", key: present),
                        try dump.containsElement(table: "knockc", set: "granted4", key: absent))
            }
            #expect(count == 3000 && distinct == 3000)
            #expect(expiries.allSatisfy { (1...3_570_500).contains($0) } && expiries.contains { $0 % 1000 != 0 })
            #expect(found)
            #expect(!missing)
        }
    }

    @Test("counters come with their names, and a missing table has none")
    func counters() throws {
        try Testbed.with { bed in
            try bed.apply(KnockSemanticsTests.spec)
            let (counters, absent) = try bed.server.perform {
                let dump = try NetlinkDump()
                return (try dump.counters(table: "knockc").mapValues(\.packets), try dump.counters(table: "nosuchtable").count)
            }
            #expect(counters == ["grants_ssh": 0, "wrong_knocks": 0, "state_changes": 0])
            #expect(absent == 0)
        }
    }
}
