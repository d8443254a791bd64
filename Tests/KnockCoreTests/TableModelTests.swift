import Foundation
@testable import KnockCore
import Testing

/// The live-table model on values: key codecs, the catalog, stable stage tags and the plan of
/// an in-place apply. The kernel tests prove the same against real sets.
struct TableLayoutTests {
    let v4 = IPAddress("192.0.2.3", family: .ipv4)!
    let v6 = IPAddress("2001:db8::2", family: .ipv6)!

    @Test("every state set's key encodes to the kernel's padded bytes and decodes back")
    func roundTrip() throws {
        let grant = Grant(source: v6, port: TransportPort(.udp, 53), timeout: .seconds(60), expires: .seconds(5))
        let bytes = try #require(grant.set.encode(grant.key))
        #expect(bytes == v6.bytes + [17, 0, 0, 0, 0, 53, 0, 0])
        let decoded = try #require(bytes.withUnsafeBytes { grant.set.decode($0) })
        #expect(Grant(key: decoded, timeout: .seconds(60), expires: .seconds(5)) == grant)

        let progress = SequenceProgress(source: v6, tag: 0xab_cd02, expires: .seconds(1))
        let progressBytes = try #require(progress.set.encode(progress.key))
        #expect(progressBytes.count == 32 && progressBytes.suffix(4) == [0x00, 0xab, 0xcd, 0x02])
        #expect(progress.set.name == "progress6")
        #expect(SequenceProgress(source: v4, tag: 0x101, expires: .seconds(1)).set.name == "started4")
        let back = try #require(progressBytes.withUnsafeBytes { progress.set.decode($0) })
        #expect(SequenceProgress(key: back, expires: .seconds(1)) == progress)

        let opening: [Value] = [.tag(0x1200, .ipv4), .family(.ipv6), .proto(.tcp), .port(22)]
        let openingBytes = try #require(TableLayout.openings.encode(opening))
        #expect(openingBytes == [0, 0, 0x12, 0, 10, 0, 0, 0, 6, 0, 0, 0, 0, 22, 0, 0])
        #expect(openingBytes.withUnsafeBytes { TableLayout.openings.decode($0) } == opening)
    }

    @Test("keys knockc would not write decode to nothing")
    func strictDecoding() {
        func decode(_ layout: SetLayout, _ bytes: [UInt8]) -> [Value]? { bytes.withUnsafeBytes { layout.decode($0) } }
        let granted = TableLayout.granted(.ipv4)
        #expect(decode(granted, [192, 0, 2, 3, 6, 0, 0, 0, 0, 22, 0, 0]) != nil)
        #expect(decode(granted, [192, 0, 2, 3, 132, 0, 0, 0, 0, 22, 0, 0]) == nil, "SCTP is no protocol knockc guards")
        #expect(decode(granted, [192, 0, 2, 3, 6, 0, 0, 0, 0, 0, 0, 0]) == nil, "port 0")
        #expect(decode(granted, [192, 0, 2, 3, 6, 0, 0, 0, 0, 22]) == nil, "short key")
        let tagOf6 = [UInt8](repeating: 0, count: 11) + [1, 0, 0, 1, 2]
        #expect(decode(TableLayout.progress(.ipv6), v6.bytes + tagOf6) == nil, "an IPv6 tag is ::a.b.c.d")
    }

    @Test("a granted key decodes straight into the grant's ID, and refuses what `decode` refuses")
    func grantIDs() {
        func id(_ layout: SetLayout, _ bytes: [UInt8]) -> Grant.ID? { bytes.withUnsafeBytes { layout.decodeGrant($0) } }
        let granted = TableLayout.granted(.ipv4)
        #expect(id(granted, [192, 0, 2, 3, 17, 0, 0, 0, 0, 53, 0, 0]) == Grant.ID(source: v4, port: TransportPort(.udp, 53)))
        #expect(id(TableLayout.granted(.ipv6), v6.bytes + [6, 0, 0, 0, 0, 22, 0, 0]) == Grant.ID(source: v6, port: TransportPort(.tcp, 22)))
        #expect(id(granted, [192, 0, 2, 3, 132, 0, 0, 0, 0, 22, 0, 0]) == nil)
        #expect(id(granted, [192, 0, 2, 3, 6, 0, 0, 0, 0, 0, 0, 0]) == nil)
        #expect(id(granted, [192, 0, 2, 3, 6, 0, 0, 0, 0, 22]) == nil)
        #expect(id(TableLayout.banned(.ipv4), [192, 0, 2, 3]) == nil, "not a grant's key")
    }

