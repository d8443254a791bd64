/// One transaction that turns the live table into a new definition in place: what goes, the
/// new definition, and the elements that must be put into it. Sets that the packet path
/// fills and whose definitions are unchanged are neither removed nor redefined in the
/// kernel (declaring an existing set again changes nothing), so their elements, grants and
/// knocks in progress among them, never leave it.
public struct TableUpdate: Equatable, Sendable {
    public var table: TableIR
    /// True when the live table is deleted whole first, as the compiled script does; the
    /// removals are then moot.
    public var replacesTable = false
    /// Live objects to remove before the new definition: every chain, map, constant set and
    /// counter the new table does not keep.
    public var removals: [TableObject]
    /// After the definition: elements carried into sets that were redefined, and elements
    /// that end (grants the new spec no longer opens).
    public var elements: [ElementOperation]

    public init(table: TableIR, replacesTable: Bool = false, removals: [TableObject] = [], elements: [ElementOperation] = []) {
        self.table = table
        self.replacesTable = replacesTable
        self.removals = removals
        self.elements = elements
    }
}

/// A named object of an nft table.
public enum TableObject: Hashable, Sendable {
    case chain(String)
    /// A set or a map: nft deletes both as `set` or `map` by name; the kind is kept so the
    /// command reads as what it deletes.
    case set(String)
    case map(String)
    case counter(String)

    public var name: String {
        switch self {
        case .chain(let name), .set(let name), .map(let name), .counter(let name): name
        }
    }
}
