/// A change to the elements of one set of the live table, outside the packet path: what
/// `apply` carries over, `revoke` deletes, and a restore puts back. Built from the values the
/// readers decode (`Grant`, `SequenceProgress`, `Ban`) and spelled only by the renderer.
public struct ElementOperation: Equatable, Sendable {
    public enum Kind: String, Equatable, Sendable {
        case add
        case delete
    }

    public var kind: Kind
    public var set: String
    public var key: [Value]
    /// For an add: the element's full timeout, and the time it has left.
    public var timeout: Duration?
    public var expires: Duration?

    public init(_ kind: Kind, set: String, key: [Value], timeout: Duration? = nil, expires: Duration? = nil) {
        self.kind = kind
        self.set = set
        self.key = key
        self.timeout = timeout
        self.expires = expires
    }

    /// Puts `grant` back with the time it has left.
    public static func add(_ grant: Grant) -> ElementOperation {
        ElementOperation(.add, set: grant.set.name, key: grant.key, timeout: grant.timeout, expires: grant.expires)
    }

    /// Puts `progress` back; its timeout is the time it has left, as the step timeout is
    /// not stored apart.
    public static func add(_ progress: SequenceProgress) -> ElementOperation {
        ElementOperation(.add, set: progress.set.name, key: progress.key, timeout: progress.expires, expires: progress.expires)
    }

    public static func add(_ ban: Ban) -> ElementOperation {
        ElementOperation(.add, set: ban.set.name, key: ban.key, timeout: ban.expires, expires: ban.expires)
    }

    public static func delete(_ grant: Grant) -> ElementOperation {
        ElementOperation(.delete, set: grant.set.name, key: grant.key)
    }

    public static func delete(_ progress: SequenceProgress) -> ElementOperation {
        ElementOperation(.delete, set: progress.set.name, key: progress.key)
    }
}