    @Test("addresses keep their bytes, print canonically and sort numerically")
    func addresses() throws {
        #expect(IPAddress("2001:DB8:0::7", family: .ipv6)?.text == "2001:db8::7")
        #expect(IPAddress("192.0.2.1/24", family: .ipv4) == nil)
        #expect(IPAddress("192.0.2.1", family: .ipv6) == nil)
        #expect(IPAddress.parse("::ffff:192.0.2.1")?.family == .ipv6)
        let sorted = ["192.0.2.10", "2001:db8::1", "192.0.2.9"].compactMap(IPAddress.parse).sorted()
        #expect(sorted.map(\.text) == ["192.0.2.9", "192.0.2.10", "2001:db8::1"])
        let data = try JSONEncoder().encode([v4])
        #expect(String(decoding: data, as: UTF8.self) == #"["192.0.2.3"]"#)
    }
}

struct StableTagTests {
    func spec(_ yaml: String) throws -> KnockSpec { try #require(Pipeline.check(yaml, file: "spec.yaml").0) }

    @Test("a sequence keeps its stage tags when others are added, removed or edited")
    func tagsFollowIdentity() throws {
        let before = try spec("""
            sequences:
              ssh: {knock: [tcp/7000, udp/9000], open: [tcp/22]}
              web: {knock: [tcp/7001, udp/9001], open: [tcp/443], close: [udp/9100]}
            """)
        let after = try spec("""
            sequences:
              aaa: {knock: [tcp/6000], open: [tcp/2222]}
              ssh: {knock: [tcp/7000, udp/9000], open: [tcp/22]}
              web: {knock: [tcp/7001, udp/9002], open: [tcp/443], close: [udp/9100]}
            """)
        func tags(_ spec: KnockSpec) -> [String: UInt32] {
            Dictionary(uniqueKeysWithValues: KnockMachine.all(in: spec).map { ($0.identity.catalogComment, $0.tagBase) })
        }
        let old = tags(before)
        let new = tags(after)
        let ssh = SequenceIdentity(before.sequences[0]).catalogComment
        #expect(old[ssh] == new[ssh])
        let closeWeb = SequenceIdentity(closing: before.sequences[1]).catalogComment
        #expect(old[closeWeb] == new[closeWeb], "the close knocks did not change")
        #expect(Set(new.values).count == new.count, "no two machines share tags")
        #expect(new.values.allSatisfy { (1...0xff_ffff).contains($0) })
    }

    @Test("machines whose identities hash alike still get distinct tags")
    func collisionsProbe() throws {
        // Thousands of sequences: more than enough for a collision among 24-bit bases to be
        // likely somewhere across the generated names; whatever happens, tags stay distinct.
        let yaml = "sequences:\n" + (0..<3000).map { "  s\($0): {knock: [tcp/\(1000 + $0 % 60000)], open: [tcp/22]}" }.joined(separator: "\n")
        let machines = KnockMachine.all(in: try spec(yaml))
        #expect(Set(machines.map(\.tagBase)).count == machines.count)
    }
}

struct CatalogTests {
    @Test("the catalog names each machine's tags, knock count and ports, and reads back from its elements")
    func roundTrip() throws {
        let spec = try #require(Pipeline.check("""
            sequences:
              ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22, udp/53], close: [udp/9100]}
              v4only: {knock: [tcp/7001], open: [tcp/22], from: [192.0.2.0/24]}
            """, file: "spec.yaml").0)
        let catalog = TableCatalog(spec)
        #expect(catalog.entries.count == 3)
        #expect(catalog.sequencesOpening(TransportPort(.tcp, 22), family: .ipv4) == ["ssh", "v4only"])
        #expect(catalog.sequencesOpening(TransportPort(.tcp, 22), family: .ipv6) == ["ssh"])
        #expect(catalog.sequencesOpening(TransportPort(.tcp, 2222), family: .ipv4) == [])

        var read = TableCatalog()
        let sets = catalog.sets
        guard case .constant(let machines) = sets[0].contents, case .plain(let openings) = sets[1].contents else {
            Issue.record("catalog sets of another kind: \(sets)")
            return
        }
        let addedMachines = machines.map { read.add(sequence: $0.key, comment: $0.comment) }
        let addedOpenings = openings.map { read.add(opening: $0) }
        #expect(!addedMachines.contains(false) && !addedOpenings.contains(false))
        #expect(read == catalog)

        let otherMachine = read.add(sequence: [.tag(0x100, .ipv4), .tag(0x203, .ipv4)], comment: "x 0123456789abcdef")
        #expect(!otherMachine, "last tag of another machine")
        let evil = read.add(sequence: [.tag(0x100, .ipv4), .tag(0x103, .ipv4)], comment: "Evil; flush ruleset 9fe6a677a97ef285")
        #expect(!evil)
        let orphan = read.add(opening: [.tag(0x4200, .ipv4), .family(.ipv4), .proto(.tcp), .port(22)])
        #expect(!orphan, "an opening of no catalogued tag")
    }
}

struct ApplyPlanTests {
    func spec(_ yaml: String) throws -> KnockSpec { try #require(Pipeline.check(yaml, file: "spec.yaml").0) }

    /// The live table as the kernel would list the definitions of `spec`'s table.
    func definitions(of spec: KnockSpec) -> LiveDefinitions {
        let table = RulesetLowering.lower(spec).table
        var definitions = LiveDefinitions(chains: table.chains.map(\.name), counters: table.counters.map(\.name))
        for set in table.sets {
            definitions.sets[set.name] = SetDefinition(set) ?? SetDefinition(isMap: false, keyType: 7, keyLength: 4, flags: 0, size: 0)
        }
        for map in table.maps { definitions.sets[map.name] = SetDefinition(isMap: true, keyType: 0, keyLength: 12, flags: 0, size: 0) }
        return definitions
    }

    let ssh = """
        sequences:
          ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], step_timeout: 5s}
          web: {knock: [tcp/7001], open: [tcp/443]}
        """

    @Test("re-applying keeps every state set and reads nothing")
    func plainReapply() throws {
        let spec = try spec(ssh)
        let plan = ApplyPlan(spec: spec, definitions: definitions(of: spec), catalog: TableCatalog(spec))
        #expect(plan.replacement == nil)
        #expect(plan.setsToRead.isEmpty)
        #expect(Set(plan.keptSets) == ["started4", "progress4", "granted4", "fresh4", "started6", "progress6", "granted6", "fresh6"])
        #expect(plan.redefinedSets.isEmpty && plan.changedSequences.isEmpty && plan.endedOpenings.isEmpty)
        #expect(!plan.removals.contains(.set("granted4")))
        #expect(plan.removals.contains(.set("sequences")) && plan.removals.contains(.map("dispatch")) && plan.removals.contains(.chain("input")))
        #expect(!plan.removals.contains { if case .counter = $0 { true } else { false } }, "counters keep counting")

        let text = NftTextRenderer.render(plan.update(plan.elements(given: LiveState())))
        #expect(text.hasPrefix("table inet knockc {}\nflush chain inet knockc "))
        #expect(!text.contains("delete table"))
        #expect(!text.contains("delete set inet knockc granted4"))
    }

    @Test("a grant whose port its sequence no longer opens ends; one another opener still opens stays")
    func endedGrants() throws {
        let old = try spec(ssh)
        let new = try spec("""
            sequences:
              ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/2222], step_timeout: 5s}
              web: {knock: [tcp/7001], open: [tcp/443, tcp/22]}
            """)
        let plan = ApplyPlan(spec: new, definitions: definitions(of: old), catalog: TableCatalog(old))
        // web opens tcp/22 now, but it did not open it before: grants of 22 came from ssh.
        #expect(plan.endedOpenings == [.init(family: .ipv4, port: TransportPort(.tcp, 22)), .init(family: .ipv6, port: TransportPort(.tcp, 22))])
        #expect(plan.setsToRead == ["granted4", "granted6"])
        let source = IPAddress("192.0.2.3", family: .ipv4)!
        let state = LiveState(grants: [
            Grant(source: source, port: TransportPort(.tcp, 22), timeout: .seconds(30), expires: .seconds(20)),
            Grant(source: source, port: TransportPort(.tcp, 443), timeout: .seconds(30), expires: .seconds(20)),
        ])
        let elements = plan.elements(given: state)
        #expect(elements.endedGrants.map(\.port) == [TransportPort(.tcp, 22)])
        #expect(elements.endedGrants.first?.sequences == ["ssh"])
        #expect(NftTextRenderer.render(elements.operations, table: "knockc") == "delete element inet knockc granted4 { 192.0.2.3 . tcp . 22 }\n")
        #expect(plan.changedSequences.isEmpty, "ssh's knocks did not change")

        let both = try spec("""
            sequences:
              ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], step_timeout: 5s}
              web: {knock: [tcp/7001], open: [tcp/22]}
            """)
        #expect(ApplyPlan(spec: both, definitions: definitions(of: both), catalog: TableCatalog(both)).endedOpenings.isEmpty)
    }

    @Test("a changed max_tracked_sources redefines the state sets and carries their elements")
    func redefinedSets() throws {
        let old = try spec(ssh)
        let new = try spec(ssh + "\nmax_tracked_sources: 1000")
        let plan = ApplyPlan(spec: new, definitions: definitions(of: old), catalog: TableCatalog(old))
        #expect(Set(plan.redefinedSets) == ["started4", "progress4", "granted4", "fresh4", "started6", "progress6", "granted6", "fresh6"])
        #expect(plan.keptSets.isEmpty)
        let source = IPAddress("192.0.2.3", family: .ipv4)!
        let tag = KnockMachine.all(in: new)[0].tags.tag(2)
        let state = LiveState(
            progress: [SequenceProgress(source: source, tag: tag, expires: .seconds(3)),
                       SequenceProgress(source: source, tag: 0x4202, expires: .seconds(3))],
            grants: [Grant(source: source, port: TransportPort(.tcp, 22), timeout: .seconds(30), expires: .seconds(20)),
                     Grant(source: source, port: TransportPort(.tcp, 443), timeout: .seconds(30), expires: Duration(milliseconds: 0))])
        let elements = plan.elements(given: state)
        #expect(elements.carried == 2, "the grant about to expire and the progress of no sequence are not carried")
        let update = plan.update(elements)
        #expect(update.removals.contains(.set("granted4")))
        let text = NftTextRenderer.render(update)
        #expect(text.contains("delete set inet knockc granted4\n"))
        #expect(text.contains("add element inet knockc granted4 { 192.0.2.3 . tcp . 22 timeout 30s expires 20s }\n"))
        #expect(text.contains("add element inet knockc progress4 { 192.0.2.3 . \(IPFamily.ipv4.address(tag)) timeout 3s expires 3s }\n"))
        #expect(text.firstRange(of: "delete set inet knockc granted4")!.lowerBound < text.firstRange(of: "table inet knockc {\n")!.lowerBound)
    }

    @Test("progress of an unchanged sequence whose tags moved is moved; a changed sequence's ends")
    func retagging() throws {
        let old = try spec(ssh)
        var catalog = TableCatalog(old)
        // As an older knockc numbered the tags: 0.0.1.x and 0.0.2.x.
        let machines = KnockMachine.all(in: old)
        catalog.entries = [0x100: catalog.entries[machines[0].tags.tag(0)]!, 0x200: catalog.entries[machines[1].tags.tag(0)]!]
        let new = try spec("""
            sequences:
              ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], step_timeout: 1s}
              web: {knock: [tcp/7002], open: [tcp/443]}
            """)
        let plan = ApplyPlan(spec: new, definitions: definitions(of: old), catalog: catalog)
        #expect(plan.changedSequences == ["web"])
        #expect(plan.retagged == [0x100: KnockMachine.all(in: new)[0].tags.tag(0)])
        let source = IPAddress("192.0.2.3", family: .ipv4)!
        let elements = plan.elements(given: LiveState(catalog: catalog, progress: [
            SequenceProgress(source: source, tag: 0x102, expires: .seconds(3)),
            SequenceProgress(source: source, tag: 0x101, expires: .seconds(0)),
        ]))
        #expect(elements.movedProgress == 1)
        let newTag = KnockMachine.all(in: new)[0].tags.tag(2)
        let text = NftTextRenderer.render(elements.operations, table: "knockc")
        #expect(!text.contains("delete element"), "the old tag names nothing now: its progress only waits to time out")
        #expect(text.contains("add element inet knockc progress4 { 192.0.2.3 . \(IPFamily.ipv4.address(newTag)) timeout 1s expires 1s }"),
                "moved, with at most the new step timeout left")
    }

    @Test("a table knockc did not make, or whose names knockc would not write, is replaced whole")
    func foreignTables() throws {
        let spec = try spec(ssh)
        var foreign = definitions(of: spec)
        foreign.foreignObjects = ["ft"]
        #expect(ApplyPlan(spec: spec, definitions: foreign, catalog: TableCatalog(spec)).replacement == .foreignObjects(["ft"]))
        for name in ["x; flush ruleset", "eq", "xor", "packets", "auto-merge", "Input", "x y"] {
            var odd = definitions(of: spec)
            odd.chains.append(name)
            #expect(ApplyPlan(spec: spec, definitions: odd, catalog: TableCatalog(spec)).replacement == .unknownNames([name]), "\(name)")
        }
        var dormant = definitions(of: spec)
        dormant.dormant = true
        #expect(ApplyPlan(spec: spec, definitions: dormant, catalog: TableCatalog(spec)).replacement == .dormant)
        #expect(ApplyPlan(spec: spec, definitions: definitions(of: spec), catalog: nil).replacement == .noCatalog)
        #expect(ApplyPlan(spec: spec, definitions: nil, catalog: nil).replacement == nil, "no table: nothing to replace")
        let plan = ApplyPlan(spec: spec, definitions: definitions(of: spec), catalog: TableCatalog(spec))
        #expect(plan.replacement == nil, "knockc's own names are all safe: \(plan.removals)")
    }

    @Test("every object knockc lowers has a name the plan spells back, so knockc's own tables are changed in place")
    func ownNamesAreSafe() throws {
        let rich = try spec("""
            allow: [192.0.2.0/28, 2001:db8::/64]
            deny: [198.51.100.7]
            decoys: [tcp/23]
            limits: { wrong_knocks: 3/minute, ban_for: 1h }
            sequences:
              ssh: {knock: [tcp/7000, udp/9000, tcp/8000], open: [tcp/22], close: [udp/9100, tcp/9200], strict: true}
              web-admin: {knock: [tcp/6000, icmp/731, tcp/5000], open: [tcp/443, udp/53], from: [192.0.2.0/24],
                          allow: [198.51.100.0/24], deny: [2001:db8:1::/48], limits: { wrong_knocks: 5/hour }}
            """)
        let table = RulesetLowering.lower(rich).table
        let names = table.sets.map(\.name) + table.maps.map(\.name) + table.chains.map(\.name) + table.counters.map(\.name)
        #expect(names.filter { !ApplyPlan.isKnockcObjectName($0) } == [])
        #expect(ApplyPlan(spec: rich, definitions: definitions(of: rich), catalog: TableCatalog(rich)).replacement == nil)
    }

    @Test("a replaced table's state is read and carried into the new table")
    func replacementCarriesState() throws {
        let spec = try spec(ssh)
        var dormant = definitions(of: spec)
        dormant.dormant = true
        let plan = ApplyPlan(spec: spec, definitions: dormant, catalog: TableCatalog(spec))
        #expect(Set(plan.setsToRead).isSuperset(of: ["granted4", "progress4", "started6"]))
        let source = IPAddress("192.0.2.3", family: .ipv4)!
        let tag = KnockMachine.all(in: spec)[0].tags.tag(2)
        var catalog = TableCatalog(spec)
        catalog.entries = catalog.entries.filter { $0.key == tag & ~0xff }
        let elements = plan.elements(given: LiveState(
            catalog: catalog,
            progress: [SequenceProgress(source: source, tag: tag, expires: .seconds(3))],
            grants: [Grant(source: source, port: TransportPort(.tcp, 22), timeout: .seconds(30), expires: .seconds(20))]))
        #expect(elements.carried == 2)
        let text = NftTextRenderer.render(plan.update(elements))
        #expect(text.hasPrefix("table inet knockc {}\ndelete table inet knockc\ntable inet knockc {"))
        #expect(text.contains("add element inet knockc granted4 { 192.0.2.3 . tcp . 22 timeout 30s expires 20s }"))
    }

    @Test("a set whose comment or extras differ is redefined, not kept")
    func definitionsCompareWhole() throws {
        let spec = try spec(ssh)
        var live = definitions(of: spec)
        live.sets["granted4"]?.comment = "someone else's"
        live.sets["started4"]?.hasExtras = true
        let plan = ApplyPlan(spec: spec, definitions: live, catalog: TableCatalog(spec))
        #expect(Set(plan.redefinedSets) == ["granted4", "started4"])
        #expect(!plan.keptSets.contains("granted4"))
    }

    @Test("progress at a tag another sequence takes over is deleted, not inherited")
    func reoccupiedTags() throws {
        let old = try spec(ssh)
        let new = try spec(ssh.replacingOccurrences(of: "web: {knock: [tcp/7001]", with: "web: {knock: [tcp/7002]"))
        var catalog = TableCatalog(old)
        // Pretend the old web sat where the new web's tags are.
        let oldWeb = KnockMachine.all(in: old)[1].tags.tag(0)
        let newWeb = KnockMachine.all(in: new)[1].tags.tag(0)
        catalog.entries[newWeb] = catalog.entries.removeValue(forKey: oldWeb)
        let plan = ApplyPlan(spec: new, definitions: definitions(of: old), catalog: catalog)
        #expect(plan.reoccupiedTags == [newWeb])
        let source = IPAddress("192.0.2.3", family: .ipv4)!
        let elements = plan.elements(given: LiveState(catalog: catalog, progress: [
            SequenceProgress(source: source, tag: newWeb | 1, expires: .seconds(3)),
        ]))
        #expect(elements.operations == [.delete(SequenceProgress(source: source, tag: newWeb | 1, expires: .seconds(3)))])
    }

    @Test("a grant about to expire is left to expire rather than deleted")
    func nearExpiryLeftAlone() throws {
        let old = try spec(ssh)
        let new = try spec(ssh.replacingOccurrences(of: "open: [tcp/22]", with: "open: [tcp/2222]"))
        let plan = ApplyPlan(spec: new, definitions: definitions(of: old), catalog: TableCatalog(old))
        let source = IPAddress("192.0.2.3", family: .ipv4)!
        let elements = plan.elements(given: LiveState(grants: [
            Grant(source: source, port: TransportPort(.tcp, 22), timeout: .seconds(30), expires: Duration(milliseconds: 1500)),
        ]))
        #expect(elements.endedGrants.count == 1)
        #expect(elements.operations.isEmpty)
    }
}
