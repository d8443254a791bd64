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
                // The kernel grows a hash set's table in the background after a batch of
                // inserts, and a walk that crosses the resize meets some elements twice (seen
                // once in CI on a loaded machine); a later dump, a few at most, is whole.
                for _ in 0..<5 {
                    keys = []
                    count = 0
                    expiries = []
                    _ = try dump.forEachElement(table: "knockc", set: "granted4") { element in
                        count += 1
                        keys.insert(Array(element.key))
                        if let expires = element.expires { expiries.append(expires) }
                    }
                    if count == keys.count { break }
                }
                let present: [UInt8] = [198, 18, 0, 1, 6, 0, 0, 0, 0, 22, 0, 0]
                let absent: [UInt8] = [198, 18, 0, 1, 6, 0, 0, 0, 0, 23, 0, 0]
                return (count, keys.count, expiries,
                        try dump.element(table: "knockc", set: "granted4", key: present),
                        try dump.containsElement(table: "knockc", set: "granted4", key: absent))
            }
            #expect(count == 3000 && distinct == 3000)
            #expect(expiries.allSatisfy { (1...3_570_500).contains($0) } && expiries.contains { $0 % 1000 != 0 })
            #expect(found?.timeout == 3_600_000 && (3_500_000...3_570_500).contains(found?.expires ?? 0))
            #expect(!missing)
        }
    }

    @Test("a lookup does not find an element whose time has run out")
    func expiredLookup() throws {
        try Testbed.with { bed in
            try bed.apply(KnockSemanticsTests.spec)
            try bed.applyScript("add element inet knockc granted4 { 198.18.0.1 . 6 . 22 timeout 1h expires 20ms }\n")
            Thread.sleep(forTimeInterval: 0.1)
            let found = try bed.server.perform {
                try NetlinkDump().containsElement(table: "knockc", set: "granted4", key: [198, 18, 0, 1, 6, 0, 0, 0, 0, 22, 0, 0])
            }
            #expect(!found)
        }
    }

    @Test("a transaction's element changes are announced with their keys, then its generation; other changes to the table as such; other tables' not at all")
    func transactionNotices() throws {
        try Testbed.with { bed in
            try bed.apply(KnockSemanticsTests.spec)
            let box = try bed.server.perform { NoticesBox(try TransactionNotices(table: "knockc")) }
            func heard() throws -> [String] {
                try bed.server.perform {
                    var heard: [String] = []
                    let complete = try box.notices.drain { notice in
                        switch notice {
                        case .generation: heard.append("generation")
                        case .element(let set, let key): heard.append("\(set) \(Array(key))")
                        case .other: heard.append("other")
                        }
                    }
                    return complete ? heard : ["lost"]
                }
            }
            try bed.applyScript("""
                add element inet knockc granted4 { 198.18.0.1 . 6 . 22 timeout 1h }
                delete element inet knockc granted4 { 198.18.0.1 . 6 . 22 }

                """)
            let key = "[198, 18, 0, 1, 6, 0, 0, 0, 0, 22, 0, 0]"
            #expect(try heard() == ["granted4 \(key)", "granted4 \(key)", "generation"])
            try bed.applyScript("add chain inet knockc extra\n")
            #expect(try heard() == ["other", "generation"])
            try bed.applyScript("add table inet other\nadd set inet other granted4 { type ipv4_addr; }\nadd element inet other granted4 { 192.0.2.9 }\n")
            #expect(try heard() == ["generation"])
            #expect(try heard() == [])
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

/// Hands the listener to the namespace's thread, where its socket was opened.
private final class NoticesBox: @unchecked Sendable {
    let notices: TransactionNotices
    init(_ notices: TransactionNotices) { self.notices = notices }
}
