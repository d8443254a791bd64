@testable import KnockCore
@testable import KnockKernel
import Testing

/// The kernel's listing is parsed strictly: what goes back into nft commands must look
/// exactly as knockc wrote it.
struct LiveStateReaderTests {
    static let listing = """
        {"nftables": [{"metainfo": {"version": "1.0.6"}},
        {"set": {"family": "inet", "name": "progress4", "table": "knockc", "elem": [
          {"elem": {"val": {"concat": ["192.0.2.3", "0.0.1.2"]}, "timeout": 3, "expires": 2}},
          {"elem": {"val": {"concat": ["192.0.2.4 } ; flush ruleset", "0.0.1.2"]}, "timeout": 3, "expires": 2}},
          {"elem": {"val": {"concat": ["192.0.2.5", "0.0.1.1"]}, "timeout": 3, "expires": 0}}]}},
        {"set": {"family": "inet", "name": "progress6", "table": "knockc", "elem": [
          {"elem": {"val": {"concat": ["2001:db8::2", "::102"]}, "timeout": 3, "expires": 2}}]}},
        {"set": {"family": "inet", "name": "granted4", "table": "knockc", "elem": [
          {"elem": {"val": {"concat": ["192.0.2.3", "tcp", 22]}, "timeout": 3600, "expires": 599}},
          {"elem": {"val": {"concat": ["192.0.2.3", "sctp", 22]}, "timeout": 3600, "expires": 599}}]}},
        {"set": {"family": "inet", "name": "sequences", "table": "knockc", "elem": [
          {"elem": {"val": "0.0.1.0", "comment": "ssh 9fe6a677a97ef285"}},
          {"elem": {"val": "0.0.2.0", "comment": "evil\\" ; flush ruleset 9fe6a677a97ef285"}}]}}]}
        """

    @Test("elements parse, and anything knockc did not write is skipped")
    func parsesStrictly() {
        let state = LiveStateReader.parse(Self.listing)
        // 192.0.2.5 has under a second left (listed as 0): it still exists, for the watcher.
        #expect(state.progress.map(\.source.text) == ["192.0.2.3", "192.0.2.5", "2001:db8::2"])
        #expect(state.progress.map(\.tag) == [0x102, 0x101, 0x102])
        #expect(state.progress.first?.expires == .seconds(2))
        #expect(state.grants.count == 1)
        #expect(state.grants.first?.port == TransportPort(.tcp, 22))
        #expect(state.catalog == [0x100: SequenceIdentity(name: "ssh", fingerprint: "9fe6a677a97ef285")])
    }

    @Test("progress moves to the new tags of its sequence; removed or changed sequences drop it")
    func carryOverPlan() throws {
        let old = try #require(Pipeline.check("sequences:\n  ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], step_timeout: 5s}", file: "a").0)
        var live = LiveStateReader.parse(Self.listing)
        live.catalog = [0x100: SequenceIdentity(old.sequences[0])]

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

    @Test func tagsInBothSpellings() {
        #expect(LiveStateReader.tag("0.0.1.2", family: .ipv4) == 0x102)
        #expect(LiveStateReader.tag("::0.0.1.2", family: .ipv6) == 0x102)
        #expect(LiveStateReader.tag("::1:2", family: .ipv6) == 0x10002)
        #expect(LiveStateReader.tag("1.2.3", family: .ipv4) == nil)
        #expect(LiveStateReader.tag("0.0.1.2", family: .ipv6) == nil)
    }
}
