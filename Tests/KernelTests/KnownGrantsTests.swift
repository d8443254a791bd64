import Foundation
import KnockCore
@testable import KnockKernel
@testable import KnockTestSupport
import Testing

/// The watcher's table of the grants it knows: no kernel needed.
struct KnownGrantsTests {
    static func id(_ number: Int) -> Grant.ID {
        let family: IPFamily = number % 5 == 0 ? .ipv6 : .ipv4
        let bytes = withUnsafeBytes(of: UInt32(number).bigEndian) { Array($0) }
        let address = IPAddress(bytes: family == .ipv4 ? bytes : [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 8) + bytes,
                                family: family)!
        return Grant.ID(source: address, port: TransportPort(number % 3 == 0 ? .udp : .tcp, 22))
    }

    @Test("inserts, lookups, updates and removals agree with a dictionary over 40,000 random steps, through growth and shrinking")
    func agreesWithADictionary() throws {
        var random = SplitMix(seed: 11)
        var known = KnownGrants()
        var reference: [Grant.ID: Date] = [:]
        let origin = Date(timeIntervalSince1970: 1_800_000_000)
        // Grows to several thousand, then mostly removes, then grows again.
        for step in 0..<40_000 {
            let id = Self.id(Int.random(in: 0..<6_000, using: &random))
            let removing = step < 15_000 ? Int.random(in: 0..<10, using: &random) < 3 : (step < 30_000 ? true : false)
            if removing {
                let index = known.index(of: id)
                #expect((index != nil) == (reference[id] != nil))
                if let index {
                    #expect(known.remove(at: index).id == id)
                    reference[id] = nil
                }
            } else if let index = known.index(of: id) {
                var entry = known[index]
                entry.expiry = origin.addingTimeInterval(Double(step))
                known[index] = entry
                reference[id] = entry.expiry
            } else {
                #expect(reference[id] == nil)
                let expiry = origin.addingTimeInterval(Double(step))
                known.insert(.init(id: id, expiry: expiry, timeout: .seconds(60), sequences: ["ssh"]))
                reference[id] = expiry
            }
            if step % 5_000 == 4_999 {
                #expect(known.count == reference.count)
                for (id, expiry) in reference {
                    let index = try #require(known.index(of: id))
                    #expect(known[index].expiry == expiry)
                }
            }
        }
        #expect(known.count == reference.count)
        #expect(known.counts[.ipv6] == reference.keys.filter { $0.source.family == .ipv6 }.count)
        #expect(known.counts[.ipv4] == reference.keys.filter { $0.source.family == .ipv4 }.count)

        let now = origin.addingTimeInterval(35_000)
        let (due, next) = known.due(at: now)
        #expect(Set(due) == Set(reference.filter { $0.value <= now }.keys))
        #expect(next == reference.values.filter { $0 > now }.min() ?? .distantFuture)
    }

    @Test("a full reading's marks: what it did not list is what is left unlisted")
    func unlisted() {
        var known = KnownGrants()
        for number in 0..<100 {
            known.insert(.init(id: Self.id(number), expiry: Date(), timeout: .seconds(60), sequences: []))
        }
        known.unlistAll()
        for number in 0..<100 where number % 4 != 0 {
            let index = known.index(of: Self.id(number))!
            var entry = known[index]
            entry.listed = true
            known[index] = entry
        }
        #expect(Set(known.unlisted) == Set((0..<100).filter { $0 % 4 == 0 }.map(Self.id)))
    }

    @Test("an entry takes 48 bytes: the figure the watcher's memory depends on")
    func entrySize() {
        #expect(MemoryLayout<Grant.ID>.size <= 24)
        #expect(MemoryLayout<KnownGrants.Entry>.stride == 48)
    }
}
