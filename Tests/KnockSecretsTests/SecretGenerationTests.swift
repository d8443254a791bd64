import Foundation
import Glibc
@testable import KnockSecrets
import Testing

/// `knockc keygen`'s library half: what it writes, and what it refuses to touch.
@Suite struct SecretGenerationTests {
    @Test func writes32RandomBytesOfMode0600ThatTheReaderAccepts() throws {
        try TemporaryDirectory.with { directory in
            let first = directory.file("first.key")
            let second = directory.file("second.key")
            try Secret.generate(at: first)
            try Secret.generate(at: second)
            var status = stat()
            #expect(lstat(first, &status) == 0)
            #expect(status.st_mode & S_IFMT == S_IFREG)
            #expect(status.st_mode & 0o7777 == 0o600)
            #expect(status.st_size == 32)
            #expect(status.st_uid == getuid())
            let bytes = try Secret(contentsOf: first, requiredOwner: getuid()).withUnsafeBytes { Array($0) }
            let other = try Secret(contentsOf: second, requiredOwner: getuid()).withUnsafeBytes { Array($0) }
            #expect(bytes.count == 32)
            #expect(bytes != other, "two secrets are not the same bytes")
            #expect(Set(bytes).count > 8, "32 random bytes are not a handful of values")
        }
    }

    @Test func anExistingFileIsNeitherOverwrittenNorChanged() throws {
        try TemporaryDirectory.with { directory in
            let path = try directory.write(Array("keep me".utf8), to: "k", mode: 0o644)
            let error = #expect(throws: SecretError.self) { try Secret.generate(at: path) }
            #expect(error == .alreadyExists(path: path))
            #expect(error?.description == "\(path) already exists; knockc never overwrites a secret: remove it first, or choose another path")
            #expect(FileManager.default.contents(atPath: path) == Data("keep me".utf8))
            var status = stat()
            #expect(stat(path, &status) == 0 && status.st_mode & 0o7777 == 0o644)
        }
    }

    @Test func aDanglingLinkIsNotFollowedToCreateItsTarget() throws {
        try TemporaryDirectory.with { directory in
            let target = directory.file("target")
            let link = directory.file("link.key")
            #expect(symlink(target, link) == 0)
            let error = #expect(throws: SecretError.self) { try Secret.generate(at: link) }
            #expect(error == .alreadyExists(path: link))
            #expect(!FileManager.default.fileExists(atPath: target), "the link's target was created")
        }
    }

    @Test func aMissingDirectoryIsACannotWriteNamingThePath() throws {
        try TemporaryDirectory.with { directory in
            let path = directory.file("absent/k")
            let error = #expect(throws: SecretError.self) { try Secret.generate(at: path) }
            #expect(error == .cannotWrite(path: path, errno: ENOENT))
            #expect(error?.description == "cannot write secret \(path): No such file or directory")
        }
    }
}
