import Foundation

/// Turns `nft list table` output into the table's definitions alone, in a stable form, so two
/// listings can be compared line by line: the dynamic elements of the state sets (knocks in
/// progress, grants) are dropped, and the elements of constant sets and maps, which the
/// kernel lists in hash order, are written one per line, sorted.
public enum ListingNormalizer {
    public static func definitions(_ listing: String) -> String {
        let stateSets = Set(IPFamily.allCases.flatMap {
            [RulesetLowering.Names.progress($0), RulesetLowering.Names.granted($0)]
        })
        var output: [String] = []
        var currentBlock = ""
        var lines = listing.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)[...]
        while let line = lines.popFirst() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            let words = trimmed.split(separator: " ")
            if words.count == 3, ["set", "map", "chain"].contains(words[0]), words[2] == "{" {
                currentBlock = String(words[1])
            }
            guard trimmed.hasPrefix("elements = {") else {
                output.append(line)
                continue
            }
            // Gather the whole element list, which may wrap over several lines.
            var text = String(trimmed.dropFirst("elements = {".count))
            while !text.contains("}"), let next = lines.popFirst() {
                text += " " + next.trimmingCharacters(in: .whitespaces)
            }
            if stateSets.contains(currentBlock) { continue }
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
