/// A YAML value as the spec parser reads it: text, a list or a mapping, with the 1-based
/// line and column where it starts. There is no alias case: `YAMLComposer` refuses aliases
/// where they stand, so a tree never costs more than its text.
struct YAMLNode: Sendable {
    enum Value: Sendable {
        /// Every scalar is text: knockc reads no YAML implicit types (`true:` and `"true":`
        /// name the same sequence).
        case scalar(String)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    var value: Value
    var line: Int
    var column: Int

    /// The text of a scalar; nil for a list or a mapping.
    var text: String? {
        if case .scalar(let text) = value { return text }
        return nil
    }
}

/// One key and its value, in the order the mapping wrote them.
struct YAMLPair: Sendable {
    var key: YAMLNode
    var value: YAMLNode
}
