import Foundation
import KnockCore

/// The tokens an apply writes for a `spa` sequence: every slot of every window from `skew`
/// windows back to the horizon ahead, each into the token set until its validity ends, and,
/// while its validity has not begun, into the early set. Times are the distances from `now`
/// to the window edges in Unix time, so the kernel's timeouts carry the windows and no
/// wall-clock text or time zone enters the table.
public enum TokenSchedule {
    /// The element operations for `sequence` at `now`, derived with `secret`.
    public static func operations(_ sequence: KnockSequence, _ spa: OnePacketAuthorization, secret: Secret,
                                  now: Date) -> [ElementOperation] {
        let derivation = KnockDerivation(secret: secret, sequence: sequence.name)
        let every = spa.windowSeconds
        let nowMilliseconds = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        let current = KnockDerivation.window(at: now, every: every)
        let ahead = Int64(spa.horizon.milliseconds / spa.every.milliseconds)
        var tokens: [ElementOperation] = []
        var early: [ElementOperation] = []
        for window in (current - Int64(spa.skew))...(current + ahead) {
            let validFrom = (window - Int64(spa.skew)) * every * 1000
            let validUntil = (window + Int64(spa.skew) + 1) * every * 1000
            guard validUntil > nowMilliseconds else { continue }
            for slot in 0..<spa.slots {
                let token: [Value] = [.token(derivation.spaToken(window: window, slot: UInt32(slot)))]
                tokens.append(ElementOperation(.add, set: TableLayout.Names.spaTokens(sequence.name), key: token,
                                               timeout: Duration(milliseconds: validUntil - nowMilliseconds)))
                if validFrom > nowMilliseconds {
                    early.append(ElementOperation(.add, set: TableLayout.Names.spaEarly(sequence.name), key: token,
                                                  timeout: Duration(milliseconds: validFrom - nowMilliseconds)))
                }
            }
        }
        return tokens + early
    }
}
