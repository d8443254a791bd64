import Foundation
@testable import KnockCore
import Testing

struct GrantEventsTests {
    let now = Date(timeIntervalSince1970: 1_000_000)
    let source = IPAddress("192.0.2.2", family: .ipv4)!

    func grant(_ port: UInt16, expires seconds: Int64) -> GrantElement {
        GrantElement(family: .ipv4, source: source, port: TransportPort(.tcp, port), timeout: .seconds(60), expires: .seconds(seconds))
    }

    func timed(_ grant: GrantElement) -> TimedGrant {
        TimedGrant(key: GrantKey(family: grant.family, source: grant.source, port: grant.port),
                   expiry: now.addingTimeInterval(Double(grant.expires.milliseconds) / 1000))
    }

    @Test("new grants of one source are one event; vanished ones expire or end by their time")
    func diff() {
        let granted = [grant(22, expires: 30), grant(443, expires: 30)].map(timed)
        let events = GrantChanges(added: granted, removed: []).events(now: now) { _, _ in ["ssh"] }
        #expect(events.count == 1)
        #expect(events.first?.kind == .grant)
        #expect(events.first?.ports == [TransportPort(.tcp, 22), TransportPort(.tcp, 443)])

        #expect(GrantChanges(added: [], removed: []).events(now: now) { _, _ in [] }.isEmpty, "nothing changed, nothing reported")
        let later = now.addingTimeInterval(30)
        #expect(GrantChanges(added: [], removed: granted).events(now: later) { _, _ in [] }.map(\.kind) == [.expire])
        #expect(GrantChanges(added: [], removed: granted).events(now: now.addingTimeInterval(5)) { _, _ in [] }.map(\.kind) == [.end])
    }
}
