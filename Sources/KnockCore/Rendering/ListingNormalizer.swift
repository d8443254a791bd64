import Foundation

/// Turns `nft list table` output into the table's definitions alone, in a stable form, so two
/// listings can be compared line by line: the elements of dynamic sets (knocks in progress,
/// grants, bans) and the values of named counters are dropped, and the elements of constant
/// sets and maps, which the kernel lists in hash order, are written one per line, sorted.
/// Members are put in one order, by kind and name: the kernel lists them in the order they
/// were made, and an apply in place makes the new ones after the sets it keeps.
/// Every function here reads each line once: a listing of 65,536 elements is linear work.
public enum ListingNormalizer {
    public static func definitions(_ listing: String) -> String {
        inMemberOrder(elementsSorted(listing))
    }

    /// The table with its members sorted by kind (counters, sets, maps, chains) and name, each
    /// after an empty line, as nft lists them; the text outside members is kept as it is.
    static func inMemberOrder(_ listing: String) -> String {
        let members = members(of: listing)
        guard members.count > 1, let first = members.first, let start = listing.range(of: first.text),
              let last = members.last, let end = listing.range(of: last.text, options: .backwards) else { return listing }
        let rank = ["counter": 0, "set": 1, "map": 2, "chain": 3]
        let sorted = members.sorted { (rank[$0.kind] ?? 4, $0.kind, $0.name) < (rank[$1.kind] ?? 4, $1.kind, $1.name) }
        return String(listing[..<start.lowerBound]) + sorted.map(\.text).joined(separator: "\n\n") + String(listing[end.upperBound...])
    }

    private static func elementsSorted(_ listing: String) -> String {
        var output: [String] = []
        var inDynamicSet = false
        var lines = listing.split(separator: "\n", omittingEmptySubsequences: false)[...]
        while let line = lines.popFirst() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let words = trimmed.split(separator: " ")
            if words.count == 3, ["set", "map", "chain", "counter"].contains(words[0]), words[2] == "{" {
                inDynamicSet = false
            }
            // Every set the packet path writes is `dynamic`, and every set apply fills with
            // timed elements (`spa` tokens) has a `timeout` flag: their elements are state.
            if trimmed.hasPrefix("flags "), trimmed.contains("dynamic") || trimmed.contains("timeout") { inDynamicSet = true }
            // Named counters run; their values are not part of the definition.
            if trimmed.hasPrefix("packets "), trimmed.contains(" bytes ") { continue }
            guard trimmed.hasPrefix("elements = {") else {
                output.append(String(line))
                continue
            }
            // Gather the whole element list, which may wrap over several lines; only the line
            // just read is searched for the closing brace.
            var pieces = [trimmed.dropFirst("elements = {".count)]
            while !pieces[pieces.count - 1].contains("}"), let next = lines.popFirst() {
                pieces.append(next.trimmingCharacters(in: .whitespaces)[...])
            }
            if inDynamicSet { continue }
            let text = pieces.joined(separator: " ")
            let indent = String(line.prefix { $0 == "\t" || $0 == " " })
            let elements = text.prefix { $0 != "}" }.split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.sorted()
            output.append(indent + "elements = {")
            output += elements.map { indent + "\t" + $0 + "," }
            output.append(indent + "}")
        }
        return output.joined(separator: "\n")
    }

    /// `table inet NAME { ... }` out of a ruleset listing; nil when it is not there.
    public static func tableBlock(_ table: String, in ruleset: String) -> String? {
        var block: [Substring] = []
        for line in ruleset.split(separator: "\n", omittingEmptySubsequences: false) {
            if block.isEmpty {
                if line == "table inet \(table) {" { block.append(line) }
                continue
            }
            block.append(line)
            if line == "}" { return block.joined(separator: "\n") + "\n" }
        }
        return nil
    }

    /// One member of a listed table: a set, map, chain, counter, as `\tKIND NAME {` to `\t}`.
    public struct Member: Hashable, Sendable {
        public var kind: String
        public var name: String
        /// Its lines, from the opening line to the closing brace.
        public var text: String
        /// A set or map the packet path never writes: its elements are definition.
        public var isConstantSet: Bool

        // A member is who it is, not what it holds: the terse listing's `ports` and the full
        // listing's `ports` are the same member with different text.
        public static func == (lhs: Member, rhs: Member) -> Bool { lhs.kind == rhs.kind && lhs.name == rhs.name }
        public func hash(into hasher: inout Hasher) {
            hasher.combine(kind)
            hasher.combine(name)
        }
    }

    /// The members of the one table in `listing`, in listing order.
    public static func members(of listing: String) -> [Member] {
        var members: [Member] = []
        var current: (kind: String, name: String, lines: [Substring], dynamic: Bool)?
        for line in listing.split(separator: "\n", omittingEmptySubsequences: false) {
            if var member = current {
                member.lines.append(line)
                if line.hasPrefix("\t\tflags "), line.contains("dynamic") || line.contains("timeout") { member.dynamic = true }
                if line == "\t}" {
                    members.append(Member(kind: member.kind, name: member.name, text: member.lines.joined(separator: "\n"),
                                          isConstantSet: ["set", "map"].contains(member.kind) && !member.dynamic))
                    current = nil
                } else {
                    current = member
                }
                continue
            }
            let words = line.split(separator: " ")
            if line.hasPrefix("\t"), !line.hasPrefix("\t\t"), words.count == 3, words[2] == "{" {
                current = (words[0].trimmingCharacters(in: .whitespaces), String(words[1]), [line], false)
            }
        }
        return members
    }

    /// `listing` with the named members' text replaced.
    public static func replacingMembers(of listing: String, with replacements: [Member: String]) -> String {
        guard !replacements.isEmpty else { return listing }
        var output: [String] = []
        var cursor = listing.startIndex
        for member in members(of: listing) {
            guard let replacement = replacements[member], let range = listing.range(of: member.text, range: cursor..<listing.endIndex) else { continue }
            output.append(String(listing[cursor..<range.lowerBound]))
            output.append(replacement)
            cursor = range.upperBound
        }
        output.append(String(listing[cursor...]))
        return output.joined()
    }
}
