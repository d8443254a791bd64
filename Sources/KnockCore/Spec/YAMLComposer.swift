import CYAML

/// YAML text to one `YAMLNode` tree, built from libyaml's events; the only file that
/// imports CYAML.
///
/// Composed here rather than by a YAML library because knockc must decide at the events
/// themselves: an alias is refused at its own `*`, so no alias is ever expanded (a YAML
/// library expanded nested aliases used as keys while checking for duplicates, and a 24-line
/// spec took 20 s), and duplicate keys are found by their text, with both places.
/// Everything is linear in the text: one pass over the events, one hash per key.
enum YAMLComposer {
    /// Lists and mappings nested deeper than this are refused. A spec needs 4 levels
    /// (spec, `sequences`, a sequence, a list); the bound keeps the tree, and the work of
    /// freeing it, shallow whatever the text.
    static let maxDepth = 64

    /// The document's root, or nil when the text holds no document.
    /// Throws the first problem found, in document order.
    static func compose(_ text: String, file: String) throws(DiagnosticsError) -> YAMLNode? {
        var text = text
        let result = text.withUTF8 { bytes in
            Result { () throws(DiagnosticsError) -> YAMLNode? in
                var events = try EventReader(bytes, file: file)
                defer { events.close() }
                return try compose(&events, file: file)
            }
        }
        return try result.get()
    }

    /// An open list or mapping: what it has so far.
    private struct Frame {
        var isMapping: Bool
        var line: Int
        var column: Int
        var items: [YAMLNode] = []
        var pairs: [YAMLPair] = []
        var pendingKey: YAMLNode?
        /// Each scalar key's text and where it first stood.
        var keys: [String: (line: Int, column: Int)] = [:]
    }

    private static func compose(_ events: inout EventReader, file: String) throws(DiagnosticsError) -> YAMLNode? {
        func fail(_ message: Diagnostic.Message, line: Int, column: Int, notes: [Diagnostic] = []) -> DiagnosticsError {
            DiagnosticsError([Diagnostic(message, at: SourceLocation(file: file, line: line, column: column), notes: notes)])
        }
        var stack: [Frame] = []
        var root: YAMLNode?
        var documents = 0

        // Hands a finished node to the list or mapping around it.
        func attach(_ node: YAMLNode) throws(DiagnosticsError) {
            guard !stack.isEmpty else { root = node; return }
            let top = stack.count - 1
            if !stack[top].isMapping {
                stack[top].items.append(node)
            } else if let key = stack[top].pendingKey {
                stack[top].pairs.append(YAMLPair(key: key, value: node))
                stack[top].pendingKey = nil
            } else {
                // Keys that are lists or mappings are never compared: the spec parser refuses
                // each as "a non-text key" anyway.
                if let text = node.text {
                    if let first = stack[top].keys[text] {
                        throw fail(.duplicateKey(text), line: node.line, column: node.column,
                                   notes: [Diagnostic(.firstDefinedHere, at: SourceLocation(file: file, line: first.line, column: first.column))])
                    }
                    stack[top].keys[text] = (node.line, node.column)
                }
                stack[top].pendingKey = node
            }
        }

        while true {
            let event = try events.next()
            switch event.kind {
            case .streamEnd:
                return root
            case .documentStart:
                documents += 1
                if documents > 1 {
                    throw fail(.invalidYAML("but found another document"), line: event.line, column: event.column)
                }
            case .alias:
                throw fail(.aliasNotSupported, line: event.line, column: event.column)
            case .scalar(let value):
                try attach(YAMLNode(value: .scalar(value), line: event.line, column: event.column))
            case .sequenceStart, .mappingStart:
                guard stack.count < maxDepth else {
                    throw fail(.nestedTooDeep, line: event.line, column: event.column)
                }
                let isMapping = if case .mappingStart = event.kind { true } else { false }
                stack.append(Frame(isMapping: isMapping, line: event.line, column: event.column))
            case .sequenceEnd, .mappingEnd:
                let frame = stack.removeLast()
                let value: YAMLNode.Value = frame.isMapping ? .mapping(frame.pairs) : .sequence(frame.items)
                try attach(YAMLNode(value: value, line: frame.line, column: frame.column))
            case .other:
                break
            }
        }
    }
}

