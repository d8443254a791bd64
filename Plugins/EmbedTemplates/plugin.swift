import Foundation
import PackagePlugin

/// Compiles every file in the package's `templates/` folder into the target as a string
/// constant, so the installed `knockc` is one self-contained binary while the templates stay
/// ordinary files that admins and reviewers can read. SwiftPM asks for these commands only
/// when it plans the build again, so a file newly added to `templates/` is missing from an
/// existing `.build` ("no template named …") until then: remove `.build/debug.yaml` (seen
/// with Swift 6.3.1). Edits to a template already embedded are picked up as usual.
@main
struct EmbedTemplates: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let templatesDir = context.package.directoryURL.appending(path: "templates")
        let names = try FileManager.default.contentsOfDirectory(atPath: templatesDir.path())
            .filter { !$0.hasPrefix(".") }
            .sorted()
        let inputs = names.map { templatesDir.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedTemplates.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(names.count) templates",
                executable: try context.tool(named: "TemplateEmbedder").url,
                arguments: [output.path()] + inputs.map { $0.path() },
                inputFiles: inputs,
                outputFiles: [output]
            ),
        ]
    }
}
