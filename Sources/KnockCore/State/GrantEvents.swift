import Foundation

/// What changed in the granted sets between two readings, as events a person or a script
/// can act on. The kernel sends no netlink event for elements that the packet path adds or
/// that time out, so the watcher reads the sets and compares; this is the comparison.
public struct GrantEvent: Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// A source completed a sequence.
        case grant
        /// A grant ran out.
        case expire
        /// A grant ended early: a close sequence, `knockc revoke`, or an apply that dropped it.
        case end
    }

    public var kind: Kind
    public var family: IPFamily
    public var source: IPAddress
    public var ports: [TransportPort]
    /// The sequences of the live table that open these ports (the kernel does not record
    /// which one was knocked).
    public var sequences: [String]
    /// When the grant runs out (grant events) or ran out (expire events).
    public var expiresAt: Date
}

/// One granted (source, port) pair, as the granted sets hold it.
public struct GrantKey: Hashable, Sendable {
    public var family: IPFamily
    public var source: IPAddress
    public var port: TransportPort

    public init(family: IPFamily, source: IPAddress, port: TransportPort) {
        self.family = family
        self.source = source
        self.port = port
    }
}

/// A grant and when it runs out.
public struct TimedGrant: Equatable, Sendable {
    public var key: GrantKey
    public var expiry: Date

    public init(key: GrantKey, expiry: Date) {
        self.key = key
        self.expiry = expiry
    }
}

/// The grants that appeared and vanished between two readings. The watcher computes these
/// itself, on the kernel's bytes, so a reading of 10,000 unchanged grants costs no text.
public struct GrantChanges: Equatable, Sendable {
    public var added: [TimedGrant]
    public var removed: [TimedGrant]

    public init(added: [TimedGrant], removed: [TimedGrant]) {
        self.added = added
        self.removed = removed
    }

    /// Added grants are grant events; removed ones expiries (when their time had come,
    /// within `slack`) or ends. Grouped per source and kind, so one sequence opening several
    /// ports is one event.
    public func events(now: Date, sequencesOpening: (IPFamily, TransportPort) -> [String],
                       slack: TimeInterval = 1.5) -> [GrantEvent] {
        var groups: [String: GrantEvent] = [:]
        func add(_ kind: GrantEvent.Kind, _ key: GrantKey, _ expiry: Date) {
            let sequences = sequencesOpening(key.family, key.port)
            let id = "\(kind.rawValue) \(key.family.rawValue) \(key.source) \(sequences.joined(separator: ","))"
            var event = groups[id] ?? GrantEvent(kind: kind, family: key.family, source: key.source, ports: [],
                                                 sequences: sequences, expiresAt: expiry)
            event.ports.append(key.port)
            event.expiresAt = max(event.expiresAt, expiry)
            groups[id] = event
        }
        for grant in added {
            add(.grant, grant.key, grant.expiry)
        }
        for grant in removed {
            add(grant.expiry.timeIntervalSince(now) <= slack ? .expire : .end, grant.key, grant.expiry)
        }
        return groups.values.map { event in
            var sorted = event
            sorted.ports.sort()
            return sorted
        }.sorted { ($0.expiresAt, $0.source.text, $0.kind.rawValue) < ($1.expiresAt, $1.source.text, $1.kind.rawValue) }
    }
}
