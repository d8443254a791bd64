import Foundation
@testable import KnockCore
import Testing

struct GrantEventsTests {
    let now = Date(timeIntervalSince1970: 1_000_000)
    let source = IPAddress("192.0.2.2", family: .ipv4)!

    func grant(_ port: UInt16, expires seconds: Int64, sequences: [String] = ["ssh"]) -> Grant {
        Grant(source: source, port: TransportPort(.tcp, port), sequences: sequences, timeout: .seconds(60), expires: .seconds(seconds))
    }

    @Test("new grants of one source are one event; vanished ones expire or end by their time")
    func diff() {
        let granted = [grant(443, expires: 30), grant(22, expires: 30)]
        let events = GrantChanges(added: granted, removed: []).events(now: now)
        #expect(events.count == 1)
        #expect(events.first?.kind == .grant)
        #expect(events.first?.ports == [TransportPort(.tcp, 22), TransportPort(.tcp, 443)])
        #expect(events.first?.sequences == ["ssh"])
        #expect(events.first?.expiresAt == now.addingTimeInterval(30))

        #expect(GrantChanges(added: [], removed: []).events(now: now).isEmpty, "nothing changed, nothing reported")
        let expired = [grant(22, expires: 0), grant(443, expires: -1)]
        #expect(GrantChanges(added: [], removed: expired).events(now: now).map(\.kind) == [.expire])
        let ended = [grant(22, expires: 25)]
        #expect(GrantChanges(added: [], removed: ended).events(now: now).map(\.kind) == [.end])
    }

    @Test("grants of one source opened by different sequences are separate events")
    func bySequence() {
        let events = GrantChanges(added: [grant(22, expires: 30), grant(53, expires: 30, sequences: ["dns"])], removed: [])
            .events(now: now)
        #expect(events.map(\.sequences).sorted { $0[0] < $1[0] } == [["dns"], ["ssh"]])
    }
}
