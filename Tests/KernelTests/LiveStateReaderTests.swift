import Foundation
import Glibc
@testable import KnockCore
@testable import KnockKernel
import Testing

/// The live state is read strictly, through `TableLayout`: what goes back into nft commands
/// must look exactly as knockc wrote it.
@Suite(.enabled(if: getuid() == 0, "needs root to create network namespaces"))
struct LiveStateReaderTests {
    @Test("elements read back with their times in milliseconds; anything knockc did not write is skipped")
    func readsStrictly() throws {
        try Testbed.with { bed in
            try bed.apply(KnockSemanticsTests.spec)
            let spec = try #require(Pipeline.check(KnockSemanticsTests.spec, file: "spec.yaml").0)
            let tag = KnockMachine.all(in: spec)[0].tags.tag(2)
            let added = ContinuousClock.now
            try bed.applyScript("""
                add element inet knockc progress4 { 192.0.2.3 . \(IPFamily.ipv4.address(tag)) timeout 3s expires 2500ms }
                add element inet knockc progress6 { 2001:db8::2 . \(IPFamily.ipv6.address(tag)) timeout 3s expires 2s }
                add element inet knockc progress6 { 2001:db8::3 . 1::102 timeout 3s expires 2s }
                add element inet knockc granted4 { 192.0.2.3 . 6 . 22 timeout 1h expires 599s, 192.0.2.3 . 132 . 22 timeout 1h expires 599s }
                add element inet knockc sequences { 0.0.9.0 . 0.0.9.2 comment "Evil; flush ruleset 9fe6a677a97ef285" }

                """)
            let state = try #require(try bed.server.perform { try LiveStateReader().read(table: "knockc") })
            let elapsed = added.duration(to: .now).components
            let elapsedMilliseconds = elapsed.seconds * 1000 + elapsed.attoseconds / 1_000_000_000_000_000 + 1
            // The IPv6 progress element whose tag is not ::a.b.c.d is not knockc's.
            try #require(state.progress.map(\.source.text) == ["192.0.2.3", "2001:db8::2"])
            #expect(state.progress.map(\.tag) == [tag, tag])
            #expect(state.progress.map(\.sequence) == ["ssh", "ssh"])
            #expect(state.progress.map(\.knocks) == [3, 3])
            // Milliseconds as the kernel counts them down (in jiffies): 2500 less the time since the add,
            // however long a loaded machine took.
            #expect((2500 - elapsedMilliseconds - 10...2500).contains(state.progress[0].expires.milliseconds),
                    "\(state.progress[0].expires.milliseconds) ms left after \(elapsedMilliseconds) ms")
            // SCTP is no protocol knockc guards.
            #expect(state.grants.map(\.port) == [TransportPort(.tcp, 22)])
            #expect(state.grants.map(\.sequences) == [["ssh"]])
            #expect(state.catalog.entries.values.map(\.identity.name) == ["ssh"], "the evil entry's comment is no identity")
            #expect(try bed.server.perform { try LiveStateReader().read(table: "nosuchtable") } == nil)
        }
    }

    @Test("the kernel's set definitions and catalog read back as lowering declared them")
    func definitionsAndCatalog() throws {
        try Testbed.with { bed in
            let yaml = """
                sequences:
                  ssh: {knock: [tcp/7000, udp/9000], open: [tcp/22, udp/53], close: [udp/9100, tcp/9200]}
                  v4only: {knock: [tcp/7001], open: [tcp/2222], from: [192.0.2.0/24]}
                limits: { wrong_knocks: 2/minute, ban_for: 1m }
                """
            try bed.apply(yaml)
            let spec = try #require(Pipeline.check(yaml, file: "spec.yaml").0)
            let table = RulesetLowering.lower(spec).table
            let (definitions, catalog) = try bed.server.perform {
                let reader = try LiveStateReader()
                return (try reader.definitions(table: "knockc"), try reader.catalog(table: "knockc"))
            }
            let live = try #require(definitions)
            for set in table.sets {
                guard let wanted = SetDefinition(set) else { continue }
                #expect(live.sets[set.name] == wanted, "\(set.name)")
            }
            #expect(Set(live.chains) == Set(table.chains.map(\.name)))
            #expect(Set(live.counters) == Set(table.counters.map(\.name)))
            #expect(live.sets["dispatch"]?.isMap == true)
            #expect(live.foreignObjects.isEmpty)
            #expect(catalog == TableCatalog(spec))
            // The first of ssh's close knocks: progress on its close machine, named so.
            try bed.client.knock(Testbed.serverV4, [.udp(9100)])
            let progress = try bed.server.perform { try StatusReader().readStatus(table: "knockc")?.progress ?? [] }
            #expect(progress.map { [$0.sequence ?? "-", "\($0.closing)", "\($0.stage)"] } == [["ssh", "true", "1"]])
        }
    }
}
