import Foundation
import Glibc
import KnockCore
import KnockKernel

/// Runs work inside a network namespace without moving the test process: the work runs on a
/// fresh thread that alone enters the namespace. Sockets and netlink handles keep the
/// namespace they were created in, so a socket made here can be used from any thread later.
struct NetworkNamespace: Sendable, CustomStringConvertible {
    let name: String

    var description: String { name }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The grants of knockc's table in this namespace, as `status` reads them.
    func grants(table: String = "knockc") throws -> [Grant] {
        try perform { try StatusReader().readStatus(table: table)?.grants ?? [] }
    }

    func perform<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let namespacePath = "/run/netns/\(name)"
        let thread = Thread {
            defer { done.signal() }
            let fd = open(namespacePath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                box.set(.failure(Failure(description: "cannot open \(namespacePath): errno \(errno)")))
                return
            }
            defer { close(fd) }
            guard enterNamespace(fd, cloneNewNet) == 0 else {
                box.set(.failure(Failure(description: "setns \(namespacePath): errno \(errno)")))
                return
            }
            box.set(Result { try work() })
        }
        thread.start()
        done.wait()
        return try box.get()
    }
}

/// setns(2): Glibc's Swift module leaves it out, as it needs _GNU_SOURCE.
@_silgen_name("setns") private func enterNamespace(_ fd: Int32, _ type: Int32) -> Int32
private let cloneNewNet: Int32 = 0x4000_0000

/// Hands a result from the namespace thread back to the caller.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, Error>?

    func set(_ result: Result<T, Error>) {
        lock.withLock { self.result = result }
    }

    func get() throws -> T {
        try lock.withLock { result! }.get()
    }
}
