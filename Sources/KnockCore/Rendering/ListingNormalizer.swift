import Foundation

/// Turns `nft list table` output into the table's definitions alone, in a stable form, so two
/// listings can be compared line by line: the elements of dynamic sets (knocks in progress,
/// grants, bans) and the values of named counters are dropped, and the elements of constant
/// sets and maps, which the kernel lists in hash order, are written one per line, sorted.
public enum ListingNormalizer {
    public static func definitions(_ listing: String) -> String {
        var output: [String] = []
        var inDynamicSet = false
        var lines = listing.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)[...]
        while let line = lines.popFirst() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let words = trimmed.split(separator: " ")
            if words.count == 3, ["set", "map", "chain", "counter"].contains(words[0]), words[2] == "{" {
                inDynamicSet = false
            }
            // Every set the packet path writes is `dynamic`; its elements are state.
            if trimmed.hasPrefix("flags "), trimmed.contains("dynamic") { inDynamicSet = true }
            // Named counters run; their values are not part of the definition.
            if trimmed.hasPrefix("packets "), trimmed.contains(" bytes ") { continue }
            guard trimmed.hasPrefix("elements = {") else {
                output.append(line)
                continue
            }
            // Gather the whole element list, which may wrap over several lines.
            var text = String(trimmed.dropFirst("elements = {".count))
            while !text.contains("}"), let next = lines.popFirst() {
                text += " " + next.trimmingCharacters(in: .whitespaces)
            }
            if inDynamicSet { continue }
            let indent = String(line.prefix { $0 == "\t" || $0 == " " })
            let elements = text.prefix { $0 != "}" }.split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.sorted()
            output.append(indent + "elements = {")
            output += elements.map { indent + "\t" + $0 + "," }
            output.append(indent + "}")
        }
        return output.joined(separator: "\n")
    }
}
