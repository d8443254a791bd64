import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
import Testing

/// The live state is read strictly: what goes back into nft commands must look exactly as
/// knockc wrote it.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct LiveStateReaderTests {
    @Test("elements read back with their times in milliseconds; anything knockc did not write is skipped")
    func readsStrictly() throws {
        try Testbed.with { bed in
            try bed.apply(KnockSemanticsTests.spec)
            let added = ContinuousClock.now
            try bed.applyScript("""
                add element inet knockc progress4 { 192.0.2.3 . 0.0.1.2 timeout 3s expires 2500ms }
                add element inet knockc progress6 { 2001:db8::2 . ::0.0.1.2 timeout 3s expires 2s }
                add element inet knockc progress6 { 2001:db8::3 . 1::102 timeout 3s expires 2s }
                add element inet knockc granted4 { 192.0.2.3 . 6 . 22 timeout 1h expires 599s, 192.0.2.3 . 132 . 22 timeout 1h expires 599s }
                add element inet knockc sequences { 0.0.9.0 comment "Evil; flush ruleset 9fe6a677a97ef285" }

                """)
            let state = try #require(try bed.server.perform { try LiveStateReader().read(table: "knockc") })
            let elapsed = added.duration(to: .now).components
            let elapsedMilliseconds = elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000 + 1
            // The IPv6 progress element whose tag is not ::0.0.S.T is not knockc's.
            try #require(state.progress.map(\.source.text) == ["192.0.2.3", "2001:db8::2"])
            #expect(state.progress.map(\.tag) == [0x102, 0x102])
            // Milliseconds as the kernel counts them down (in jiffies): 2500 less the time since the add,
            // however long a loaded machine took.
            #expect((2500 - elapsedMilliseconds - 10...2500).contains(state.progress[0].expires.milliseconds),
                    "\(state.progress[0].expires.milliseconds) ms left after \(elapsedMilliseconds) ms")
            // SCTP is no protocol knockc guards.
            #expect(state.grants.map(\.port) == [TransportPort(.tcp, 22)])
            #expect(state.catalog.values.map(\.name) == ["ssh"])
            #expect(try bed.server.perform { try LiveStateReader().read(table: "nosuchtable") } == nil)
        }
    }

    @Test("progress moves to the new tags of its sequence; removed or changed sequences drop it")
    func carryOverPlan() throws {
        let old = try #require(Pipeline.check("sequences:\n  ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], step_timeout: 5s}", file: "a").0)
        func address(_ text: String) -> IPAddress { IPAddress(text, family: .ipv4)! }
        let live = LiveState(
            catalog: [0x100: SequenceIdentity(old.sequences[0])],
            progress: [ProgressElement(family: .ipv4, source: address("192.0.2.3"), tag: 0x102, expires: .seconds(2)),
                       ProgressElement(family: .ipv4, source: address("192.0.2.5"), tag: 0x101, expires: .seconds(0)),
                       ProgressElement(family: .ipv6, source: IPAddress("2001:db8::2", family: .ipv6)!, tag: 0x102, expires: .seconds(2))],
            grants: [GrantElement(family: .ipv4, source: address("192.0.2.3"), port: TransportPort(.tcp, 22),
                                  timeout: .seconds(3600), expires: .seconds(599))])

        let added = try #require(Pipeline.check("""
            sequences:
              aaa: {knock: [udp/6000, tcp/5000, udp/4000], open: [tcp/2222]}
              ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], step_timeout: 1s}
            """, file: "b").0)
        let plan = StateCarryOver.plan(live, into: added)
        // The element about to expire is not carried: nft cannot add one that expires at once.
        #expect(plan.progress.map(\.tag) == [0x202, 0x202])
        #expect(!plan.progress.contains { $0.source.text == "192.0.2.5" })
        #expect(plan.progress.allSatisfy { $0.expires == .seconds(1) })
        #expect(plan.grants.count == 1)
        #expect(plan.commands(table: "knockc").contains("add element inet knockc progress4 { 192.0.2.3 . 0.0.2.2 timeout 1s expires 1s }"))
        #expect(plan.commands(table: "knockc").contains("add element inet knockc granted4 { 192.0.2.3 . 6 . 22 timeout 1h expires 599s }"))

        let changed = try #require(Pipeline.check("sequences:\n  ssh: {knock: [tcp/7000, udp/9001, tcp/8000], open: [tcp/22]}", file: "c").0)
        #expect(StateCarryOver.plan(live, into: changed).progress.isEmpty)
        #expect(StateCarryOver.plan(live, into: changed).droppedProgress == 2)
    }
}
