import Foundation
import KnockCore

/// The knocks an apply writes for a `rotate` sequence: every knock of every window from
/// `skew` windows back to the horizon ahead, keyed `protocol . port . stage`, each into its
/// epoch parity's set until its validity ends and, while its validity has not begun, into
/// that parity's early set (see `RotatingKnockRules`). As for tokens, times are distances
/// from `now` to the window edges in Unix time, written as timeouts.
public enum RotationSchedule {
    /// The element operations for `sequence` at `now`, derived with `secret`.
    public static func operations(_ sequence: KnockSequence, _ rotate: RotatingKnocks, secret: Secret,
                                  now: Date) throws(RotationError) -> [ElementOperation] {
        let derivation = KnockDerivation(secret: secret, sequence: sequence.name)
        let every = rotate.windowSeconds
        let nowMilliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        let current = KnockDerivation.window(at: now, every: every)
        let ahead = Int64(rotate.horizon.milliseconds / rotate.every.milliseconds)
        let windows = (current - Int64(rotate.skew))...(current + ahead)
        let ports = try derivation.rotatingPorts(windows: windows, protocols: rotate.protocols, range: rotate.ports)
        var knocks: [ElementOperation] = []
        var early: [ElementOperation] = []
        for (window, knocksOfWindow) in zip(windows, ports) {
            let validFrom = (window - Int64(rotate.skew)) * every * 1000
            let validUntil = (window + Int64(rotate.skew) + 1) * every * 1000
            guard validUntil > nowMilliseconds else { continue }
            let parity = EpochParity(epoch: KnockDerivation.epoch(of: window, range: rotate.ports, knocks: rotate.protocols.count))
            for (index, knock) in knocksOfWindow.enumerated() {
                let key: [Value] = [.proto(knock.proto), .port(knock.port), .port(UInt16(index + 1))]
                knocks.append(ElementOperation(.add, set: TableLayout.Names.rotateKnocks(sequence.name, parity), key: key,
                                               timeout: Duration(milliseconds: validUntil - nowMilliseconds)))
                if validFrom > nowMilliseconds {
                    early.append(ElementOperation(.add, set: TableLayout.Names.rotateEarly(sequence.name, parity), key: key,
                                                  timeout: Duration(milliseconds: validFrom - nowMilliseconds)))
                }
            }
        }
        return knocks + early
    }
}
