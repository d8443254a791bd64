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
    /// The grants of one source that the event is about, in port order: the ports the same
    /// sequences open, granted or gone together.
    public var grants: [Grant]
    /// When the grants run out (grant events) or ran out (expire events).
    public var expiresAt: Date

    public init(kind: Kind, grants: [Grant], expiresAt: Date) {
        self.kind = kind
        self.grants = grants
        self.expiresAt = expiresAt
    }

    public var source: IPAddress { grants[0].source }
    public var family: IPFamily { source.family }
    public var ports: [TransportPort] { grants.map(\.port) }
    /// The sequences of the live table that open these ports (the kernel does not record
    /// which one was knocked).
    public var sequences: [String] { grants[0].sequences }
}

/// The grants that appeared and vanished between two readings, each with the time it has
/// (or had) left as of the later reading.
public struct GrantChanges: Equatable, Sendable {
    public var added: [Grant]
    public var removed: [Grant]

    public init(added: [Grant], removed: [Grant]) {
        self.added = added
        self.removed = removed
    }

    /// Added grants are grant events; removed ones expiries (when their time had come,
    /// within `slack`) or ends. Grouped per source, kind and sequences, so one sequence
    /// opening several ports is one event.
    public func events(now: Date, slack: TimeInterval = 1.5) -> [GrantEvent] {
        var groups: [String: GrantEvent] = [:]
        func add(_ kind: GrantEvent.Kind, _ grant: Grant) {
            let expiry = now.addingTimeInterval(Double(grant.expires.milliseconds) / 1000)
            let id = "\(kind.rawValue) \(grant.source) \(grant.sequences.joined(separator: ","))"
            if var event = groups[id] {
                event.grants.append(grant)
                event.expiresAt = max(event.expiresAt, expiry)
                groups[id] = event
            } else {
                groups[id] = GrantEvent(kind: kind, grants: [grant], expiresAt: expiry)
            }
        }
        for grant in added {
            add(.grant, grant)
        }
        for grant in removed {
            add(Double(grant.expires.milliseconds) / 1000 <= slack ? .expire : .end, grant)
        }
        return groups.values.map { event in
            var sorted = event
            sorted.grants.sort { $0.port < $1.port }
            return sorted
        }.sorted { ($0.expiresAt, $0.source, $0.kind.rawValue) < ($1.expiresAt, $1.source, $1.kind.rawValue) }
    }
}
