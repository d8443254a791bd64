import Foundation
import KnockCore
let (spec, diags) = Pipeline.check(file: CommandLine.arguments[1])
for d in diags { FileHandle.standardError.write((d.description+"\n").data(using: .utf8)!) }
if let spec { print(Pipeline.nftScript(for: spec)) }
