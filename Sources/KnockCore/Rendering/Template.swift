/// A file from `templates/`, compiled into the binary by the EmbedTemplates plugin.
/// Placeholders are `{{name}}`; rendering fails when one is left without a value, so a
/// template and the code that fills it cannot drift apart silently.
public struct Template: Sendable {
    public let name: String
    public let text: String

    public enum RenderError: Error, Equatable, CustomStringConvertible {
        case missingTemplate(String)
        case missingValue(template: String, placeholder: String)
        case unusedValue(template: String, placeholder: String)

        public var description: String {
            switch self {
            case .missingTemplate(let name): "no template named \(name) is compiled in"
            case .missingValue(let template, let placeholder): "template \(template) needs a value for {{\(placeholder)}}"
            case .unusedValue(let template, let placeholder): "template \(template) has no {{\(placeholder)}}"
            }
        }
    }

    public static func named(_ name: String) throws(RenderError) -> Template {
        guard let text = EmbeddedTemplates.files[name] else { throw .missingTemplate(name) }
        return Template(name: name, text: text)
    }

    public func render(_ values: [String: String]) throws(RenderError) -> String {
        var output = ""
        var used: Set<String> = []
        var rest = text[...]
        while let open = rest.range(of: "{{") {
            output += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            let placeholder = String(rest[open.upperBound..<close.lowerBound])
            guard let value = values[placeholder] else { throw .missingValue(template: name, placeholder: placeholder) }
            output += value
            used.insert(placeholder)
            rest = rest[close.upperBound...]
        }
        output += rest
        if let unused = values.keys.sorted().first(where: { !used.contains($0) }) {
            throw .unusedValue(template: name, placeholder: unused)
        }
        return output
    }
}