/// libyaml's parser over a buffer, one event at a time, as Swift values.
private struct EventReader {
    enum Kind {
        case streamEnd, documentStart, alias, scalar(String)
        case sequenceStart, sequenceEnd, mappingStart, mappingEnd, other
    }

    /// An event and its 1-based start.
    struct Event {
        var kind: Kind
        var line: Int
        var column: Int
    }

    private let parser: UnsafeMutablePointer<yaml_parser_t>
    private let text: UnsafeBufferPointer<UInt8>
    private let file: String

    init(_ text: UnsafeBufferPointer<UInt8>, file: String) throws(DiagnosticsError) {
        parser = .allocate(capacity: 1)
        self.text = text
        self.file = file
        guard yaml_parser_initialize(parser) == 1 else {
            parser.deallocate()
            throw DiagnosticsError([Diagnostic(.invalidYAML("out of memory"), at: SourceLocation(file: file, line: 1, column: 1))])
        }
        // Swift strings are UTF-8: libyaml need not guess from a byte-order mark.
        yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(parser, text.baseAddress, text.count)
    }

    func close() {
        yaml_parser_delete(parser)
        parser.deallocate()
    }

    mutating func next() throws(DiagnosticsError) -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw problem() }
        defer { yaml_event_delete(&event) }
        let kind: Kind
        switch event.type {
        case YAML_STREAM_END_EVENT: kind = .streamEnd
        case YAML_DOCUMENT_START_EVENT: kind = .documentStart
        case YAML_ALIAS_EVENT: kind = .alias
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            kind = .scalar(String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self))
        case YAML_SEQUENCE_START_EVENT: kind = .sequenceStart
        case YAML_SEQUENCE_END_EVENT: kind = .sequenceEnd
        case YAML_MAPPING_START_EVENT: kind = .mappingStart
        case YAML_MAPPING_END_EVENT: kind = .mappingEnd
        default: kind = .other
        }
        return Event(kind: kind, line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
    }

    /// libyaml's own words for what it could not read, where it stopped.
    private func problem() -> DiagnosticsError {
        let words = parser.pointee.problem.map { String(cString: $0) } ?? "unreadable"
        let line: Int, column: Int
        switch parser.pointee.error {
        case YAML_READER_ERROR:
            // A reader error has a byte offset and no mark.
            (line, column) = Self.place(ofByte: parser.pointee.problem_offset, in: text)
        case YAML_MEMORY_ERROR:
            (line, column) = (1, 1)
        default:
            (line, column) = (Int(parser.pointee.problem_mark.line) + 1, Int(parser.pointee.problem_mark.column) + 1)
        }
        return DiagnosticsError([Diagnostic(.invalidYAML(words), at: SourceLocation(file: file, line: line, column: column))])
    }

    /// The 1-based line and column of a byte, counting lines and characters as YAML does.
    static func place(ofByte offset: Int, in text: UnsafeBufferPointer<UInt8>) -> (line: Int, column: Int) {
        var line = 1, column = 1, index = 0
        let end = min(offset, text.count)
        while index < end {
            let byte = text[index]
            let next = index + 1 < text.count ? text[index + 1] : 0
            let third = index + 2 < text.count ? text[index + 2] : 0
            if byte == 0x0A || (byte == 0x0D && next != 0x0A) {
                line += 1; column = 1; index += 1
            } else if byte == 0x0D {
                index += 1  // The CR of a CRLF; the LF counts the line.
            } else if byte == 0xC2 && next == 0x85 {
                line += 1; column = 1; index += 2
            } else if byte == 0xE2 && next == 0x80 && (third == 0xA8 || third == 0xA9) {
                line += 1; column = 1; index += 3
            } else {
                if byte & 0xC0 != 0x80 { column += 1 }
                index += 1
            }
        }
        return (line, column)
    }
}

extension Diagnostic.Message {
    static func invalidYAML(_ problem: String) -> Self { .init(.error, "invalid YAML: \(problem)") }
    static let aliasNotSupported = Self(.error, "YAML aliases (*name) are not supported in a spec; write the value out")
    static func duplicateKey(_ key: String) -> Self { .init(.error, "duplicate key '\(key)'") }
    static let nestedTooDeep = Self(.error, "lists and mappings nest more than \(YAMLComposer.maxDepth) deep; a spec needs 4")
}
